/**
 * The streaming parsers behind `:restore`: the incremental JSON array / NDJSON splitter and
 * the MessagePack value stream, fed in chunks split at every possible byte.
 */
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { jsonArrayChunks, ndjsonChunks } from '../../shared/dump/json-chunks.ts';
import { JsonSplitter, parseJsonStream } from '../../shared/dump/json-splitter.ts';
import { msgpackChunks, parseMsgpackStream } from '../../shared/dump/msgpack-stream.ts';
import { BadRequestError, PayloadTooLargeError } from '../../shared/errors.ts';

function split(text: string | Buffer, size: number): Buffer[] {
  const buf = Buffer.isBuffer(text) ? text : Buffer.from(text);
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

async function* chunks(parts: Buffer[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield part;
}

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of source) out.push(item);
  return out;
}

/** Parse the whole text with every chunk size from 1 to 17 bytes, and once whole. */
async function parseEverySplit(text: string | Buffer): Promise<unknown[]> {
  const whole = await collect(parseJsonStream(chunks([Buffer.from(text)])));
  for (let size = 1; size <= 17; size++) {
    expect(await collect(parseJsonStream(chunks(split(text, size))))).toEqual(whole);
  }
  return whole;
}

describe('JsonSplitter', () => {
  it('splits a JSON array with strings holding brackets, commas, quotes and escapes', async () => {
    const docs = [
      { _id: 1, text: 'a [b] {c}, "d" \\ e', nested: { list: [1, [2, { x: ']' }]], empty: {} } },
      { _id: 2, unicode: 'héllo wörld 🎉 ✓', escaped: '\u0000\n\t"' },
      { _id: 3 },
    ];
    expect(await parseEverySplit(JSON.stringify(docs))).toEqual(docs);
    expect(await parseEverySplit(JSON.stringify(docs, null, 2))).toEqual(docs);
  });

  it('accepts trailing commas (as in Xapiand\'s examples) and a byte order mark', async () => {
    const text = '\ufeff[\n  {"_id": 1, "tags": ["a", "b",], "o": {"k": 1,},},\n  {"_id": 2,},\n]\n';
    expect(await parseEverySplit(text)).toEqual([{ _id: 1, tags: ['a', 'b'], o: { k: 1 } }, { _id: 2 }]);
    // A comma inside a string is never dropped.
    expect(await parseEverySplit('[{"s": "a,}"}]')).toEqual([{ s: 'a,}' }]);
  });

  it('reads NDJSON and whitespace-separated values, and top-level scalars as elements', async () => {
    expect(await parseEverySplit('{"_id": 1}\n{"_id": 2}\r\n\n{"_id": 3}')).toEqual([{ _id: 1 }, { _id: 2 }, { _id: 3 }]);
    expect(await parseEverySplit('[1, "two", true, null, -3.5e2]')).toEqual([1, 'two', true, null, -350]);
    expect(await parseEverySplit('[]')).toEqual([]);
    expect(await parseEverySplit('')).toEqual([]);
  });

  it('refuses malformed and truncated bodies with 400', async () => {
    for (const bad of ['[{"_id": 1}', '[{"_id": 1} {"_id": 2}]', '[{"_id": 1}] x', '[,]', '[{"_id": 1},,]', '{"_id": 1}, {"_id": 2}', '[{"a": tru}]', '[{"a": "open']) {
      await expect(collect(parseJsonStream(chunks([Buffer.from(bad)]))), bad).rejects.toBeInstanceOf(BadRequestError);
    }
  });

  it('refuses one element larger than the limit, across chunks too', async () => {
    const text = JSON.stringify([{ _id: 1, s: 'x'.repeat(100) }, { _id: 2, s: 'y'.repeat(1000) }]);
    for (const size of [7, 64, 10_000]) {
      const splitter = new JsonSplitter({ maxElementBytes: 500 });
      const seen: unknown[] = [];
      expect(() => {
        for (const c of split(text, size)) seen.push(...splitter.push(c));
      }).toThrow(PayloadTooLargeError);
      expect(seen.length).toBeLessThanOrEqual(1);
    }
  });

  it('reads back what jsonArrayChunks and ndjsonChunks write, pretty or not', async () => {
    const docs = Array.from({ length: 3000 }, (_, i) => ({ _id: i, when: new Date(Date.UTC(2020, 0, 1, 0, 0, i)), s: `doc ${i}` }));
    const expected = docs.map((d) => ({ ...d, when: d.when.toISOString() }));
    for (const source of [jsonArrayChunks(chunks2(docs)), jsonArrayChunks(chunks2(docs), { pretty: true }), ndjsonChunks(chunks2(docs))]) {
      const bytes = Buffer.concat(await collect(source));
      expect(await collect(parseJsonStream(chunks(split(bytes, 4096))))).toEqual(expected);
    }
  });
});

async function* chunks2<T>(items: T[]): AsyncGenerator<T> {
  yield* items;
}

describe('JSON chunks', () => {
  it('writes dates as ISO-8601 and binary as base64, as toJson does', async () => {
    const doc = { _id: 1, when: new Date('2016-11-15T13:12:00Z'), blob: Buffer.from('hi'), nested: { at: [new Date(0)] } };
    const text = Buffer.concat(await collect(jsonArrayChunks(chunks2([doc])))).toString();
    expect(JSON.parse(text)).toEqual([{ _id: 1, when: '2016-11-15T13:12:00.000Z', blob: 'aGk=', nested: { at: ['1970-01-01T00:00:00.000Z'] } }]);
    expect(Buffer.concat(await collect(jsonArrayChunks(chunks2([]), { pretty: true }))).toString()).toBe('[]\n');
  });
});

describe('MessagePack stream', () => {
  const packr = new Packr({ useRecords: false });

  it('reads back-to-back maps split anywhere, and arrays as their elements', async () => {
    const docs = [{ _id: 1, s: 'héllo' }, { _id: 2, bin: Buffer.from([1, 2, 3]) }, { _id: 3, nested: { a: [1, 2] } }];
    const bytes = Buffer.concat([...docs.map((d) => packr.pack(d)), packr.pack([{ _id: 4 }, { _id: 5 }])]);
    for (let size = 1; size <= 20; size++) {
      expect(await collect(parseMsgpackStream(chunks(split(bytes, size))))).toEqual([...docs, { _id: 4 }, { _id: 5 }]);
    }
  });

  it('writes plain maps with dates as ISO strings, readable back', async () => {
    const bytes = Buffer.concat(await collect(msgpackChunks(chunks2([{ _id: 1, when: new Date('2016-11-15T13:12:00Z') }]))));
    expect(await collect(parseMsgpackStream(chunks([bytes])))).toEqual([{ _id: 1, when: '2016-11-15T13:12:00.000Z' }]);
  });

  it('refuses a truncated body with 400 and an oversized value with 413', async () => {
    const bytes = packr.pack({ _id: 1, s: 'x'.repeat(100) });
    await expect(collect(parseMsgpackStream(chunks([bytes.subarray(0, 50)])))).rejects.toBeInstanceOf(BadRequestError);
    await expect(collect(parseMsgpackStream(chunks(split(bytes, 10)), { maxValueBytes: 64 }))).rejects.toBeInstanceOf(PayloadTooLargeError);
    await expect(collect(parseMsgpackStream(chunks([bytes]), { maxValueBytes: 64 }))).rejects.toBeInstanceOf(PayloadTooLargeError);
  });
});
