import { afterAll, describe, expect, it } from 'vitest';
import { Store } from '../../shared/store/store.ts';
import { spawnNode } from '../support/process.ts';
import { tempDir } from '../support/temp.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('one data directory, several processes', () => {
  it('lets two processes write and read the same index at once', async () => {
    const dataDir = `${tmp.dir}/data`;
    // Both processes race to create the index and extend its schema.
    const a = spawnNode('test/support/store-writer.ts', [dataDir, 'shared', '0', '500', '1000']);
    const b = spawnNode('test/support/store-writer.ts', [dataDir, 'shared', '500', '1000', '1000']);
    const [codeA, codeB] = await Promise.all([a.exited, b.exited]);
    expect(codeA, a.output()).toBe(0);
    expect(codeB, b.output()).toBe(0);
    expect(a.output()).toContain('saw 1000');
    const store = new Store({ dataDir, nodes: ['node-1', 'node-2', 'node-3'] });
    const info = store.info('shared');
    expect(info.docs).toBe(1000);
    expect(info.placement.every((p) => p.docs > 0)).toBe(true);
    expect(store.describeSchema('shared')).toMatchObject({ _id: { _type: 'integer' }, writer: { _type: 'integer' }, n: { _type: 'integer' } });
    const writers = new Set([0, 999].map((i) => store.getDocument('shared', i).writer));
    expect(writers.size).toBe(2);
    await store.close();
  });

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
