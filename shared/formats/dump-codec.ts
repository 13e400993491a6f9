/**
 * The one codec for dump files (`--dump-metadata`, `--dump-schema`, `--dump`, `POST /{index}/:dump`)
 * and backup shard objects (docs/formats.md §2): a self-describing MessagePack stream.
 *
 * On disk (format version 1):
 *
 *     53 56 44 55 4d 50 00 01      magic, the 8 bytes "SVDUMP\0\x01"; fixed forever
 *     ["h", {kind, version, index, createdAt, ...extra}]    the header item
 *     ["r", record]                                         zero or more record items
 *     ["t", {count, sha256}]                                the trailer item, last
 *
 * Every item after the magic is one MessagePack array of two elements, `[tag, payload]`, with a
 * one-letter string tag; items simply follow each other, so after skipping the 8 magic bytes
 * any MessagePack reader can read the rest as a sequence of values. `kind` is `meta` (records
 * are `{key, value}`), `schema` (one record: the schema object) or `docs` (records are documents
 * with `_id`). `createdAt` is an ISO-8601 string. `count` is the number of record items and
 * `sha256` (lowercase hex) covers every byte before the trailer item: magic, header and
 * records. Nothing may follow the trailer. Dates are MessagePack timestamps (ext -1), binary is
 * `bin`, objects are maps with string keys; no msgpackr records or other extensions are written
 * (`undefined` is msgpackr's fixext1 type 0, which other readers see as an ext value).
 *
 * The decoder never holds more than one item in memory: a small resumable scanner finds where
 * each item ends (following MessagePack's length fields, without decoding), and only then is
 * that item's bytes decoded by msgpackr. Records are emitted as they are read, before the
 * trailer's checksum can be checked, so a consumer must treat a stream that errors as a failure
 * for everything it emitted (restores stage first and commit only after `'end'`).
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { Packr, Unpackr } from 'msgpackr';
import { z } from 'zod';
import { IntegrityError, ValidationError } from '../errors.ts';

/** The version written into every header; a decoder refuses any other. */
export const FORMAT_VERSION = 1 as const;

/** The fixed 8 bytes every dump starts with. */
export const DUMP_MAGIC: Buffer = Buffer.from('SVDUMP\x00\x01', 'latin1');

const DUMP_KINDS = ['meta', 'schema', 'docs'] as const;
export type DumpKind = (typeof DUMP_KINDS)[number];

/** What every dump header holds; producers may add fields of their own (e.g. `shard`, `node`). */
export interface DumpHeader {
  kind: DumpKind;
  version: typeof FORMAT_VERSION;
  /** Name of the source index. */
  index: string;
  /** When the dump was started, ISO-8601. */
  createdAt: string;
  shard?: number | string;
  node?: string;
  [extra: string]: unknown;
}

/** What a caller hands the encoder: `version` is set for it, `createdAt` defaults to now. */
export interface DumpHeaderInput {
  kind: DumpKind;
  index: string;
  createdAt?: string | Date;
  shard?: number | string;
  node?: string;
  [extra: string]: unknown;
}

export interface DumpTrailer {
  /** Number of records. */
  count: number;
  /** sha256 (lowercase hex) of every byte before the trailer item. */
  sha256: string;
}

/** A meta dump's record. */
export interface MetaRecord {
  key: string;
  value: unknown;
}

const TAG_HEADER = 'h';
const TAG_RECORD = 'r';
const TAG_TRAILER = 't';

/** Items are batched into chunks of about this many bytes before being pushed. */
const DEFAULT_CHUNK_BYTES = 64 * 1024;
/** Largest single item (header, record or trailer) a decoder accepts. */
const DEFAULT_MAX_ITEM_BYTES = 64 * 1024 * 1024;

const headerSchema = z.looseObject({
  kind: z.enum(DUMP_KINDS),
  version: z.literal(FORMAT_VERSION),
  index: z.string().min(1),
  createdAt: z.string().min(1),
});

const trailerSchema = z.strictObject({
  count: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

function packrOptions(): ConstructorParameters<typeof Packr>[0] {
  return {
    // Plain MessagePack any reader understands: no msgpackr records, objects as maps.
    useRecords: false,
    mapsAsObjects: true,
    // "Preferred" map headers (fixmap for small objects) and no 65 535-key limit.
    variableMapSize: true,
    // Dates round-trip as MessagePack timestamps (the default), binary as `bin`.
    moreTypes: false,
    // Integers beyond 32 bits are written as float64, BigInts as int64 and read back as BigInt.
    // Decoded Buffers must not keep the decoder's input chunks alive.
    copyBuffers: true,
  };
}

// ---------------------------------------------------------------------------------------------
// Encoder

export interface DumpEncoderOptions {
  /** Bytes to gather before pushing a chunk downstream; default 64 KiB. */
  chunkBytes?: number;
}

/**
 * Records in (object mode), dump bytes out. Writes magic and header at once, even when no record
 * follows, and the trailer when the writable side ends. `trailer` resolves (and `'trailer'` is
 * emitted) once the trailer has been pushed.
 */
export class DumpEncoder extends Transform {
  readonly header: DumpHeader;
  readonly trailer: Promise<DumpTrailer>;
  #packr = new Packr(packrOptions());
  #hash: Hash = createHash('sha256');
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #count = 0;
  #chunkBytes: number;
  #settle!: { resolve(t: DumpTrailer): void; reject(err: Error): void };

  constructor(input: DumpHeaderInput, options: DumpEncoderOptions = {}) {
    super({ writableObjectMode: true, readableObjectMode: false });
    this.header = normaliseHeader(input);
    this.#chunkBytes = Math.max(1, options.chunkBytes ?? DEFAULT_CHUNK_BYTES);
    this.trailer = new Promise<DumpTrailer>((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    this.trailer.catch(() => {});
    this.#append(DUMP_MAGIC);
    this.#append(this.#packr.pack([TAG_HEADER, this.header]));
    // The header goes out straight away, so a reader can tell what is coming before any record.
    this.#flushPending();
  }

  /** Records written so far. */
  get count(): number {
    return this.#count;
  }

  override _transform(record: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    let bytes: Buffer;
    try {
      checkRecord(this.header.kind, record, this.#count, ValidationError);
      bytes = this.#packr.pack([TAG_RECORD, record]);
    } catch (err) {
      return callback(err instanceof ValidationError ? err : new ValidationError(`record ${this.#count} cannot be encoded: ${messageOf(err)}`));
    }
    this.#count++;
    this.#append(bytes);
    if (this.#pendingBytes >= this.#chunkBytes) this.#flushPending();
    callback();
  }

  override _flush(callback: TransformCallback): void {
    this.#flushPending();
    const trailer: DumpTrailer = { count: this.#count, sha256: this.#hash.digest('hex') };
    this.push(Buffer.from(this.#packr.pack([TAG_TRAILER, trailer])));
    this.#settle.resolve(trailer);
    this.emit('trailer', trailer);
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#settle.reject(err ?? new Error('dump encoder was destroyed before its end'));
    callback(err);
  }

  #append(bytes: Buffer): void {
    this.#pending.push(bytes);
    this.#pendingBytes += bytes.length;
  }

  #flushPending(): void {
    if (this.#pendingBytes === 0) return;
    // One contiguous chunk: downstream sees few large writes, and msgpackr's 8 KiB scratch
    // buffers the packed pieces point into can be collected.
    const chunk = Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#hash.update(chunk);
    this.push(chunk);
  }
}

/** Records in (object mode), dump bytes out; see DumpEncoder. */
export function createDumpEncoder(header: DumpHeaderInput, options?: DumpEncoderOptions): DumpEncoder {
  return new DumpEncoder(header, options);
}

function normaliseHeader(input: DumpHeaderInput): DumpHeader {
  if (!input || typeof input !== 'object') throw new ValidationError('dump header must be an object');
  if (!(DUMP_KINDS as readonly string[]).includes(input.kind)) {
    throw new ValidationError(`dump kind must be one of ${DUMP_KINDS.join(', ')}, got ${JSON.stringify(input.kind)}`);
  }
  if (typeof input.index !== 'string' || input.index.length === 0) {
    throw new ValidationError('dump header needs the source index name');
  }
  const createdAt = input.createdAt === undefined ? new Date() : new Date(input.createdAt);
  if (Number.isNaN(createdAt.getTime())) throw new ValidationError('dump header createdAt is not a valid date');
  const extra = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  return { ...extra, kind: input.kind, version: FORMAT_VERSION, index: input.index, createdAt: createdAt.toISOString() };
}

/** Cheap shape checks of one record; the error class differs between writing and reading. */
function checkRecord(
  kind: DumpKind,
  record: unknown,
  n: number,
  ErrorClass: typeof ValidationError | typeof IntegrityError,
): void {
  if (record === null || typeof record !== 'object' || Array.isArray(record) || Buffer.isBuffer(record)) {
    throw new ErrorClass(`${kind} record ${n} is not an object`);
  }
  if (kind === 'docs') {
    const id = (record as { _id?: unknown })._id;
    if (id === undefined || id === null) throw new ErrorClass(`docs record ${n} has no _id`);
  } else if (kind === 'meta') {
    if (typeof (record as { key?: unknown }).key !== 'string') throw new ErrorClass(`meta record ${n} has no string key`);
  }
}

// ---------------------------------------------------------------------------------------------
// Scanner: finds where each top-level MessagePack value ends, across chunk boundaries.

/** Header bytes (type byte included) of each MessagePack type, by first byte; 0 = invalid. */
const HEAD_BYTES = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  if (b <= 0xbf || b >= 0xe0) HEAD_BYTES[b] = 1; // fixint, fixmap, fixarray, fixstr, negative fixint
}
for (const [b, n] of [
  [0xc0, 1], [0xc2, 1], [0xc3, 1], // nil, false, true
  [0xc4, 2], [0xc5, 3], [0xc6, 5], // bin 8/16/32
  [0xc7, 3], [0xc8, 4], [0xc9, 6], // ext 8/16/32 (length, type)
  [0xca, 5], [0xcb, 9], // float 32/64
  [0xcc, 2], [0xcd, 3], [0xce, 5], [0xcf, 9], // uint 8..64
  [0xd0, 2], [0xd1, 3], [0xd2, 5], [0xd3, 9], // int 8..64
  [0xd4, 2], [0xd5, 2], [0xd6, 2], [0xd7, 2], [0xd8, 2], // fixext 1..16 (type)
  [0xd9, 2], [0xda, 3], [0xdb, 5], // str 8/16/32
  [0xdc, 3], [0xdd, 5], // array 16/32
  [0xde, 3], [0xdf, 5], // map 16/32
] as const) {
  HEAD_BYTES[b] = n;
}

const FIXEXT_DATA: Record<number, number> = { 0xd4: 1, 0xd5: 2, 0xd6: 4, 0xd7: 8, 0xd8: 16 };

/**
 * Resumable: feed it bytes, it tells how many belong to the current value. Keeps only a counter
 * of values still to read, a count of payload bytes to skip and at most 9 header bytes.
 */
class ValueScanner {
  #values = 1;
  #skip = 0;
  #head = Buffer.alloc(9);
  #headHave = 0;
  #headNeed = 0;

  reset(): void {
    this.#values = 1;
    this.#skip = 0;
    this.#headHave = 0;
    this.#headNeed = 0;
  }

  /** Bytes of `buf` from `start` that belong to the current value, and whether it is complete. */
  scan(buf: Buffer, start: number): { end: number; done: boolean } {
    let p = start;
    const len = buf.length;
    while (p < len) {
      if (this.#skip > 0) {
        const take = Math.min(this.#skip, len - p);
        p += take;
        this.#skip -= take;
        if (this.#skip === 0 && this.#values === 0) return { end: p, done: true };
        continue;
      }
      if (this.#headNeed === 0) {
        const type = buf[p]!;
        const need = HEAD_BYTES[type]!;
        if (need === 0) throw new IntegrityError(`invalid MessagePack type byte 0x${type.toString(16)}`);
        if (need === 1) {
          p++;
          this.#values += this.#children(type, 0) - 1;
          this.#skip = type >= 0xa0 && type <= 0xbf ? type & 0x1f : 0;
          if (this.#skip === 0 && this.#values === 0) return { end: p, done: true };
          continue;
        }
        this.#headNeed = need;
        this.#headHave = 0;
      }
      const take = Math.min(this.#headNeed - this.#headHave, len - p);
      buf.copy(this.#head, this.#headHave, p, p + take);
      this.#headHave += take;
      p += take;
      if (this.#headHave < this.#headNeed) break;
      this.#headNeed = 0;
      this.#completeHead();
      if (this.#skip === 0 && this.#values === 0) return { end: p, done: true };
    }
    return { end: p, done: false };
  }

  /** Children (values) a one-byte header announces. */
  #children(type: number, n: number): number {
    if (type >= 0x80 && type <= 0x8f) return 2 * (type & 0x0f);
    if (type >= 0x90 && type <= 0x9f) return type & 0x0f;
    return n;
  }

  #completeHead(): void {
    const h = this.#head;
    const type = h[0]!;
    this.#values -= 1;
    switch (type) {
      case 0xc4: case 0xd9: this.#skip = h[1]!; break;
      case 0xc5: case 0xda: this.#skip = h.readUInt16BE(1); break;
      case 0xc6: case 0xdb: this.#skip = h.readUInt32BE(1); break;
      case 0xc7: this.#skip = h[1]!; break;
      case 0xc8: this.#skip = h.readUInt16BE(1); break;
      case 0xc9: this.#skip = h.readUInt32BE(1); break;
      case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: this.#skip = FIXEXT_DATA[type]!; break;
      case 0xdc: this.#values += h.readUInt16BE(1); break;
      case 0xdd: this.#values += h.readUInt32BE(1); break;
      case 0xde: this.#values += 2 * h.readUInt16BE(1); break;
      case 0xdf: this.#values += 2 * h.readUInt32BE(1); break;
      default: break; // numbers: the header is the whole value
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Decoder

export interface DumpDecoderOptions {
  /** Refuse (ValidationError) a dump of any other kind. */
  expectKind?: DumpKind;
  /** Largest single item accepted, in bytes; default 64 MiB. Larger → IntegrityError. */
  maxItemBytes?: number;
}

/**
 * The decoder's state machine without the stream around it: feed it bytes, it calls back with
 * the header, each record and the trailer, and throws IntegrityError / ValidationError.
 */
class DumpParser {
  header: DumpHeader | undefined;
  trailer: DumpTrailer | undefined;
  count = 0;
  #expectKind: DumpKind | undefined;
  #maxItemBytes: number;
  #unpackr = new Unpackr(packrOptions());
  #scanner = new ValueScanner();
  #hash: Hash = createHash('sha256');
  #magicHave = 0;
  #item: Buffer[] = [];
  #itemBytes = 0;

  constructor(
    options: DumpDecoderOptions,
    private readonly on: { header(h: DumpHeader): void; record(r: unknown): void },
  ) {
    this.#expectKind = options.expectKind;
    this.#maxItemBytes = options.maxItemBytes ?? DEFAULT_MAX_ITEM_BYTES;
  }

  /** Consumes `chunk`; with `untilHeader`, stops right after the header item. */
  feed(chunk: Buffer, untilHeader = false): void {
    let p = 0;
    if (this.#magicHave < DUMP_MAGIC.length) {
      while (p < chunk.length && this.#magicHave < DUMP_MAGIC.length) {
        if (chunk[p] !== DUMP_MAGIC[this.#magicHave]) throw new IntegrityError('not a shardvault dump (bad header)');
        p++;
        this.#magicHave++;
      }
      if (this.#magicHave < DUMP_MAGIC.length) return;
      this.#hash.update(DUMP_MAGIC);
    }
    while (p < chunk.length) {
      if (this.trailer) throw new IntegrityError('dump has bytes after its trailer');
      const { end, done } = this.#scanner.scan(chunk, p);
      if (end > p) {
        this.#item.push(chunk.subarray(p, end));
        this.#itemBytes += end - p;
        if (this.#itemBytes > this.#maxItemBytes) {
          throw new IntegrityError(`dump item after record ${this.count} is larger than ${this.#maxItemBytes} bytes`);
        }
      }
      p = end;
      if (done) {
        const bytes = this.#item.length === 1 ? this.#item[0]! : Buffer.concat(this.#item, this.#itemBytes);
        this.#item = [];
        this.#itemBytes = 0;
        this.#scanner.reset();
        this.#onItem(bytes);
        if (untilHeader && this.header) return;
      }
    }
  }

  /** The input has ended: throws unless a valid trailer was read. */
  end(): void {
    if (this.trailer) return;
    if (this.#magicHave === 0) throw new IntegrityError('not a shardvault dump (empty input)');
    if (!this.header) throw new IntegrityError('dump is truncated: no header');
    throw new IntegrityError(`dump is truncated: no trailer after ${this.count} records`);
  }

  #onItem(bytes: Buffer): void {
    // Every item is a two-element array; check the frame before decoding.
    if (bytes[0] !== 0x92) throw new IntegrityError(`dump item after record ${this.count} is not a [tag, payload] pair`);
    let item: unknown;
    try {
      item = this.#unpackr.unpack(bytes);
    } catch (err) {
      throw new IntegrityError(`dump item after record ${this.count} cannot be decoded: ${messageOf(err)}`, { cause: err });
    }
    const [tag, payload] = item as [unknown, unknown];
    if (tag === TAG_TRAILER) {
      if (!this.header) throw new IntegrityError('not a shardvault dump (bad header)');
      this.#onTrailer(payload);
      return;
    }
    this.#hash.update(bytes);
    if (tag === TAG_HEADER) {
      if (this.header) throw new IntegrityError('dump has a second header');
      this.#onHeader(payload);
    } else if (tag === TAG_RECORD) {
      if (!this.header) throw new IntegrityError('not a shardvault dump (bad header)');
      checkRecord(this.header.kind, payload, this.count, IntegrityError);
      this.count++;
      this.on.record(payload);
    } else {
      throw new IntegrityError(`dump item after record ${this.count} has an unknown tag ${JSON.stringify(tag)}`);
    }
  }

  #onHeader(payload: unknown): void {
    const header = parseHeader(payload);
    if (this.#expectKind && header.kind !== this.#expectKind) {
      throw new ValidationError(`expected a ${this.#expectKind} dump, got a ${header.kind} dump of index ${header.index}`);
    }
    this.header = header;
    this.on.header(header);
  }

  #onTrailer(payload: unknown): void {
    const parsed = trailerSchema.safeParse(payload);
    if (!parsed.success) throw new IntegrityError('dump trailer is malformed');
    const trailer = parsed.data;
    if (trailer.count !== this.count) {
      throw new IntegrityError(`dump record count mismatch: trailer says ${trailer.count}, read ${this.count}`);
    }
    const actual = this.#hash.digest('hex');
    if (trailer.sha256 !== actual) {
      throw new IntegrityError(`dump checksum mismatch: expected sha256 ${trailer.sha256}, actual ${actual}`);
    }
    this.trailer = trailer;
  }
}

/**
 * Dump bytes in, records out (object mode). Emits `'header'` with the header before the first
 * record, and `'trailer'` once the trailer is verified; `header` and `trailer` are promises of
 * the same. At the end the trailer must be there and match the record count and the sha256 of
 * what came before it, else the stream fails with IntegrityError (ValidationError for a kind
 * other than `expectKind`).
 */
class DumpDecoder extends Transform {
  readonly header: Promise<DumpHeader>;
  readonly trailer: Promise<DumpTrailer>;
  #parser: DumpParser;
  #headerSettle!: { resolve(h: DumpHeader): void; reject(err: Error): void };
  #trailerSettle!: { resolve(t: DumpTrailer): void; reject(err: Error): void };

  constructor(options: DumpDecoderOptions = {}) {
    super({ writableObjectMode: false, readableObjectMode: true });
    this.header = new Promise<DumpHeader>((resolve, reject) => {
      this.#headerSettle = { resolve, reject };
    });
    this.trailer = new Promise<DumpTrailer>((resolve, reject) => {
      this.#trailerSettle = { resolve, reject };
    });
    // Nobody has to await these; a failure is reported through the stream's 'error' as well.
    this.header.catch(() => {});
    this.trailer.catch(() => {});
    this.#parser = new DumpParser(options, {
      header: (header) => {
        this.emit('header', header);
        this.#headerSettle.resolve(header);
      },
      record: (record) => {
        this.push(record);
      },
    });
  }

  /** Records emitted so far. */
  get count(): number {
    return this.#parser.count;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#parser.feed(chunk);
      callback();
    } catch (err) {
      callback(asIntegrityError(err));
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.#parser.end();
    } catch (err) {
      return callback(asIntegrityError(err));
    }
    const trailer = this.#parser.trailer!;
    this.emit('trailer', trailer);
    this.#trailerSettle.resolve(trailer);
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    const reason = err ?? new Error('dump decoder was destroyed before its end');
    this.#headerSettle.reject(reason);
    this.#trailerSettle.reject(reason);
    callback(err);
  }
}

/** Dump bytes in, records out (object mode); see DumpDecoder. */
export function createDumpDecoder(options?: DumpDecoderOptions): DumpDecoder {
  return new DumpDecoder(options);
}

function parseHeader(payload: unknown): DumpHeader {
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
    throw new IntegrityError('not a shardvault dump (bad header)');
  }
  const version = (payload as { version?: unknown }).version;
  if (version !== FORMAT_VERSION) {
    throw new IntegrityError(`unsupported dump format version ${JSON.stringify(version)} (this build reads ${FORMAT_VERSION})`);
  }
  const parsed = headerSchema.safeParse(payload);
  if (!parsed.success) {
    const field = parsed.error.issues[0]?.path.join('.') || 'header';
    throw new IntegrityError(`not a shardvault dump (bad header: ${field})`);
  }
  return parsed.data as DumpHeader;
}

// ---------------------------------------------------------------------------------------------
// Peeking

/** True when `bytes` start with the dump magic (give it at least 8 bytes). */
export function looksLikeDump(bytes: Uint8Array): boolean {
  return bytes.length >= DUMP_MAGIC.length && DUMP_MAGIC.equals(bytes.subarray(0, DUMP_MAGIC.length));
}

/**
 * Reads just enough of `source` to know its header, and answers it together with a stream that
 * yields every byte of `source` from the start, ready for createDumpDecoder. Rejects with
 * IntegrityError (and destroys `source`) when the bytes are not a dump. Only the header checks
 * are made here; the checksum is verified by the decoder as the stream is read.
 */
export async function readDumpHeader(source: Readable): Promise<{ header: DumpHeader; stream: Readable }> {
  const iterator = source[Symbol.asyncIterator]() as AsyncIterator<Uint8Array | string>;
  const seen: Buffer[] = [];
  const parser = new DumpParser({}, { header: () => {}, record: () => {} });
  try {
    while (!parser.header) {
      const next = await iterator.next();
      if (next.done) parser.end(); // throws: no header yet
      else {
        const chunk = toBuffer(next.value);
        seen.push(chunk);
        parser.feed(chunk, true);
      }
    }
  } catch (err) {
    await iterator.return?.();
    throw asIntegrityError(err);
  }
  async function* replay(): AsyncGenerator<Buffer> {
    try {
      yield* seen.splice(0);
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        yield toBuffer(next.value);
      }
    } finally {
      await iterator.return?.();
    }
  }
  return { header: parser.header, stream: Readable.from(replay(), { objectMode: false }) };
}

function toBuffer(chunk: Uint8Array | string): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk);
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

// ---------------------------------------------------------------------------------------------

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function asIntegrityError(err: unknown): Error {
  if (err instanceof IntegrityError || err instanceof ValidationError) return err;
  return new IntegrityError(`dump cannot be read: ${messageOf(err)}`, { cause: err });
}
