import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ChunkTable } from '../../shared/repository/chunk-table.ts';

const hashOf = (n: number) => createHash('sha256').update(`chunk ${n}`).digest();

describe('the chunk table of a repository', () => {
  it('finds every chunk added, through growth, and nothing else', () => {
    const table = new ChunkTable(4);
    for (let i = 0; i < 50_000; i++) table.add(hashOf(i), i * 3);
    expect(table.size).toBe(50_000);
    for (let i = 0; i < 50_000; i += 7) expect(table.get(hashOf(i))).toBe(i * 3);
    for (let i = 50_000; i < 50_100; i++) expect(table.get(hashOf(i))).toBeUndefined();
  });

  it('costs at most 54 bytes a chunk once grown, and what bytesFor says', () => {
    const table = new ChunkTable(4);
    for (let i = 0; i < 100_000; i++) {
      table.add(hashOf(i), i);
      if (i % 997 === 0 && i > 1000) expect(table.bytes / table.size).toBeLessThanOrEqual(54);
    }
    expect(table.bytes).toBe(ChunkTable.bytesFor(100_000));
    // 340,000 chunks (1.3 GiB of distinct data) fit 2^19 slots of 20 bytes.
    expect(ChunkTable.bytesFor(340_000)).toBe(2 ** 19 * 20);
  });

  it('keeps what it holds when room is made at once, and finds hashes inside a larger buffer', () => {
    const table = new ChunkTable(4);
    for (let i = 0; i < 1000; i++) table.add(hashOf(i), i);
    table.reserve(100_000);
    const many = Buffer.concat(Array.from({ length: 100_000 }, (_, i) => hashOf(1000 + i)));
    for (let i = 0; i < 100_000; i++) table.add(many, 1000 + i, i * 32);
    expect(table.size).toBe(101_000);
    for (let i = 0; i < 1000; i++) expect(table.get(hashOf(i))).toBe(i);
    for (let i = 0; i < 100_000; i += 13) expect(table.get(many, i * 32)).toBe(1000 + i);
    expect(table.get(hashOf(101_000))).toBeUndefined();
  });

  it('keeps the first place of a chunk added twice, and forgets everything on clear', () => {
    const table = new ChunkTable();
    table.add(hashOf(1), 10);
    table.add(hashOf(1), 20);
    expect(table.get(hashOf(1))).toBe(10);
    expect(table.size).toBe(1);
    table.clear();
    expect(table.get(hashOf(1))).toBeUndefined();
    expect(table.size).toBe(0);
    expect(() => table.add(hashOf(2), 0xffffffff)).toThrow(RangeError);
  });
});
