import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hashChunks, keepChunks, nameFileSpan, zstdDecompress } from '../../shared/repository/blob-pool.ts';
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

  it('reads a local file itself: names a span and keeps it, then hands back the parts taken as they were named', async () => {
    const tmp = tempDir();
    try {
      const file = path.join(tmp.dir, 'copy.mdb');
      const bytes = Buffer.from(Array.from({ length: 4096 * 10 }, (_, i) => (i * 7 + (i >> 12)) & 0xff));
      fs.writeFileSync(file, bytes);
      const span = await nameFileSpan(file, 4096 * 2, 4096 * 3);
      const expected = [2, 3, 4].map((c) => createHash('sha256').update(bytes.subarray(c * 4096, (c + 1) * 4096)).digest());
      expect(span.hashes.equals(Buffer.concat(expected))).toBe(true);
      // The file changes after the span is named: what is taken is what was named.
      fs.writeFileSync(file, Buffer.alloc(bytes.length, 0xee));
      const taken = await span.take([4096 * 2, 4096, 0, 100]);
      expect(taken.equals(Buffer.concat([bytes.subarray(4096 * 4, 4096 * 5), bytes.subarray(4096 * 2, 4096 * 2 + 100)]))).toBe(true);
      await expect(span.take([0, 4096])).rejects.toThrow('no span kept');
      fs.writeFileSync(file, bytes);
      // Through a descriptor of this process as well as by path; all of a span is taken whole.
      const handle = await fs.promises.open(file, 'r');
      try {
        const whole = await nameFileSpan(handle.fd, 0, 4096);
        expect((await whole.take([0, 4096])).equals(bytes.subarray(0, 4096))).toBe(true);
      } finally {
        await handle.close();
      }
      await expect(nameFileSpan(file, 4096 * 9, 8192)).rejects.toThrow(`${file} ends before byte ${4096 * 11}`);
    } finally {
      tmp.cleanup();
    }
  });

  it('seals a kept span where it is: one zstd frame of the bytes named (or the bytes themselves at no level), then lets it go; bytes given to it are kept alike', async () => {
    const tmp = tempDir();
    try {
      const file = path.join(tmp.dir, 'copy.mdb');
      const bytes = Buffer.from(Array.from({ length: 4096 * 8 }, (_, i) => (i % 251) ^ (i >> 12)));
      fs.writeFileSync(file, bytes);
      const spans = await Promise.all([nameFileSpan(file, 0, 4096 * 4), nameFileSpan(file, 4096 * 4, 4096 * 4), nameFileSpan(file, 4096, 4096)]);
      fs.writeFileSync(file, Buffer.alloc(bytes.length, 0xee));
      const frame = await spans[0]!.seal(1);
      expect(frame.length).toBeLessThan(4096 * 4);
      expect((await zstdDecompress(frame)).equals(bytes.subarray(0, 4096 * 4))).toBe(true);
      expect((await zstdDecompress(await spans[1]!.seal(9))).equals(bytes.subarray(4096 * 4))).toBe(true);
      expect((await spans[2]!.seal()).equals(bytes.subarray(4096, 4096 * 2))).toBe(true);
      await expect(spans[0]!.seal(1)).rejects.toThrow('no span kept');
      await expect(spans[2]!.take([0, 1])).rejects.toThrow('no span kept');
      // Bytes given to a thread (a span of a node's stream) are named and kept the same way, but
      // for the whole chunks of skip, whose names are zeros.
      const given = await keepChunks(Buffer.from(bytes), [4096, 4096 * 2]);
      const names = [0, 1, 2, 3, 4, 5, 6, 7].map((c) => (c === 1 || c === 2 ? Buffer.alloc(32) : createHash('sha256').update(bytes.subarray(c * 4096, (c + 1) * 4096)).digest()));
      expect(given.hashes.equals(Buffer.concat(names))).toBe(true);
      expect((await given.take([4096 * 7, 10])).equals(bytes.subarray(4096 * 7, 4096 * 7 + 10))).toBe(true);
      const sealed = await keepChunks(Buffer.from(bytes));
      expect((await zstdDecompress(await sealed.seal(3))).equals(bytes)).toBe(true);
    } finally {
      tmp.cleanup();
    }
  });
});
