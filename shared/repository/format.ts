/**
 * The on-disk objects of a repository (docs/formats.md §3), owned here: their keys and their zod
 * schemas (codec.ts encodes them: every object is MessagePack, zstd-compressed). Every object
 * carries a version; the repository never derives them from job payloads.
 *
 *   .repository/packs/<hh>/<pack id>   blobs, one after another (a blob: up to 256 chunks of 4 KiB,
 *                                      compressed together as one zstd frame, or stored raw)
 *   .repository/index/<index id>       the blobs of one pack: offset, length, codec, raw length,
 *                                      and the SHA-256 of each of their chunks
 *   .repository/lineages/<lineage>     the key of the latest snapshot of one lineage (one shard file)
 *   <snapshot key>                     one shard file: its size and SHA-256, and runs of chunks
 *                                      (index file, blob, first chunk, count) that rebuild it in order
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';

/** Where a repository lives under a backend's root (backup ids never contain `.`). */
export const REPOSITORY_ROOT = '.repository';
/** One LMDB page: docs/chunking.md measured page-sized chunks as the only ones to keep an incremental backup under 5 %. */
export const CHUNK_SIZE = 4096;
/** Chunks per blob at most (1 MiB raw). */
export const CHUNKS_PER_BLOB = 256;
/** A pack is closed once it holds this many bytes. */
export const PACK_TARGET_BYTES = 32 * 1024 * 1024;
/** Largest index file or snapshot read into memory. */
export const MAX_METADATA_BYTES = 256 * 1024 * 1024;
export const HASH_BYTES = 32;
/** How a blob is stored (`codec` in an index file): as it is, or as one zstd frame. */
export const CODEC = { raw: 0, zstd: 1 } as const;
export type Codec = (typeof CODEC)[keyof typeof CODEC];

export const newId = (): string => randomBytes(16).toString('hex');
export const packKey = (id: string): string => `${REPOSITORY_ROOT}/packs/${id.slice(0, 2)}/${id}`;
export const indexKey = (id: string): string => `${REPOSITORY_ROOT}/index/${id}`;
export const INDEX_PREFIX = `${REPOSITORY_ROOT}/index/`;
/** The latest snapshot written of a lineage (a snapshot's `origin.lineage`). */
export const lineageKey = (lineage: string): string => `${REPOSITORY_ROOT}/lineages/${lineage}`;

const id = z.string().regex(/^[0-9a-f]{32}$/);
const bytesOf = (what: string) => z.instanceof(Uint8Array, { message: `${what} must be bytes` }).transform((b): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength));

const blobSchema = z.object({
  /** Index into the file's `packs`. */
  pack: z.number().int().min(0),
  offset: z.number().int().min(0),
  /** Stored bytes of the blob in its pack. */
  length: z.number().int().min(1),
  codec: z.union([z.literal(CODEC.raw), z.literal(CODEC.zstd)]),
  /** Bytes once decoded: every chunk is CHUNK_SIZE, the last may be shorter. */
  rawLength: z.number().int().min(1).max(CHUNK_SIZE * CHUNKS_PER_BLOB),
  /** SHA-256 of each chunk, HASH_BYTES each, in order. */
  hashes: bytesOf('hashes'),
});
export type Blob = z.infer<typeof blobSchema>;

export const indexFileSchema = z
  .object({
    version: z.literal(1),
    packs: z.array(id),
    blobs: z.array(blobSchema),
  })
  .superRefine((f, ctx) => {
    f.blobs.forEach((b, i) => {
      if (b.pack >= f.packs.length) ctx.addIssue({ code: 'custom', message: `blob ${i} names pack ${b.pack} of ${f.packs.length}` });
      if (b.hashes.length !== chunksIn(b.rawLength) * HASH_BYTES) ctx.addIssue({ code: 'custom', message: `blob ${i} has ${b.hashes.length / HASH_BYTES} hashes for ${b.rawLength} bytes` });
    });
  });
export type IndexFile = z.infer<typeof indexFileSchema>;

export const snapshotOriginSchema = z.object({ lineage: z.string().regex(/^[0-9a-f]{32}$/), generation: z.string().min(1).max(64) });
export type SnapshotOrigin = z.infer<typeof snapshotOriginSchema>;

/**
 * Where the latest snapshot of a lineage is (written after it; a hint only: the snapshot it
 * names may have been deleted since, and is read and checked like any other).
 */
export const lineageSchema = z.object({ version: z.literal(1), key: z.string().min(1).max(1024) });

export const snapshotSchema = z.object({
  version: z.literal(2),
  /** Bytes of the shard file, and its fingerprint: the SHA-256 (hex) of its chunks' SHA-256s in order. */
  size: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** The index files that describe the blobs the runs name. */
  indexes: z.array(id),
  /** Runs, four unsigned 32-bit little-endian numbers each: index file, blob, first chunk, count. */
  runs: bytesOf('runs').refine((b) => b.length % 16 === 0, 'runs must be 16-byte records'),
  /**
   * Which file this was a snapshot of (`lineage`) and which state of it (`generation`), as its
   * source told them; a later snapshot of the same lineage may take the names of the chunks
   * that source says are unchanged since then from this one. Snapshots written before 2026-12-05
   * have none.
   */
  origin: snapshotOriginSchema.optional(),
});
export type Snapshot = z.infer<typeof snapshotSchema>;

/** Runs as stored: four unsigned 32-bit little-endian numbers each. */
export function encodeRuns(runs: readonly number[]): Buffer {
  const out = Buffer.alloc(runs.length * 4);
  runs.forEach((v, i) => out.writeUInt32LE(v, i * 4));
  return out;
}

export function decodeRuns(bytes: Buffer): Uint32Array {
  const runs = new Uint32Array(bytes.length / 4);
  for (let i = 0; i < runs.length; i++) runs[i] = bytes.readUInt32LE(i * 4);
  return runs;
}

export const chunksIn = (rawLength: number): number => Math.ceil(rawLength / CHUNK_SIZE);

