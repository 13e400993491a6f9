import { describe, expect, it } from 'vitest';
import { decodeChunks, encodeBlob } from '../../shared/repository/codec.ts';
import { CODEC } from '../../shared/repository/format.ts';
import { COMPRESSION_LEVELS } from '../../shared/formats/compression.ts';

// Compressible but not trivial: prose of pseudo-random words, like documents in LMDB pages.
const WORDS = ['shard', 'backup', 'restore', 'node', 'index', 'chunk', 'pack', 'the', 'of', 'a', 'document', 'store', 'page', 'tree', 'zstd', 'snapshot'];
let seed = 12345;
const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
const data = Buffer.from(Array.from({ length: 200_000 }, () => `${WORDS[next() % WORDS.length]}${next() % 7 === 0 ? ` ${next() % 100000}` : ''}`).join(' '));

describe('compression of repository blobs', () => {
  it("round-trips at every one of Weaviate's levels, NoCompression stored raw", async () => {
    for (const level of COMPRESSION_LEVELS) {
      const { codec, data: stored } = await encodeBlob(data, level);
      expect(codec, level).toBe(level === 'NoCompression' ? CODEC.raw : CODEC.zstd);
      // decodeChunks gives its buffer to a thread; a raw blob is `data` itself, still used here.
      expect((await decodeChunks(codec, Buffer.from(stored))).data.equals(data), level).toBe(true);
    }
  });

  it('applies the level: BestCompression stores less than BestSpeed', async () => {
    const fast = (await encodeBlob(data, 'BestSpeed')).data.length;
    const best = (await encodeBlob(data, 'BestCompression')).data.length;
    expect(best).toBeLessThan(fast);
    expect(fast).toBeLessThan(data.length / 3);
  });

  it('refuses a codec it does not know', async () => {
    await expect(decodeChunks(7, data)).rejects.toThrow('unknown blob codec 7');
  });
});
