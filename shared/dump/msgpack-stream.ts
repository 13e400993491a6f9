/**
 * MessagePack documents in and out, streamed: a body is a sequence of MessagePack values
 * (maps, one per document; a top-level array counts as its elements). Reading uses
 * msgpackr's multi-value unpacking with its "incomplete" signal, the same way msgpackr's own
 * UnpackrStream does, keeping only the bytes of the value that is not complete yet.
 */
import { Packr, Unpackr } from 'msgpackr';
import { BadRequestError, PayloadTooLargeError } from '../errors.ts';

/** Plain MessagePack any reader understands: maps with string keys, no msgpackr records. */
const PLAIN = { useRecords: false, mapsAsObjects: true, variableMapSize: true } as const;

export interface MsgpackStreamOptions {
  /** Largest single value, in bytes; a bigger one is refused (413). Default: no limit. */
  maxValueBytes?: number;
}

const plain = new Packr(PLAIN);

/** One value as plain MessagePack, Dates and binary kept (a body of the cluster's internal requests). */
export function packValue(value: unknown): Buffer {
  return Buffer.from(plain.pack(value));
}

export function unpackValue(bytes: Uint8Array): unknown {
  return plain.unpack(bytes);
}

interface IncompleteError extends Error {
  incomplete?: boolean;
  lastPosition?: number;
}

/** Documents of a streamed MessagePack body, one at a time. */
export async function* parseMsgpackStream(
  source: AsyncIterable<Uint8Array>,
  options: MsgpackStreamOptions = {},
): AsyncGenerator<unknown> {
  const limit = options.maxValueBytes ?? Number.POSITIVE_INFINITY;
  const unpackr = new Unpackr({ ...PLAIN, copyBuffers: true });
  let pending: Buffer | undefined;
  let count = 0;
  for await (const chunk of source) {
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const buf = pending ? Buffer.concat([pending, bytes]) : bytes;
    pending = undefined;
    const values: unknown[] = [];
    let tooLarge = false;
    try {
      unpackr.unpackMultiple(buf, (value: unknown, start = 0, end = 0) => {
        if (end - start > limit) {
          tooLarge = true;
          return false;
        }
        values.push(value);
        return true;
      });
    } catch (err) {
      const e = err as IncompleteError;
      if (!e.incomplete) {
        throw new BadRequestError(`malformed MessagePack body after ${count + values.length} documents: ${e.message}`);
      }
      // Copy: `buf` may be the caller's chunk, which can be reused.
      pending = Buffer.from(buf.subarray(e.lastPosition ?? 0));
      if (pending.length > limit) tooLarge = true;
    }
    if (tooLarge) {
      throw new PayloadTooLargeError(`document ${count + values.length} is larger than the limit of ${limit} bytes for one document`);
    }
    for (const value of values) {
      if (Array.isArray(value)) {
        count += value.length;
        yield* value;
      } else {
        count++;
        yield value;
      }
    }
  }
  if (pending && pending.length > 0) {
    throw new BadRequestError(`MessagePack body ends inside a value after ${count} documents (truncated body?)`);
  }
}

/** Dates become ISO-8601 strings (as in JSON dumps): readers without timestamp support still read them. */
function portable(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(portable);
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = portable(v);
    return out;
  }
  return value;
}

/**
 * One plain MessagePack map per document, batched into chunks of about `chunkBytes`. Dates
 * are written as ISO-8601 strings, unless `exact` (the cluster's internal traffic, read back
 * by parseMsgpackStream) keeps them as MessagePack timestamps; binary stays `bin`.
 */
export async function* msgpackChunks(
  docs: AsyncIterable<unknown> | Iterable<unknown>,
  options: { chunkBytes?: number; exact?: boolean } = {},
): AsyncGenerator<Buffer> {
  const chunkBytes = options.chunkBytes ?? 64 * 1024;
  const packr = new Packr(PLAIN);
  let parts: Buffer[] = [];
  let size = 0;
  for await (const doc of docs) {
    // pack() answers a view of msgpackr's shared buffer; copy it before the next call.
    const bytes = Buffer.from(packr.pack(options.exact ? doc : portable(doc)));
    parts.push(bytes);
    size += bytes.length;
    if (size >= chunkBytes) {
      yield Buffer.concat(parts, size);
      parts = [];
      size = 0;
    }
  }
  if (size > 0) yield Buffer.concat(parts, size);
}
