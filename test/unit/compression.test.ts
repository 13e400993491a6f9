import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  COMPRESSION_LEVELS,
  compressionLevelOf,
  compressStream,
  decompressStream,
  detectCompression,
  REQUESTED_COMPRESSION_LEVELS,
  type CompressionLevel,
} from '../../shared/formats/compression.ts';
import { createDumpDecoder, createDumpEncoder } from '../../shared/formats/dump-codec.ts';
import { createMeter, sha256OfStream } from '../../shared/formats/hashing.ts';

async function collect(readable: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of readable) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function through(input: Buffer, ...streams: Duplex[]): Promise<Buffer> {
  let out: Buffer = Buffer.alloc(0);
  const sink = async (source: AsyncIterable<Buffer>): Promise<void> => {
    out = await collect(source);
  };
  await (pipeline as (...args: unknown[]) => Promise<void>)(Readable.from(split(input, 4096)), ...streams, sink);
  return out;
}

function split(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const TEXT = Buffer.from(
  Array.from({ length: 20_000 }, (_, i) => `{"_id":${i},"title":"document ${i % 97}","tags":["a","b"]}\n`).join(''),
);

describe('compression levels', () => {
  it('a request may name a level by Weaviate’s four names or by its names of the zstd levels', () => {
    for (const level of COMPRESSION_LEVELS) expect(compressionLevelOf(level)).toBe(level);
    expect(REQUESTED_COMPRESSION_LEVELS.filter((n) => n.startsWith('Zstd')).map((n) => [n, compressionLevelOf(n)])).toEqual([
      ['ZstdBestSpeed', 'BestSpeed'],
      ['ZstdDefaultCompression', 'DefaultCompression'],
      ['ZstdBestCompression', 'BestCompression'],
    ]);
  });

  it.each(COMPRESSION_LEVELS)('%s round-trips and decompress detects the format by itself', async (level) => {
    const compressed = await through(TEXT, compressStream(level));
    expect(detectCompression(compressed)).toBe(level === 'NoCompression' ? 'none' : 'gzip');
    if (level === 'NoCompression') expect(compressed.equals(TEXT)).toBe(true);
    else expect(compressed.length).toBeLessThan(TEXT.length / 5);
    expect((await through(compressed, decompressStream())).equals(TEXT)).toBe(true);
    // even when fed a byte at a time
    let out: Buffer = Buffer.alloc(0);
    await pipeline(Readable.from(split(compressed.subarray(0, 3000), 1)), decompressStream(), async (s: AsyncIterable<Buffer>) => {
      out = await collect(s);
    }).catch(() => {}); // a cut gzip stream may error at its end; the prefix must still be right
    expect(TEXT.subarray(0, out.length).equals(out)).toBe(true);
  });

  it('higher levels compress at least as well', async () => {
    const sizes: Record<string, number> = {};
    for (const level of ['BestSpeed', 'DefaultCompression', 'BestCompression'] as CompressionLevel[]) {
      sizes[level] = (await through(TEXT, compressStream(level))).length;
    }
    expect(sizes.BestCompression!).toBeLessThanOrEqual(sizes.BestSpeed!);
  });

  it('handles empty and tiny inputs', async () => {
    for (const level of COMPRESSION_LEVELS) {
      expect((await through(Buffer.alloc(0), compressStream(level), decompressStream())).length).toBe(0);
      const one = Buffer.from('S');
      expect((await through(one, compressStream(level), decompressStream())).equals(one)).toBe(true);
    }
    expect((await through(Buffer.from([0x1f]), decompressStream())).equals(Buffer.from([0x1f]))).toBe(true);
  });

  it('passes unknown bytes through and fails on a corrupt gzip body', async () => {
    const raw = randomBytes(10_000);
    raw[0] = 0x53;
    expect((await through(raw, decompressStream())).equals(raw)).toBe(true);
    const gz = gzipSync(TEXT);
    const bad = Buffer.from(gz);
    bad[gz.length - 6] = bad[gz.length - 6]! ^ 0xff; // inside the CRC32 / size footer
    await expect(through(bad, decompressStream())).rejects.toThrow();
    await expect(through(Buffer.concat([gz.subarray(0, 20), randomBytes(200)]), decompressStream())).rejects.toThrow();
  });

  it('keeps backpressure: a slow reader does not make decompression buffer everything', async () => {
    const huge = gzipSync(Buffer.alloc(64 * 1024 * 1024)); // 64 MiB of zeros, ~64 KiB gzipped
    const decompress = decompressStream();
    const feeding = pipeline(Readable.from(split(huge, 16 * 1024)), decompress);
    // Nothing reads for a while: without backpressure the 64 MiB would pile up in the buffer.
    let most = 0;
    const until = Date.now() + 500;
    while (Date.now() < until && most < 8 * 1024 * 1024) {
      await new Promise((resolve) => setImmediate(resolve));
      most = Math.max(most, decompress.readableLength);
    }
    expect(most).toBeLessThan(4 * 1024 * 1024);
    let total = 0;
    for await (const chunk of decompress) total += (chunk as Buffer).length;
    await feeding;
    expect(total).toBe(64 * 1024 * 1024);
  });
});

describe('hashing', () => {
  it('a meter passes bytes through unchanged while counting and hashing them', async () => {
    const meter = createMeter();
    const out = await through(TEXT, meter);
    expect(out.equals(TEXT)).toBe(true);
    expect(meter.bytes).toBe(TEXT.length);
    expect(meter.digest()).toBe(sha(TEXT));
    expect(meter.digest()).toBe(sha(TEXT)); // may be asked again
  });

  it('sha256OfStream reads a stream to its end', async () => {
    expect(await sha256OfStream(Readable.from(split(TEXT, 333)))).toBe(sha(TEXT));
    expect(await sha256OfStream(Readable.from([]))).toBe(sha(Buffer.alloc(0)));
  });
});

describe('a shard object end to end', () => {
  it.each(COMPRESSION_LEVELS)('docs → dump → %s → meter, and back, with matching checksums', async (level) => {
    const docs = Array.from({ length: 5_000 }, (_, i) => ({ _id: i, when: new Date(i * 60_000), body: `text ${i}` }));
    const uploadMeter = createMeter();
    const stored: Buffer[] = [];
    const sink = new PassThrough();
    sink.on('data', (c: Buffer) => stored.push(c));
    await pipeline(Readable.from(docs), createDumpEncoder({ kind: 'docs', index: 'articles', shard: 0 }), compressStream(level), uploadMeter, sink);
    const object = Buffer.concat(stored);
    expect(uploadMeter.bytes).toBe(object.length);

    const readMeter = createMeter();
    const decoder = createDumpDecoder({ expectKind: 'docs' });
    const back: unknown[] = [];
    await pipeline(Readable.from(split(object, 1000)), readMeter, decompressStream(), decoder, async (s: AsyncIterable<unknown>) => {
      for await (const d of s) back.push(d);
    });
    expect(readMeter.digest()).toBe(uploadMeter.digest());
    expect(back).toEqual(docs);
    expect((await decoder.trailer).count).toBe(docs.length);
  });
});
