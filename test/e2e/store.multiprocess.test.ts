import fs from 'node:fs';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { Store } from '../../shared/store/store.ts';
import { spawnNode } from '../support/process.ts';
import { tempDir } from '../support/temp.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('one data directory, several processes', () => {
  it('lets three processes write and read the same index at once, every acknowledged document kept', async () => {
    // All race to create the index and extend its schema, then commit small batches into the
    // same three shards (lmdb-js's overlapping sync once failed commits here: see store.ts). A
    // process opening a shard while another commits to it once set LMDB's shared transaction id
    // back and lost acknowledged writes or failed commits, about one run in a hundred on a loaded
    // machine (docs/lmdb.md): several rounds, each on new shards, where that race happens.
    for (let round = 0; round < 5; round++) {
      const dataDir = `${tmp.dir}/data-${round}`;
      const barrier = `${tmp.dir}/done-${round}`;
      fs.mkdirSync(barrier, { recursive: true });
      const writers = [0, 200, 400].map((from) => spawnNode('test/support/store-writer.ts', [dataDir, 'shared', String(from), String(from + 200), '600', barrier, '3']));
      // A writer that fails never marks itself done: the others stop waiting then.
      for (const w of writers) void w.exited.then((code) => code !== 0 && writers.forEach((o) => o.child.kill('SIGKILL')));
      onTestFinished(() => writers.forEach((w) => w.child.kill('SIGKILL')));
      const codes = await Promise.all(writers.map((w) => w.exited));
      expect(codes, `round ${round}:\n${writers.map((w) => w.output()).join('\n----\n')}`).toEqual([0, 0, 0]);
      for (const w of writers) expect(w.output()).toContain('saw 600');
      const store = new Store({ dataDir, nodes: ['node-1', 'node-2', 'node-3'] });
      const info = store.info('shared');
      expect(info.docs).toBe(600);
      expect(info.placement.every((p) => p.docs > 0)).toBe(true);
      expect(store.describeSchema('shared')).toMatchObject({ _id: { _type: 'integer' }, writer: { _type: 'integer' }, n: { _type: 'integer' } });
      const authors = new Set([0, 200, 599].map((i) => store.getDocument('shared', i).writer));
      expect(authors.size).toBe(3);
      await store.close();
    }
  }, 180_000);

  it('notices an index dropped and recreated by another process', async () => {
    const dataDir = `${tmp.dir}/data2`;
    const mine = new Store({ dataDir, nodes: ['node-1'] });
    await mine.putDocument('idx', { v: 'old' }, 1);
    const other = new Store({ dataDir, nodes: ['node-1'] });
    await other.deleteIndex('idx');
    await other.putDocument('idx', { v: 'new' }, 2);
    expect(mine.info('idx').docs).toBe(1);
    expect(mine.getDocument('idx', 2).v).toBe('new');
    expect(() => mine.getDocument('idx', 1)).toThrow(/not found/);
    await other.close();
    await mine.close();
  });
});
