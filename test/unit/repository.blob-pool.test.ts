import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compressFileRanges, hashChunks, hashFileChunks, zstdDecompress } from '../../shared/repository/blob-pool.ts';
import { tempDir } from '../support/temp.ts';

describe('the blob pool: naming and compressing chunks in worker threads', () => {
  it('answers the SHA-256 of every 4 KiB chunk in order, the last one short, for buffers in flight together', async () => {
    const buffers = [0, 1, 2, 3].map((k) => Buffer.from(Array.from({ length: 4096 * 5 + k * 1000 }, (_, i) => (i * 31 + k) & 0xff)));
    const copies = buffers.map((b) => Buffer.from(b));
    // The first travels without a copy (it owns its ArrayBuffer), the others as a view of a larger one.
    const answers = await Promise.all(copies.map((b, k) => hashChunks(k === 0 ? b : Buffer.concat([Buffer.alloc(8), b]).subarray(8))));
    buffers.forEach((buf, k) => {
      const expected = [];
      for (let at = 0; at < buf.length; at += 4096) expected.push(createHash('sha256').update(buf.subarray(at, at + 4096)).digest());
      expect(answers[k]!.hashes.equals(Buffer.concat(expected)), `buffer ${k}`).toBe(true);
      expect(answers[k]!.data.equals(buf), `bytes of buffer ${k} handed back`).toBe(true);
    });
  });

  it('reads a local file itself: names the chunks of a span, and compresses (offset, length) ranges of it in order', async () => {
    const tmp = tempDir();
    try {
      const file = path.join(tmp.dir, 'copy.mdb');
      const bytes = Buffer.from(Array.from({ length: 4096 * 10 }, (_, i) => (i * 7 + (i >> 12)) & 0xff));
      fs.writeFileSync(file, bytes);
      const hashes = await hashFileChunks(file, 4096 * 2, 4096 * 3);
      const expected = [2, 3, 4].map((c) => createHash('sha256').update(bytes.subarray(c * 4096, (c + 1) * 4096)).digest());
      expect(hashes.equals(Buffer.concat(expected))).toBe(true);

      const ranges = [4096 * 7, 4096 * 2, 0, 4096];
      const wanted = Buffer.concat([bytes.subarray(4096 * 7, 4096 * 9), bytes.subarray(0, 4096)]);
      expect((await zstdDecompress(await compressFileRanges(file, ranges, 3))).equals(wanted)).toBe(true);
      expect((await compressFileRanges(file, ranges, undefined)).equals(wanted), 'stored as they are without a level').toBe(true);
      await expect(compressFileRanges(file, [4096 * 9, 8192], 1)).rejects.toThrow(`${file} ends before byte ${4096 * 11}`);
    } finally {
      tmp.cleanup();
    }
  });
});
