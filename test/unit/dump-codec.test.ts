import { createHash } from 'node:crypto';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { collectGarbage } from '../support/gc.ts';
import { IntegrityError, ValidationError } from '../../shared/errors.ts';
import {
  DUMP_MAGIC,
  FORMAT_VERSION,
  createDumpDecoder,
  createDumpEncoder,
  looksLikeDump,
  readDumpHeader,
  type DumpDecoderOptions,
  type DumpHeader,
  type DumpHeaderInput,
  type DumpKind,
  type DumpTrailer,
} from '../../shared/formats/dump-codec.ts';

const DOCS: DumpHeaderInput = { kind: 'docs', index: 'articles', shard: 2, node: 'node-3' };

/** Small tests only: collects the encoder's whole output. */
async function encode(header: DumpHeaderInput, records: unknown[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(Readable.from(records), createDumpEncoder(header), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) chunks.push(chunk);
  });
  return Buffer.concat(chunks);
}

function split(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

interface Decoded {
  records: unknown[];
  header?: DumpHeader;
  trailer?: DumpTrailer;
  error?: unknown;
  headerEventBeforeFirstRecord: boolean;
}

async function decode(buf: Buffer, chunkSize = 65536, options?: DumpDecoderOptions): Promise<Decoded> {
  const decoder = createDumpDecoder(options);
  const result: Decoded = { records: [], headerEventBeforeFirstRecord: true };
  let sawHeader = false;
  decoder.on('header', () => {
    sawHeader = true;
  });
  try {
    await pipeline(Readable.from(split(buf, chunkSize)), decoder, async (source: AsyncIterable<unknown>) => {
      for await (const record of source) {
        if (!sawHeader) result.headerEventBeforeFirstRecord = false;
        result.records.push(record);
      }
    });
    result.header = await decoder.header;
    result.trailer = await decoder.trailer;
  } catch (err) {
    result.error = err;
  }
  return result;
}

function sampleDocs(): Record<string, unknown>[] {
  return [
    {
      _id: 1,
      title: 'Grüße aus Köln — 東京 🚀',
      published: new Date('2016-11-15T13:12:00.123Z'),
      noMillis: new Date('2020-01-01T00:00:00Z'),
      before1970: new Date('1960-06-01T12:00:00.5Z'),
      nested: { deep: { deeper: { list: [1, 'two', { three: 3 }, [4, [5]]] } }, empty: {} },
      tags: ['a', 'b', ''],
      blob: Buffer.from([0, 1, 2, 254, 255]),
      float: 3.141592653589793,
      negative: -42,
      big: 2 ** 40,
      bigint: 12345678901234567890n,
      flag: false,
      nothing: null,
    },
    { _id: 'string-id', text: 'x'.repeat(70_000), bin: Buffer.alloc(100_000, 7) },
    { _id: 3, manyKeys: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i])) },
  ];
}

describe('dump codec round trip', () => {
  it('round-trips documents with dates, nested objects, arrays, unicode and binary', async () => {
    const docs = sampleDocs();
    const bytes = await encode(DOCS, docs);
    expect(looksLikeDump(bytes)).toBe(true);
    const out = await decode(bytes);
    expect(out.error).toBeUndefined();
    expect(out.records).toEqual(docs);
    const first = out.records[0] as Record<string, unknown>;
    expect(first.published).toBeInstanceOf(Date);
    expect(Buffer.isBuffer(first.blob)).toBe(true);
    expect(Object.getPrototypeOf(first.nested)).toBe(Object.prototype);
    expect(out.header).toMatchObject({ kind: 'docs', version: FORMAT_VERSION, index: 'articles', shard: 2, node: 'node-3' });
    expect(new Date(out.header!.createdAt).toISOString()).toBe(out.header!.createdAt);
    expect(out.trailer?.count).toBe(docs.length);
    expect(out.headerEventBeforeFirstRecord).toBe(true);
  });

  it('trailer sha256 covers every byte before the trailer item', async () => {
    const bytes = await encode(DOCS, sampleDocs());
    const out = await decode(bytes);
    const packed = new Packr({ useRecords: false, variableMapSize: true }).pack(['t', out.trailer]);
    const body = bytes.subarray(0, bytes.length - packed.length);
    expect(bytes.subarray(body.length).equals(packed)).toBe(true);
    expect(createHash('sha256').update(body).digest('hex')).toBe(out.trailer!.sha256);
  });

  it('decodes the same records when fed one byte at a time', async () => {
    const docs = sampleDocs().slice(0, 1).concat([{ _id: 9, s: 'é'.repeat(300) }]);
    const bytes = await encode(DOCS, docs);
    const out = await decode(bytes, 1);
    expect(out.error).toBeUndefined();
    expect(out.records).toEqual(docs);
  });

  it('writes magic, header and trailer for zero records', async () => {
    const encoder = createDumpEncoder({ kind: 'docs', index: 'empty' });
    const first = await new Promise<Buffer>((resolve) => encoder.once('data', resolve));
    expect(first.subarray(0, 8).equals(DUMP_MAGIC)).toBe(true); // the header is out before any record or end
    const rest: Buffer[] = [];
    encoder.on('data', (c: Buffer) => rest.push(c));
    const ended = new Promise((resolve) => encoder.once('end', resolve));
    encoder.end();
    await ended;
    expect(await encoder.trailer).toMatchObject({ count: 0 });
    const out = await decode(Buffer.concat([first, ...rest]));
    expect(out.error).toBeUndefined();
    expect(out.records).toEqual([]);
    expect(out.header?.index).toBe('empty');
    expect(out.trailer?.count).toBe(0);
  });

  it('round-trips meta and schema dumps', async () => {
    const meta = [{ key: 'owner', value: { name: 'ann' } }, { key: 'n', value: 3 }];
    const schema = [{ _id: { _type: 'integer' }, title: { _type: 'text' }, when: { _type: 'datetime' } }];
    const metaOut = await decode(await encode({ kind: 'meta', index: 'a' }, meta), 7, { expectKind: 'meta' });
    const schemaOut = await decode(await encode({ kind: 'schema', index: 'a' }, schema), 3, { expectKind: 'schema' });
    expect(metaOut.records).toEqual(meta);
    expect(schemaOut.records).toEqual(schema);
  });

  it('keeps a caller-supplied createdAt and exposes count and trailer on the encoder', async () => {
    const encoder = createDumpEncoder({ ...DOCS, createdAt: new Date('2024-02-03T04:05:06Z') });
    expect(encoder.header.createdAt).toBe('2024-02-03T04:05:06.000Z');
    const sink = new PassThrough();
    sink.resume();
    await pipeline(Readable.from([{ _id: 1 }, { _id: 2 }]), encoder, sink);
    expect(encoder.count).toBe(2);
    expect((await encoder.trailer).count).toBe(2);
  });
});

describe('dump codec refuses bad input', () => {
  const docs = [
    { _id: 1, title: 'one', at: new Date(0), bin: Buffer.from('xyz') },
    { _id: 2, title: 'twö', tags: ['a', 'b'] },
    { _id: 3, nested: { a: { b: [1, 2, 3] } } },
  ];

  it('a flipped bit or byte anywhere → IntegrityError', async () => {
    const bytes = await encode(DOCS, docs);
    for (let i = 0; i < bytes.length; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const bad = Buffer.from(bytes);
        bad[i] = bad[i]! ^ mask;
        const out = await decode(bad, 16);
        if (!(out.error instanceof IntegrityError)) {
          throw new Error(`flipping byte ${i} with ${mask} gave ${String(out.error)} (${out.records.length} records)`);
        }
      }
    }
  });

  it('truncated at any offset → IntegrityError, never silently fewer records', async () => {
    const bytes = await encode(DOCS, docs);
    const messages = new Set<string>();
    for (let n = 0; n < bytes.length; n++) {
      const out = await decode(bytes.subarray(0, n), 5);
      expect(out.error, `cut at ${n}`).toBeInstanceOf(IntegrityError);
      messages.add((out.error as Error).message);
    }
    expect(messages).toContain('dump is truncated: no trailer after 0 records');
    expect(messages).toContain('dump is truncated: no trailer after 3 records');
    expect(messages).toContain('not a shardvault dump (empty input)');
  });

  it('bad magic → IntegrityError "not a shardvault dump (bad header)"', async () => {
    for (const input of [
      Buffer.from('[{"_id":1}]'),
      new Packr().pack({ _id: 1 }),
      Buffer.from('SVDUMP\x00\x02rest', 'latin1'),
    ]) {
      const out = await decode(input, 1);
      expect(out.error).toBeInstanceOf(IntegrityError);
      expect((out.error as Error).message).toBe('not a shardvault dump (bad header)');
    }
  });

  it('a dump of another kind than expected → ValidationError', async () => {
    const bytes = await encode({ kind: 'schema', index: 'a' }, [{ title: { _type: 'text' } }]);
    const out = await decode(bytes, 65536, { expectKind: 'docs' });
    expect(out.error).toBeInstanceOf(ValidationError);
    expect((out.error as Error).message).toMatch(/expected a docs dump, got a schema dump/);
    expect(out.records).toEqual([]);
  });

  /** Builds a dump by hand so header, records and trailer can be wrong on purpose. */
  function handmade(opts: { header?: unknown; records?: unknown[]; count?: number; sha256?: string; after?: Buffer }): Buffer {
    const packr = new Packr({ useRecords: false, variableMapSize: true });
    const header = opts.header ?? { kind: 'docs', version: 1, index: 'x', createdAt: new Date().toISOString() };
    const body = Buffer.concat([
      DUMP_MAGIC,
      packr.pack(['h', header]),
      ...(opts.records ?? [{ _id: 1 }, { _id: 2 }]).map((r) => packr.pack(['r', r])),
    ]);
    const trailer = {
      count: opts.count ?? (opts.records ?? [1, 2]).length,
      sha256: opts.sha256 ?? createHash('sha256').update(body).digest('hex'),
    };
    return Buffer.concat([body, packr.pack(['t', trailer]), opts.after ?? Buffer.alloc(0)]);
  }

  it('accepts a hand-built dump (the format is plain MessagePack)', async () => {
    const out = await decode(handmade({}));
    expect(out.error).toBeUndefined();
    expect(out.records).toEqual([{ _id: 1 }, { _id: 2 }]);
  });

  it('trailer count mismatch → IntegrityError', async () => {
    const out = await decode(handmade({ count: 3 }));
    expect(out.error).toBeInstanceOf(IntegrityError);
    expect((out.error as Error).message).toBe('dump record count mismatch: trailer says 3, read 2');
  });

  it('checksum mismatch → IntegrityError naming expected and actual', async () => {
    const wrong = 'ab'.repeat(32);
    const out = await decode(handmade({ sha256: wrong }));
    expect(out.error).toBeInstanceOf(IntegrityError);
    expect((out.error as Error).message).toMatch(new RegExp(`expected sha256 ${wrong}, actual [0-9a-f]{64}`));
  });

  it('unknown format version → IntegrityError', async () => {
    const out = await decode(handmade({ header: { kind: 'docs', version: 2, index: 'x', createdAt: 'now' } }));
    expect(out.error).toBeInstanceOf(IntegrityError);
    expect((out.error as Error).message).toMatch(/unsupported dump format version 2/);
  });

  it('malformed header, record without _id and bytes after the trailer → IntegrityError', async () => {
    for (const bytes of [
      handmade({ header: { kind: 'logs', version: 1, index: 'x', createdAt: 'now' } }),
      handmade({ header: ['docs'] }),
      handmade({ records: [{ title: 'no id' }] }),
      handmade({ after: Buffer.from([0xc0]) }),
    ]) {
      const out = await decode(bytes, 3);
      expect(out.error).toBeInstanceOf(IntegrityError);
    }
  });

  it('an item larger than maxItemBytes → IntegrityError', async () => {
    const bytes = await encode(DOCS, [{ _id: 1, text: 'x'.repeat(10_000) }]);
    const out = await decode(bytes, 100, { maxItemBytes: 4096 });
    expect(out.error).toBeInstanceOf(IntegrityError);
    expect((out.error as Error).message).toMatch(/larger than 4096 bytes/);
  });

  it('the encoder refuses records that do not fit the kind', async () => {
    const run = (header: DumpHeaderInput, records: unknown[]) => encode(header, records);
    await expect(run(DOCS, [{ title: 'no id' }])).rejects.toBeInstanceOf(ValidationError);
    await expect(run(DOCS, ['a string'])).rejects.toBeInstanceOf(ValidationError);
    await expect(run({ kind: 'meta', index: 'a' }, [{ value: 1 }])).rejects.toBeInstanceOf(ValidationError);
    expect(() => createDumpEncoder({ kind: 'logs' as DumpKind, index: 'a' })).toThrow(ValidationError);
    expect(() => createDumpEncoder({ kind: 'docs', index: '' })).toThrow(ValidationError);
  });
});

describe('readDumpHeader', () => {
  it('peeks the header and hands back a stream with every byte', async () => {
    const docs = sampleDocs();
    const bytes = await encode(DOCS, docs);
    for (const size of [1, 13, 65536]) {
      const { header, stream } = await readDumpHeader(Readable.from(split(bytes, size)));
      expect(header.kind).toBe('docs');
      const out: unknown[] = [];
      await pipeline(stream, createDumpDecoder({ expectKind: header.kind }), async (source: AsyncIterable<unknown>) => {
        for await (const r of source) out.push(r);
      });
      expect(out).toEqual(docs);
    }
  });

  it('rejects what is not a dump, and a stream that ends inside the header', async () => {
    await expect(readDumpHeader(Readable.from([Buffer.from('{"a":1}')]))).rejects.toThrow('not a shardvault dump (bad header)');
    const bytes = await encode(DOCS, []);
    await expect(readDumpHeader(Readable.from([bytes.subarray(0, 20)]))).rejects.toThrow('dump is truncated: no header');
    await expect(readDumpHeader(Readable.from([]))).rejects.toBeInstanceOf(IntegrityError);
  });
});

describe('dump codec streaming', () => {
  it('respects backpressure: the encoder stops accepting records when nobody reads', async () => {
    const encoder = createDumpEncoder(DOCS);
    let accepted = 0;
    while (encoder.write({ _id: accepted, text: 'y'.repeat(100) })) {
      accepted++;
      if (accepted > 100_000) break;
    }
    // About one 64 KiB chunk plus the writable buffer, not everything.
    expect(accepted).toBeLessThan(2_000);
    encoder.destroy();
  });

  it('streams 200k records through encoder and decoder with flat memory', async () => {
    const total = 200_000;
    async function* records(): AsyncGenerator<Record<string, unknown>> {
      for (let i = 0; i < total; i++) {
        yield { _id: i, title: `document number ${i} ${'z'.repeat(150)}`, at: new Date(i * 1000), n: { i } };
      }
    }
    collectGarbage();
    const baseline = process.memoryUsage().heapUsed;
    let peak = baseline;
    let chunks = 0;
    let largestChunk = 0;
    let bytes = 0;
    let count = 0;
    let lastId = -1;
    const tap = new PassThrough({
      transform(chunk: Buffer, _enc, cb) {
        chunks++;
        bytes += chunk.length;
        largestChunk = Math.max(largestChunk, chunk.length);
        cb(null, chunk);
      },
    });
    const sink = new Writable({
      objectMode: true,
      write(record: { _id: number }, _enc, cb) {
        if (record._id !== lastId + 1) return cb(new Error(`out of order at ${record._id}`));
        lastId = record._id;
        // Live memory: the garbage a collector lets wait is not what grows with the records.
        if (++count % 10_000 === 0) {
          collectGarbage();
          peak = Math.max(peak, process.memoryUsage().heapUsed);
        }
        cb();
      },
    });
    const decoder = createDumpDecoder({ expectKind: 'docs' });
    await pipeline(Readable.from(records()), createDumpEncoder(DOCS), tap, decoder, sink);
    expect(count).toBe(total);
    expect((await decoder.trailer).count).toBe(total);
    expect(bytes).toBeGreaterThan(40_000_000); // the data is far larger than the bound below
    expect(chunks).toBeGreaterThan(500); // the encoder streams in chunks…
    expect(largestChunk).toBeLessThan(80 * 1024); // …of about 64 KiB
    expect(peak - baseline).toBeLessThan(8 * 1024 * 1024);
  }, 60_000);
});
