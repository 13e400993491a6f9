/**
 * The encoding of the repository's blobs and objects (docs/formats.md §3), with zstd from the
 * blob pool's threads (blob-pool.ts: Node's zlib where it has zstd, else `@mongodb-js/zstd`).
 * Weaviate's `CompressionLevel` names map to zstd levels; `NoCompression` stores blobs raw
 * (codec 0 in the index), every other level stores zstd frames (codec 1). Index files and
 * snapshots are MessagePack, then zstd.
 */
import { pack, unpack } from 'msgpackr';
import type { z } from 'zod';
import type { Backend, CallOptions } from '../backends/backend.ts';
import { readSmall } from '../backends/bodies.ts';
import { IntegrityError } from '../errors.ts';
import type { CompressionLevel } from '../formats/compression.ts';
import { hashChunks, zstdCompress, zstdDecompress, zstdDecompressNamed, type FileRange, type Named, type NamedSpan } from './blob-pool.ts';
import { CODEC, MAX_METADATA_BYTES, type Codec } from './format.ts';

export const ZSTD_LEVEL: Record<Exclude<CompressionLevel, 'NoCompression'>, number> = {
  BestSpeed: 1,
  DefaultCompression: 3,
  BestCompression: 9,
};

/** A blob as stored: its codec and bytes. */
export interface Encoded {
  codec: Codec;
  data: Buffer;
}

/**
 * The codec and bytes of a blob at this level. With `give`, raw is handed to a thread without a
 * copy when it owns its ArrayBuffer, and must not be used afterwards.
 */
export async function encodeBlob(raw: Buffer, level: CompressionLevel, give = false): Promise<Encoded> {
  if (level === 'NoCompression') return { codec: CODEC.raw, data: raw };
  return { codec: CODEC.zstd, data: await zstdCompress(raw, ZSTD_LEVEL[level], give) };
}

/** The codec and bytes of a whole span a thread keeps (blob-pool.ts), compressed by that thread at this level. */
export async function encodeSpan(span: NamedSpan, level: CompressionLevel): Promise<Encoded> {
  if (level === 'NoCompression') return { codec: CODEC.raw, data: await span.seal() };
  return { codec: CODEC.zstd, data: await span.seal(ZSTD_LEVEL[level]) };
}

/** A blob's bytes and the SHA-256s of their chunks (one trip to a thread); data is given to it. */
export async function decodeChunks(codec: number, data: Buffer): Promise<Named> {
  if (codec === CODEC.raw) return hashChunks(data);
  if (codec === CODEC.zstd) return zstdDecompressNamed(data);
  throw new Error(`unknown blob codec ${codec}`);
}

/** An object's bytes: MessagePack, then zstd. */
export async function encodeObject(value: unknown): Promise<Buffer> {
  return (await encodeBlob(pack(value), 'DefaultCompression')).data;
}

/**
 * The object back, checked against its schema; anything else is damage, named by where. Its
 * bytes are given to a blob pool thread (blob-pool.ts), or read there from a local file.
 */
export async function decodeObject<T>(bytes: Buffer | FileRange, schema: z.ZodType<T>, where: string): Promise<T> {
  let value: unknown;
  try {
    value = unpack(await zstdDecompress(bytes));
  } catch (err) {
    throw new IntegrityError(`${where} is not a readable repository object: ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new IntegrityError(`${where} is damaged: ${issue.path.join('.') || 'object'}: ${issue.message}`);
  }
  return parsed.data;
}

/** The object at `key` (a `what`, at most MAX_METADATA_BYTES), read and decoded as decodeObject does. */
export async function readObject<T>(backend: Backend, key: string, schema: z.ZodType<T>, what: string, options: CallOptions = {}): Promise<T> {
  return decodeObject(await objectBytes(backend, key, what, options), schema, backend.locate(key));
}

/**
 * The bytes of the object at `key` (a `what`, at most MAX_METADATA_BYTES) for decodeObject: read
 * here, or, when the backend keeps it as a file on this host, where they lie, for a blob pool
 * thread to read. An index file is ~1 MB: read here, its stream's pieces, their concatenation
 * and zstd's answer all wait for a collection, and a restore's check reads every index file of
 * its snapshot in a fraction of a second.
 */
export async function objectBytes(backend: Backend, key: string, what: string, options: CallOptions = {}): Promise<Buffer | FileRange> {
  if (!backend.localFile) return readSmall(await backend.read(key, options), MAX_METADATA_BYTES, what);
  const { path, size } = await backend.localFile(key, options);
  if (size > MAX_METADATA_BYTES) throw new IntegrityError(`${what} is larger than ${MAX_METADATA_BYTES} bytes`);
  return { file: path, offset: 0, length: size };
}
