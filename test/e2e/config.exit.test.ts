import { describe, expect, it } from 'vitest';
import { spawnNode } from '../support/process.ts';

// What an operator sees when a variable is wrong: every entry point stops at once with exit 2
// and one line naming the variable, before it logs, listens or connects to anything.
describe('a bad configuration', () => {
  const cases: { entry: string; env: Record<string, string>; names: RegExp }[] = [
    { entry: 'main.ts', env: { PORT: 'eighty' }, names: /PORT/ },
    { entry: 'api/main.ts', env: { API_PROCESSES: '0' }, names: /API_PROCESSES/ },
    { entry: 'worker/main.ts', env: { WORKER_NODES: 'node-9' }, names: /WORKER_NODES: node-9 not in CLUSTER_NODES/ },
    { entry: 'node/main.ts', env: { NODE_NAME: '' }, names: /NODE_NAME/ },
  ];
  for (const c of cases) {
    it(`ends ${c.entry} with exit 2 and one line naming the variable`, async () => {
      const proc = spawnNode(c.entry, [], { REDIS_URL: 'redis://127.0.0.1:1', ...c.env });
      expect(await proc.exited).toBe(2);
      const lines = proc.output().trim().split('\n');
      expect(lines, proc.output()).toHaveLength(1);
      expect(lines[0]).toMatch(/^shardvault: /);
      expect(lines[0]).toMatch(c.names);
    }, 30_000);
  }
});
