import { describe, expect, it } from 'vitest';
import { hashId, placeShards, shardFor } from '../../shared/store/hash.ts';

describe('shard routing', () => {
  it('is stable across releases: pinned FNV-1a values', () => {
    // Changing the hash would strand every stored document on the wrong shard.
    expect(hashId('s')).toBe(0xd2b298c1);
    expect(hashId(1)).toBe(1373941280);
    expect([shardFor(1, 6), shardFor('user-1', 6), shardFor('user-2', 6), shardFor(42, 6)]).toEqual([2, 5, 2, 3]);
  });

  it('routes the number 1 and the string "1" as different ids', () => {
    expect(hashId(1)).not.toBe(hashId('1'));
  });

  it('spreads ids over every shard roughly evenly', () => {
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 6000; i++) counts[shardFor(i, 6)]++;
    for (const c of counts) expect(c).toBeGreaterThan(800);
    const strCounts = new Array(6).fill(0);
    for (let i = 0; i < 6000; i++) strCounts[shardFor(`doc-${i}`, 6)]++;
    for (const c of strCounts) expect(c).toBeGreaterThan(800);
  });

  it('places shard i on node i mod N', () => {
    expect(placeShards(6, ['a', 'b', 'c'])).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
    expect(placeShards(2, ['a', 'b', 'c'])).toEqual(['a', 'b']);
  });
});
