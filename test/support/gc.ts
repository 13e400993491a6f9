/**
 * Full garbage collections on demand, exposed at runtime (vitest gives no way to pass
 * --expose-gc to its workers), so that a memory sample counts live memory, not garbage V8 has
 * yet to collect: how much garbage waits depends on the Node version's collector, not on the
 * code under test.
 */
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

export const collectGarbage = (() => {
  v8.setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();
