import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hashChunks } from '../../shared/repository/hash-pool.ts';

describe('naming chunks in worker threads', () => {
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
});
