import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ChunkTable, LocationChunks } from '../../shared/repository/chunk-table.ts';

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

describe('the chunk table of a location, past its memory', () => {
  const scratchDirs = () => fs.readdirSync(tmpdir()).filter((n) => n.startsWith('shardvault-scratch-'));

  it('moves to disk past memoryChunks, keeps every value and the first place of each chunk, and leaves no file behind', () => {
    const before = scratchDirs();
    const table = new LocationChunks(1000);
    for (let i = 0; i < 1000; i++) table.add(hashOf(i), i);
    expect(table.onDisk).toBe(false);
    // Past the memory, and past several batches of new chunks on their way to disk.
    const many = Buffer.concat(Array.from({ length: 450_000 }, (_, i) => hashOf(1000 + i)));
    for (let i = 0; i < 450_000; i++) table.add(many, 1000 + i, i * 32);
    expect(table.onDisk).toBe(true);
    table.add(hashOf(5), 77);
    table.add(many, 99, 7 * 32);
    expect(table.get(hashOf(5))).toBe(5);
    expect(table.get(many, 7 * 32)).toBe(1007);
    expect(table.size).toBe(451_000);
    for (let i = 0; i < 1000; i += 7) expect(table.get(hashOf(i))).toBe(i);
    for (let i = 0; i < 450_000; i += 11) expect(table.get(many, i * 32)).toBe(1000 + i);
    for (let i = 451_000; i < 452_000; i++) expect(table.get(hashOf(i))).toBeUndefined();
    // The scratch table's directory is gone while it is open: nothing to clean up, even after a kill.
    expect(scratchDirs()).toEqual(before);
    table.clear();
    expect(table.onDisk).toBe(false);
    expect(table.get(hashOf(1))).toBeUndefined();
    table.add(hashOf(1), 3);
    expect(table.get(hashOf(1))).toBe(3);
  });

  it('moves to disk at once when asked to make room for more than memoryChunks', () => {
    const table = new LocationChunks(1000);
    table.add(hashOf(1), 1);
    table.reserve(5000);
    expect(table.onDisk).toBe(true);
    expect(table.get(hashOf(1))).toBe(1);
  });
});
