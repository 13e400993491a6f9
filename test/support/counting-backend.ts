/**
 * A Backend that counts the calls made through it that reach the storage (locate does not),
 * for tests that hold a code path to the requests it makes.
 */
import type { Backend } from '../../shared/backends/backend.ts';

export function counting(backend: Backend): { backend: Backend; calls: Record<string, number>; reset(): void } {
  const calls: Record<string, number> = {};
  const proxy = new Proxy(backend, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function' || prop === 'locate') return value;
      return (...args: unknown[]) => {
        calls[String(prop)] = (calls[String(prop)] ?? 0) + 1;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { backend: proxy, calls, reset: () => Object.keys(calls).forEach((k) => delete calls[k]) };
}
