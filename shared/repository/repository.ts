/**
 * A content-addressed repository in one backend location (docs/formats.md §3): shard files cut
 * into 4 KiB chunks, each named by its SHA-256 and stored once, in compressed blobs packed into
 * pack objects; index files say which chunks exist, so a new snapshot reuses every chunk any
 * earlier one stored without listing the packs. One `Repository` per backend location and
 * process keeps a table of every chunk the location holds (27–53 bytes a chunk, in memory up to
 * CHUNKS_IN_MEMORY chunks and on disk beyond), learned from its index files (they never change
 * once written), and the last few index files it read.
 *
 * Writing (`write`): the file is named span by span in the blob pool's threads (blob-pool.ts; a
 * local file is read by the threads themselves, each byte once, and its spans come back with
 * their names without a copy); the JavaScript thread looks the names up, decides which chunks
 * are new and copies those into blobs, which are compressed in the threads and streamed into
 * the current pack. A file with an origin is compared with the latest snapshot of its lineage
 * (`.repository/lineages/<lineage>` names it): the chunks its source says are unchanged since
 * then are not named by the threads but take that snapshot's names and places, one in
 * BASE_CHECK_EVERY named all the same and compared; a streamed source (a node on another host)
 * is opened only once that snapshot is known, and leaves those chunks out of its stream. The bytes stored are the bytes named: a file read twice could change in
 * between (a live LMDB file reuses the pages its snapshot holds free). At most
 * PIPELINE blobs are in flight, a pack's blob records are let go once its index file is
 * written, and the table of chunks queued in this run is bounded, so memory does not grow
 * with the file. A pack is written before the index file that names it, and every index file
 * before the snapshot that uses it: whatever a snapshot names exists once the snapshot does.
 *
 * Reading: first the file's size and fingerprint (the SHA-256 of its chunks' SHA-256s, in
 * order) are checked against the snapshot from the index files alone. `rebuild` then reads each
 * blob once (adjacent blobs of a pack together) and has the blob pool check its chunks and write
 * them at their offsets in a local file; `open` replays the runs in order as a stream, each blob
 * read a few distinct blobs ahead of need and kept while later runs return to it (an
 * incremental snapshot's runs go back to its few new blobs all across the file), every chunk
 * checked before its bytes are passed on. A missing pack or a corrupt chunk fails with an
 * IntegrityError naming the chunk and the file.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import { hostname } from 'node:os';
import { PassThrough, Readable } from 'node:stream';
import type { z } from 'zod';
import type { Backend, CallOptions } from '../backends/backend.ts';
import { readSmall } from '../backends/bodies.ts';
import { IntegrityError, NotFoundError } from '../errors.ts';
import type { CompressionLevel } from '../formats/compression.ts';
import { allButEvery, appendRange, rangesWithin } from '../formats/ranges.ts';
import { RateLimit } from '../formats/throttle.ts';
import { keepChunks, nameFileSpan, spanBuffer, unpackBlob, type FileRange, type LocalFile, type Named, type NamedSpan } from './blob-pool.ts';
import { ChunkTable, CHUNKS_IN_MEMORY, LocationChunks } from './chunk-table.ts';
import { decodeChunks, decodeObject, encodeBlob, encodeObject, encodeSpan, objectBytes, readObject, type Encoded } from './codec.ts';
import { acquireLock } from './locks.ts';
import {
  CHUNK_SIZE,
  CHUNKS_PER_BLOB,
  chunksIn,
  decodeRuns,
  encodeRuns,
  HASH_BYTES,
  INDEX_PREFIX,
  indexFileSchema,
  indexKey,
  lineageKey,
  lineageSchema,
  MAX_METADATA_BYTES,
  newId,
  PACK_TARGET_BYTES,
  packKey,
  snapshotSchema,
  type Blob,
  type IndexFile,
  type Snapshot,
  type SnapshotOrigin,
} from './format.ts';

/**
 * Blobs compressed or queued for their pack at once (each ≤ 1 MiB raw). A worker runs several
 * shard jobs at once (WORKER_CONCURRENCY per node queue), so each one keeps little in flight.
 */
const PIPELINE = 3;
/** Blobs read ahead of the one being passed on, and decoded blobs kept for runs that return to them. */
const READ_AHEAD = 8;
const BLOB_CACHE = 8;
/**
 * Bytes of SHA-256s of the index files kept for the snapshots read next. One index file names a
 * pack's chunks: ~1 MB of them for a 32 MiB pack of compressed pages, so a byte bound, not a
 * count, keeps a worker's memory the same whatever the location holds.
 */
const KEPT_INDEX_BYTES = 8 * 1024 * 1024;
/** Index files a snapshot's reader reads at once. */
const INDEX_READS = 2;
/** Bytes of adjacent blobs a rebuild reads at once, and such reads in flight. */
const COALESCE_BYTES = 4 * 1024 * 1024;
const READS_AHEAD = 3;
/** Blobs a rebuild has the threads read from local packs at once (a few per thread). */
const LOCAL_READS_AHEAD = 6;
/**
 * Chunks already stored that a span of a whole blob may hold and still be stored as one blob
 * as it is (those are stored again, named where they were): 1/16 of it at most.
 */
const REPEATS_STORED = CHUNKS_PER_BLOB / 16;
/**
 * New chunks a run remembers to store each once; past it, it starts again. Three quarters of
 * 2^17: the most a table of 2^17 slots (2.6 MB) holds before it doubles, so a run's table never
 * grows past that (one more chunk took a table of 5.2 MB, with the old one left for the garbage
 * collector), whatever the size of the file. A chunk of a pack already written is found in the
 * repository's table anyway.
 */
const MINE_LIMIT = 3 << 15;
/**
 * Bytes of a pack's first buffer of SHA-256s (doubled when a pack's blobs need more): those of 160
 * full blobs, as many as a 32 MiB pack holds when they compress to 200 KiB (LMDB pages of JSON
 * documents at zstd 3 compress to ~230 KiB).
 */
const PACK_HASH_BYTES = 160 * CHUNKS_PER_BLOB * HASH_BYTES;
/** Buffers of SHA-256s kept for the next packs: the pack being filled and one whose index file is being written. */
const SPARE_PACK_HASHES = 2;
/** Spans of the file being named at once, beyond the one being handled. */
const NAMING_AHEAD = 4;
/** Bytes of the file named at once by one thread. */
const SPAN = 1024 * 1024;
/** In a run's list while it is written: a blob of this run, whose index file is not known yet. */
const OWN = 0xffffffff;
/** Bytes buffered by each stream stage of a snapshot. */
const STREAM_BUFFER = 256 * 1024;
/**
 * One chunk in this many of those a source says are unchanged since a base snapshot is named
 * all the same, and checked against the base's name for it.
 */
const BASE_CHECK_EVERY = 32;

/** A chunk a source said was unchanged since a base snapshot is not what the base holds there. */
class BaseMismatchError extends Error {}

/**
 * What a write takes from its base snapshot: the byte ranges its source says are unchanged since
 * then (`ranges`) and of those the ones not named (`leftOut`, all but a sample), and for every
 * chunk of the base's file its name and its place (the base's index file `indexes[file]`, blob
 * and chunk).
 */
interface BaseChunks {
  ranges: number[];
  leftOut: number[];
  names: Buffer;
  indexes: string[];
  file: Uint32Array;
  blob: Uint32Array;
  chunk: Uint16Array;
}

/** A base snapshot as read: the latest snapshot of a lineage in this location. */
interface Base {
  snapshot: Snapshot & { origin: SnapshotOrigin };
  layout: Layout;
}

/**
 * A file read in place on this host: `size` bytes of a local file (a shard on this host) that the
 * blob pool's threads read themselves — but for its first `head.length` bytes, given instead in
 * `head` (whole chunks: a shard's meta pages, read when it was snapshotted), and for the
 * (offset, length) byte ranges of `zeros`, in order, which the snapshot holds as zeros (a
 * shard's free pages).
 */
export interface LocalSource {
  file: LocalFile;
  size: number;
  head?: Buffer;
  zeros?: number[];
}

/** What a base is asked for by: its generation, and the chunks a source names all the same to check it (see allButEvery). */
export interface BaseRequest {
  generation: string;
  chunk: number;
  every: number;
}

/**
 * A file that arrives as a stream (a shard on a node on another host), opened only once the
 * repository knows the latest snapshot of its `lineage`: given that base, the source says which
 * byte ranges are unchanged since it (`unchanged`, whole chunks) and its stream leaves out
 * `allButEvery(unchanged, chunk, every)`. Opened again without a base when that account does not
 * hold; each opening's stream is read once.
 */
export interface StreamedSource {
  lineage?: string;
  open(base?: BaseRequest): Promise<{ stream: Readable; size: number; origin?: SnapshotOrigin; unchanged: number[] }>;
}

/** What a snapshot is written from: a stream of the file's bytes, a local file, or a streamed source. */
export type SnapshotSource = Readable | LocalSource | StreamedSource;

/** A source as writeLocked reads it: a stream (of `size` bytes, when known), or a local file. */
type OpenedSource = { stream: Readable; size?: number } | LocalSource;

/** A span of the file, its chunks named: its bytes, or a thread keeping them (a local file's). */
interface Span {
  offset: number;
  length: number;
  hashes: Buffer;
  kept: NamedSpan;
  /** (offset in the span, length) pairs not named (taken from the base), and the chunks (by place in the span) named to check the base. */
  skipped?: number[];
  checked?: number[];
}

/** Bytes of the SHA-256s an index file holds. */
function hashBytesOf(file: IndexFile): number {
  return file.blobs.reduce((n, blob) => n + blob.hashes.length, 0);
}

/**
 * Of the chunks a base says are unchanged, those within the span at `offset` (`length` bytes)
 * that are not named (`leftOut`) — as (offset in the span, length) pairs — and the others, by
 * place in the span, named all the same to check the base (the sample allButEvery keeps).
 */
function notToName(base: BaseChunks, offset: number, length: number): { skipped: number[]; checked: number[] } {
  const skipped = rangesWithin(base.leftOut, offset, length);
  const checked: number[] = [];
  const within = rangesWithin(base.ranges, offset, length);
  for (let i = 0, s = 0; i < within.length; i += 2) {
    for (let at = within[i]!, end = at + within[i + 1]!; at < end; at += CHUNK_SIZE) {
      while (s < skipped.length && skipped[s]! + skipped[s + 1]! <= at) s += 2;
      if (s >= skipped.length || skipped[s]! > at) checked.push(at / CHUNK_SIZE);
    }
  }
  return { skipped, checked };
}

/**
 * What a file takes from its base, given the byte ranges its source says are unchanged since
 * the base (whole chunks, in order, within the base's whole chunks and the file's `size` when
 * known), with the base's name and place of every chunk of its file; none when there are no such
 * ranges.
 */
function baseChunks({ snapshot, layout }: Base, ranges: number[], size = Infinity): BaseChunks | undefined {
  const end = Math.min(size, snapshot.size) - (Math.min(size, snapshot.size) % CHUNK_SIZE);
  for (let i = 0; i < ranges.length; i += 2) {
    if (ranges[i]! % CHUNK_SIZE !== 0 || ranges[i + 1]! % CHUNK_SIZE !== 0 || ranges[i]! + ranges[i + 1]! > end) return undefined;
  }
  if (ranges.length === 0) return undefined;
  const count = chunksIn(snapshot.size);
  const leftOut = allButEvery(ranges, CHUNK_SIZE, BASE_CHECK_EVERY);
  const chunks: BaseChunks = { ranges, leftOut, names: Buffer.allocUnsafe(count * HASH_BYTES), indexes: snapshot.indexes, file: new Uint32Array(count), blob: new Uint32Array(count), chunk: new Uint16Array(count) };
  for (let r = 0, c = 0; r < layout.runs.length; r += 4) {
    const [f, b, first, n] = [layout.runs[r]!, layout.runs[r + 1]!, layout.runs[r + 2]!, layout.runs[r + 3]!];
    layout.blobOf(f, b).blob.hashes.copy(chunks.names, c * HASH_BYTES, first * HASH_BYTES, (first + n) * HASH_BYTES);
    chunks.file.fill(f, c, c + n);
    chunks.blob.fill(b, c, c + n);
    for (let i = 0; i < n; i++) chunks.chunk[c++] = first + i;
  }
  return chunks;
}

/**
 * A stream of a file's bytes but for the ranges a base leaves out (`absent`, per span), as the
 * file's spans of SPAN bytes in order, each with its bytes at their places (the left-out ones
 * unset). `size`, when known, is the file's: a stream that ends short of it or runs past it fails.
 */
async function* spansOf(
  stream: Readable,
  size: number | undefined,
  absent: (offset: number, length: number) => { skipped: number[]; checked: number[] } | undefined,
): AsyncGenerator<{ offset: number; data: Buffer; skipped?: number[]; checked?: number[] }> {
  type Open = { offset: number; data: Buffer; at: number; gaps: number[]; g: number; skipped?: number[]; checked?: number[] };
  const begin = (offset: number): Open | undefined => {
    const length = size === undefined ? SPAN : Math.min(SPAN, size - offset);
    if (length <= 0) return undefined;
    const bits = absent(offset, length);
    return { offset, data: spanBuffer(length), at: 0, gaps: bits?.skipped ?? [], g: 0, ...bits };
  };
  // Past the left-out ranges where the span is at; whether it is then whole.
  const whole = (s: Open): boolean => {
    while (s.g < s.gaps.length && s.gaps[s.g] === s.at) {
      s.at += s.gaps[s.g + 1]!;
      s.g += 2;
    }
    return s.at === s.data.length;
  };
  const done = (s: Open) => ({ offset: s.offset, data: s.data, ...(s.skipped ? { skipped: s.skipped, checked: s.checked } : {}) });
  let span = begin(0);
  while (span && whole(span)) {
    const next = span.offset + span.at; // its data is given away once yielded
    yield done(span);
    span = begin(next);
  }
  for await (const part of stream as AsyncIterable<Buffer>) {
    for (let p = 0; p < part.length; ) {
      if (!span) throw new Error(`the file's stream runs past its ${size} bytes`);
      const to = span.g < span.gaps.length ? span.gaps[span.g]! : span.data.length;
      const n = Math.min(to - span.at, part.length - p);
      part.copy(span.data, span.at, p, p + n);
      span.at += n;
      p += n;
      while (span && whole(span)) {
        const next = span.offset + span.at; // its data is given away once yielded
        yield done(span);
        span = begin(next);
      }
    }
  }
  if (!span) return;
  if (size !== undefined) throw new Error(`the file's stream ended at byte ${span.offset + span.at} of ${size}`);
  if (span.at > 0) yield { offset: span.offset, data: span.data.subarray(0, span.at) };
}

/**
 * A file's source's account of which of its byte ranges hold what they held in a snapshot of the
 * same lineage at `generation` ((offset, length) pairs in order, whole chunks).
 */
export type UnchangedSince = (generation: string) => Promise<number[]>;

export interface WriteOptions extends CallOptions {
  level: CompressionLevel;
  /** Which file and state of it this is, recorded in the snapshot (see snapshotSchema); a streamed source says its own when opened. */
  origin?: SnapshotOrigin;
  /**
   * For a local file with an origin: the chunks it says are unchanged since the latest snapshot
   * of its lineage in this repository are not named again but take that snapshot's names (one in
   * BASE_CHECK_EVERY named all the same and checked; on any difference the file is read whole).
   */
  unchanged?: UnchangedSince;
  /** The byte-rate limit of reading the file (WORKER_MAX_BYTES_PER_SECOND); 0 or none, no limit. */
  bytesPerSecond?: number;
  /** Bytes of the file read so far and bytes stored so far; called as they grow. */
  onProgress?: (read: number, stored: number) => void;
}

export interface WriteResult {
  /** Bytes of the file, and their SHA-256. */
  size: number;
  sha256: string;
  chunks: number;
  /** Chunks this snapshot stored; the rest were in the repository already. */
  newChunks: number;
  /** Chunks named as the base snapshot names them, without hashing them. */
  unchangedChunks: number;
  /** Bytes this snapshot added to the backend: packs, index file, the snapshot itself. */
  stored: number;
  /** SHA-256 of the snapshot object (what a manifest records to check it). */
  snapshotSha256: string;
}

export interface RebuildOptions extends CallOptions {
  /** The SHA-256 a manifest recorded for the snapshot object. */
  sha256?: string;
  /** Where to write the file; without it, the snapshot is only checked. */
  file?: string;
  /** The byte-rate limit of rebuilding (WORKER_MAX_BYTES_PER_SECOND); 0 or none, no limit. */
  bytesPerSecond?: number;
  /** Bytes of the file rebuilt so far; called as they grow. */
  onProgress?: (bytes: number) => void;
}

/** The file a snapshot rebuilds: its runs (index file, blob, first chunk, count), checked. */
interface Layout {
  runs: Uint32Array;
  blobOf(file: number, blob: number): { blob: Blob; pack: string };
  /** Bytes of the file that each run fills (the run at r is `bytes[r / 4]`). */
  bytes: Uint32Array;
  /** A snapshot written before c54d5cb: the SHA-256 of the file's bytes, checked after the replay. */
  bytesSha256?: string;
}

/**
 * Where a blob lies in its pack and how it decodes, without its chunks' SHA-256s; its first
 * chunk names it in errors.
 */
interface Located {
  offset: number;
  length: number;
  codec: number;
  rawLength: number;
  firstChunk: string;
}

const located = ({ offset, length, codec, rawLength, hashes }: Blob): Located => ({ offset, length, codec, rawLength, firstChunk: hashes.subarray(0, HASH_BYTES).toString('hex') });

/** One blob's part in a rebuilt file: (first chunk, count, file offset) triples, and their bytes. */
interface BlobPart {
  f: number;
  b: number;
  writes: number[];
  bytes: number;
  /** SHA-256 of the blob's chunks' SHA-256s as its index file gave them when the snapshot was checked. */
  digest: Buffer;
}

/** A chunk's place: the index file and blob it is in, and its position there. */
interface Place {
  file: string;
  blob: number;
}

export class Repository {
  /** The last index files used for snapshots, by id, and the bytes of their hashes (keptIndexBytes at most, or one file). */
  private readonly files = new Map<string, IndexFile>();
  private filesBytes = 0;
  /** Index files whose chunks are in `known` (a restore reads index files without learning them). */
  private readonly learned = new Set<string>();
  /** Every known chunk: SHA-256 → place number × CHUNKS_PER_BLOB + position. */
  private readonly known: LocationChunks;
  private readonly places: Place[] = [];
  private refreshing: Promise<void> | undefined;

  /**
   * `keptIndexBytes`: the bytes of SHA-256s of index files kept for snapshots read next
   * (KEPT_INDEX_BYTES); `chunksInMemory`: the chunks of the location known in memory before
   * the table moves to disk (CHUNKS_IN_MEMORY).
   */
  constructor(
    readonly backend: Backend,
    private readonly keptIndexBytes = KEPT_INDEX_BYTES,
    chunksInMemory = CHUNKS_IN_MEMORY,
  ) {
    this.known = new LocationChunks(chunksInMemory);
  }

  /**
   * Read the index files written since the last look (by any process), and forget everything
   * if one was removed (by garbage collection) — a chunk of a removed run must not be reused.
   */
  refresh(options: CallOptions = {}): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const listed = (await this.backend.list(INDEX_PREFIX, options)).map((o) => ({ id: o.key.slice(INDEX_PREFIX.length), size: o.size }));
        const present = new Set(listed.map((o) => o.id));
        for (const id of this.files.keys()) if (!present.has(id)) this.forget(id);
        if ([...this.learned].some((id) => !present.has(id))) {
          this.learned.clear();
          this.known.clear();
          this.places.length = 0;
        }
        const unseen = listed.filter((o) => !this.learned.has(o.id));
        // An index file is mostly its chunks' SHA-256s, which do not compress: room for about that
        // many is made at once, not step by step (each step a new table, faulted in anew). A listed
        // size past what a reader accepts counts for no more: the read refuses it.
        this.known.reserve(unseen.reduce((n, o) => n + Math.ceil(Math.min(o.size, MAX_METADATA_BYTES) / HASH_BYTES), 0));
        for (const { id } of unseen) this.learn(id, await this.indexFile(id, options, false));
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /**
   * Store a file as a snapshot object at `key`, reusing every chunk the repository has.
   * Nothing the snapshot names is missing once it exists; a failed write leaves at most packs
   * no snapshot names (removed by garbage collection).
   */
  async write(source: SnapshotSource, key: string, options: WriteOptions): Promise<WriteResult> {
    // Shared lock: no garbage collection from before the index is read until the snapshot exists.
    const lock = await acquireLock(this.backend, false, { signal: options.signal, owner: `${hostname()} pid ${process.pid}: snapshot ${key}` });
    try {
      const { unchanged: since, ...rest } = options;
      await this.refresh(options);
      const streamed = !(source instanceof Readable) && 'open' in source ? source : undefined;
      const lineage = streamed ? streamed.lineage : since && !(source instanceof Readable) ? options.origin?.lineage : undefined;
      // The file as it is read, which it says it is, and what its base gives it.
      const open = async (base: Base | undefined): Promise<{ file: OpenedSource; origin?: SnapshotOrigin; chunks?: BaseChunks }> => {
        if (!streamed) {
          const file = source instanceof Readable ? { stream: source } : (source as LocalSource);
          return { file, origin: options.origin, chunks: base && since ? baseChunks(base, await since(base.snapshot.origin.generation)) : undefined };
        }
        const opened = await streamed.open(base && { generation: base.snapshot.origin.generation, chunk: CHUNK_SIZE, every: BASE_CHECK_EVERY });
        const file = { stream: opened.stream, size: opened.size };
        const chunks = base && opened.origin?.lineage === lineage ? baseChunks(base, opened.unchanged, opened.size) : undefined;
        if (opened.unchanged.length > 0 && !chunks) {
          // It left out chunks this write cannot take from the base: read it whole.
          opened.stream.destroy();
          throw new BaseMismatchError(`the source left out chunks that are not its base's`);
        }
        return { file, origin: opened.origin, chunks };
      };
      let read: Awaited<ReturnType<typeof open>>;
      let result: WriteResult;
      try {
        read = await open(lineage ? await this.baseOf(lineage, options) : undefined);
        result = await this.writeLocked(read.file, key, { ...rest, origin: read.origin }, read.chunks);
      } catch (err) {
        // The base's account did not hold: the file is read whole (what the try stored stays
        // in packs no snapshot names, which garbage collection removes).
        if (!(err instanceof BaseMismatchError)) throw err;
        read = await open(undefined);
        result = await this.writeLocked(read.file, key, { ...rest, origin: read.origin }, undefined);
      }
      if (read.origin) {
        const hint = await encodeObject({ version: 1, key } satisfies z.infer<typeof lineageSchema>);
        result.stored += await this.put(lineageKey(read.origin.lineage), hint, options);
      }
      return result;
    } finally {
      await lock.release();
    }
  }

  /**
   * The latest snapshot of `lineage` here (the base), when there is one of that lineage and it
   * reads. Its index files exist (they were just read) and stay (the caller holds the shared lock).
   */
  private async baseOf(lineage: string, options: CallOptions): Promise<Base | undefined> {
    try {
      const hint = await readObject(this.backend, lineageKey(lineage), lineageSchema, 'lineage', options);
      const { snapshot, layout } = await this.layout(hint.key, `base snapshot ${hint.key}`, options);
      const { origin } = snapshot;
      return origin && origin.lineage === lineage ? { snapshot: { ...snapshot, origin }, layout } : undefined;
    } catch (err) {
      if (err instanceof NotFoundError || err instanceof IntegrityError) return undefined;
      throw err;
    }
  }

  private async writeLocked(source: OpenedSource, key: string, options: Omit<WriteOptions, 'unchanged'>, unchanged: BaseChunks | undefined): Promise<WriteResult> {
    const { signal } = options;
    const files: string[] = [];
    const fileNumber = new Map<string, number>();
    const fileOf = (id: string): number => {
      let n = fileNumber.get(id);
      if (n === undefined) {
        n = files.push(id) - 1;
        fileNumber.set(id, n);
      }
      return n;
    };
    const runs: number[] = [];
    const addRun = (file: number, blob: number, chunk: number): void => {
      const n = runs.length;
      if (n > 0 && runs[n - 4] === file && runs[n - 3] === blob && runs[n - 2]! + runs[n - 1]! === chunk) runs[n - 1]!++;
      else runs.push(file, blob, chunk, 1);
    };
    // Chunks of this run already queued (a file repeats some pages: empty ones, mostly). Bounded:
    // past MINE_LIMIT it starts again, so a repeat after that is stored twice, never missed.
    // Small at first: an incremental run queues few, and each page of a table made at its full
    // size is faulted in as lookups land on it.
    const mine = new ChunkTable();
    // An index file this run writes is learned at once: later snapshots in this process reuse its
    // chunks without reading it back.
    const packs = new PackWriter(this.backend, options, (id, file) => this.learn(id, file));
    const whole = createHash('sha256');
    let size = 0;
    let chunks = 0;
    const stored = (hashes: Buffer, h: number): boolean => this.known.get(hashes, h) !== undefined || mine.get(hashes, h) !== undefined;
    // One chunk (its SHA-256 at h in hashes; its bytes, if it is stored, at from in data), named
    // already: reused or queued for a pack. Synchronous and without a Buffer per chunk, so a span
    // is handled without a turn of the event loop or garbage per chunk.
    const chunk = (hashes: Buffer, h: number, length: number, data: Buffer | undefined, from: number): void => {
      size += length;
      chunks++;
      const seen = this.known.get(hashes, h);
      if (seen !== undefined) {
        const place = this.places[Math.floor(seen / CHUNKS_PER_BLOB)]!;
        addRun(fileOf(place.file), place.blob, seen % CHUNKS_PER_BLOB);
        return;
      }
      let code = mine.get(hashes, h);
      if (code === undefined) {
        if (!data || from < 0) throw new Error(`a new chunk at byte ${size - length} of the file has no bytes`);
        code = packs.add(data, from, from + length, hashes, h);
        mine.add(hashes, code, h);
      }
      addRun(OWN, Math.floor(code / CHUNKS_PER_BLOB), code % CHUNKS_PER_BLOB);
    };
    // The chunks of a span that its thread did not name: named as the base names them (the
    // few of the base's unchanged chunks it did name checked against the base), and marked.
    let unchangedChunks = 0;
    const fromBase = (span: Span, n: number): Uint8Array => {
      const first = span.offset / CHUNK_SIZE;
      const marks = new Uint8Array(n);
      for (let i = 0; i < span.skipped!.length; i += 2) {
        const c = span.skipped![i]! / CHUNK_SIZE;
        const end = Math.min(n, c + span.skipped![i + 1]! / CHUNK_SIZE);
        unchanged!.names.copy(span.hashes, c * HASH_BYTES, (first + c) * HASH_BYTES, (first + end) * HASH_BYTES);
        marks.fill(1, c, end);
        unchangedChunks += end - c;
      }
      for (const c of span.checked!) {
        if (span.hashes.compare(unchanged!.names, (first + c) * HASH_BYTES, (first + c + 1) * HASH_BYTES, c * HASH_BYTES, (c + 1) * HASH_BYTES) !== 0) {
          throw new BaseMismatchError(`chunk ${first + c} of the file is not the base snapshot's`);
        }
      }
      return marks;
    };
    // A chunk named from the base, at its place there (no lookup: it is in the base's index files).
    const baseFiles = unchanged ? new Int32Array(unchanged.indexes.length).fill(-1) : undefined;
    const baseChunk = (c: number): void => {
      const u = unchanged!;
      const f = u.file[c]!;
      if (baseFiles![f] === -1) baseFiles![f] = fileOf(u.indexes[f]!);
      size += CHUNK_SIZE;
      chunks++;
      addRun(baseFiles![f]!, u.blob[c]!, u.chunk[c]!);
    };
    // Spans of the file whose chunks are being named (blob-pool.ts), in order, a few ahead.
    const naming: Promise<Span>[] = [];
    const handle = async (keep: number): Promise<void> => {
      while (naming.length > keep) {
        const span = await naming.shift()!;
        const n = Math.ceil(span.length / CHUNK_SIZE);
        const unread = span.skipped ? fromBase(span, n) : undefined;
        whole.update(span.hashes);
        // Bounded: past MINE_LIMIT it starts again (between spans, so a span's decisions hold).
        if (mine.size + n > MINE_LIMIT) mine.clear();
        let data: Buffer | undefined;
        // One look at each chunk: how many are new, and where the bytes of the new ones lie in
        // what the thread that keeps the span hands back when only those are taken.
        let fresh = 0;
        const offsets = new Int32Array(n).fill(-1);
        const ranges: number[] = [];
        for (let c = 0, at = 0, taken = 0; c < n; c++, at += CHUNK_SIZE) {
          if (unread?.[c] || stored(span.hashes, c * HASH_BYTES)) continue;
          const length = Math.min(CHUNK_SIZE, span.length - at);
          offsets[c] = taken;
          taken += length;
          appendRange(ranges, at, length);
          fresh++;
        }
        if (n === CHUNKS_PER_BLOB && n - fresh <= REPEATS_STORED && !unread) {
          // (Almost) every chunk is new (a full backup, mostly): the span is a blob as it is,
          // without a copy (compressed by the thread that keeps it: its bytes never come to this
          // thread), and its chunks are then queued ones like any other. The few chunks
          // of it already stored (empty pages, mostly: a few bytes each once compressed) are
          // stored again but named where they were; copying the rest chunk by chunk into a new
          // blob cost more than that.
          const first = packs.addBlob(encodeSpan(span.kept, options.level), span.length, span.hashes);
          for (let c = 0, h = 0; c < n; c++, h += HASH_BYTES) mine.add(span.hashes, first + c, h);
        } else {
          // Only the bytes of the chunks this span may store come back from the thread that named them.
          data = await span.kept.take(ranges);
        }
        const spanChunk = span.offset / CHUNK_SIZE;
        for (let c = 0, at = 0; c < n; c++, at += CHUNK_SIZE) {
          if (unread?.[c]) baseChunk(spanChunk + c);
          else chunk(span.hashes, c * HASH_BYTES, Math.min(CHUNK_SIZE, span.length - at), data, offsets[c]!);
        }
        options.onProgress?.(size, packs.stored);
        await packs.backpressure();
      }
    };
    const queue = (span: Promise<Span>) => {
      span.catch(() => undefined);
      naming.push(span);
    };
    const limit = new RateLimit(options.bytesPerSecond ?? 0);
    try {
      if ('stream' in source) {
        // The stream's bytes, gathered into the file's spans (one copy, which the naming thread
        // is then given and keeps, as it keeps a span of a local file it reads) so that a span
        // costs one trip to a thread whatever the stream's buffer size; the chunks a base says
        // are unchanged are not in it but for a sample, and are not named.
        const absent = (offset: number, length: number) => (unchanged ? notToName(unchanged, offset, length) : undefined);
        for await (const { offset, data, skipped, checked } of spansOf(source.stream, source.size, absent)) {
          signal?.throwIfAborted();
          const length = data.length;
          await limit.take(length, signal);
          queue(keepChunks(data, skipped).then((kept) => ({ offset, length, hashes: kept.hashes, kept, skipped, checked })));
          await handle(NAMING_AHEAD);
        }
      } else {
        // The threads read the file themselves, each span once, and keep it until the chunks to
        // store are known: only those bytes come to this thread, and they are the bytes named
        // (a live file may hold others by then).
        let start = 0;
        if (source.head) {
          const head = source.head.subarray(0, Math.min(source.head.length, source.size));
          if (head.length % CHUNK_SIZE !== 0 && head.length < source.size) throw new Error(`a snapshot's head of ${head.length} bytes is not whole chunks`);
          start = head.length;
          queue(keepChunks(Buffer.from(head)).then((kept) => ({ offset: 0, length: head.length, hashes: kept.hashes, kept })));
        }
        for (let offset = start; offset < source.size; offset += SPAN) {
          signal?.throwIfAborted();
          const length = Math.min(SPAN, source.size - offset);
          await limit.take(length, signal);
          const zeros = source.zeros ? rangesWithin(source.zeros, offset, length) : undefined;
          const { skipped, checked } = unchanged ? notToName(unchanged, offset, length) : { skipped: undefined, checked: undefined };
          queue(nameFileSpan(source.file, offset, length, zeros, skipped).then((kept) => ({ offset, length, hashes: kept.hashes, kept, skipped, checked })));
          await handle(NAMING_AHEAD);
        }
      }
      await handle(0);
      await packs.finish();
      // This run's blobs are named by the index file of their pack, known now.
      for (let r = 0; r < runs.length; r += 4) {
        if (runs[r] !== OWN) continue;
        const at = packs.placed[runs[r + 1]!]!;
        runs[r] = fileOf(at.index);
        runs[r + 1] = at.blob;
      }
      let stored = packs.stored;
      const snapshot: Snapshot = { version: 2, size, sha256: whole.digest('hex'), indexes: files, runs: encodeRuns(runs), ...(options.origin ? { origin: options.origin } : {}) };
      const body = await encodeObject(snapshot);
      stored += await this.put(key, body, options);
      options.onProgress?.(size, stored);
      return {
        size,
        sha256: snapshot.sha256,
        chunks,
        newChunks: packs.chunks,
        unchangedChunks,
        stored,
        snapshotSha256: createHash('sha256').update(body).digest('hex'),
      };
    } catch (err) {
      packs.abort(err as Error);
      if ('stream' in source) source.stream.destroy();
      // Spans a thread still keeps for this run are let go.
      for (const pending of naming) void pending.then((span) => span.kept.take([])).catch(() => undefined);
      throw err;
    }
  }

  /**
   * A snapshot (checked against the SHA-256 a manifest recorded for it, when given) and a
   * stream of the file it rebuilds, every chunk checked on the way; `where` names the file in
   * errors (`shard A/0 on node-1`).
   */
  async open(key: string, where: string, options: CallOptions & { sha256?: string } = {}): Promise<{ snapshot: Snapshot; stream: Readable }> {
    const { snapshot, layout } = await this.layout(key, where, options);
    return { snapshot, stream: Readable.from(this.replay(layout, where, options), { objectMode: false, highWaterMark: STREAM_BUFFER }) };
  }

  /**
   * Rebuild a snapshot's file in place at `file` (created, or replaced), or with no file only
   * check it: each blob is read once, however often the runs return to it (blobs adjacent in a
   * pack in one ranged read; by the thread itself from a pack that is a file on this host), and
   * its chunks are checked and written at their offsets by a blob pool thread, a few reads at a
   * time, so that the file's bytes never reach the JavaScript thread of a local restore.
   * Throws an IntegrityError naming the first missing or corrupt chunk it meets; the file is
   * then incomplete.
   */
  async rebuild(key: string, where: string, options: RebuildOptions = {}): Promise<Snapshot> {
    const { snapshot, parts, bytesSha256 } = await this.blobParts(key, where, options);
    if (bytesSha256) return this.rebuildInOrder(key, where, options);
    if (options.file) {
      const handle = await fs.promises.open(options.file, 'w');
      await handle.truncate(snapshot.size).finally(() => handle.close());
    }
    // The file is written at offsets, in any order: blobs are read in the order they lie in their
    // packs, and those that lie one after another (a snapshot stores its new blobs in one go) are
    // read together, up to COALESCE_BYTES at once: one request for many blobs. Packs that are
    // files on this host are read by the threads themselves, blob by blob. Under a rate limit a
    // read holds at most a quarter second of it, so that the rate is kept, and progress shown, in
    // small steps rather than one wait for a whole read (4 MiB stored can be 16 MiB of file).
    const local = this.backend.localFile ? new Map<string, Promise<string>>() : undefined;
    const coalesce = local ? 0 : COALESCE_BYTES;
    const rated = options.bytesPerSecond ? options.bytesPerSecond / 4 : Infinity;
    parts.sort((x, y) => (x.pack === y.pack ? x.blob.offset - y.blob.offset : x.pack < y.pack ? -1 : 1));
    const reads: { pack: string; start: number; length: number; bytes: number; blobs: { blob: Located; group: BlobPart }[] }[] = [];
    for (const { group, blob, pack } of parts) {
      const last = reads.at(-1);
      if (last && last.pack === pack && last.start + last.length === blob.offset && last.length + blob.length <= coalesce && last.bytes + group.bytes <= rated) {
        last.length += blob.length;
        last.bytes += group.bytes;
        last.blobs.push({ blob, group });
      } else {
        reads.push({ pack, start: blob.offset, length: blob.length, bytes: group.bytes, blobs: [{ blob, group }] });
      }
    }
    const limit = new RateLimit(options.bytesPerSecond ?? 0);
    const inFlight: Promise<void>[] = [];
    let done = 0;
    const localPack = (pack: string, blob: Located): Promise<string> => {
      let file = local!.get(pack);
      if (!file) {
        file = this.backend.localFile!(packKey(pack), options).then(
          ({ path }) => path,
          (err: unknown) => {
            throw err instanceof NotFoundError ? this.missing(blob, pack, where) : err;
          },
        );
        local!.set(pack, file);
      }
      return file;
    };
    // A blob's chunks' SHA-256s, from its index file read again when its turn comes (the few
    // kept, or one read for the blobs that need it at once): a rebuild holds no more of them than
    // the repository keeps, whatever the size of the file.
    const reading = new Map<number, Promise<IndexFile>>();
    const hashesOf = async ({ f, b, digest }: BlobPart): Promise<Buffer> => {
      let file = reading.get(f);
      if (!file) {
        file = this.indexFile(snapshot.indexes[f]!, options).finally(() => reading.delete(f));
        reading.set(f, file);
      }
      const hashes = (await file).blobs[b]?.hashes;
      if (!hashes || !createHash('sha256').update(hashes).digest().equals(digest)) {
        throw new IntegrityError(`${where}: index file ${this.backend.locate(indexKey(snapshot.indexes[f]!))} changed while it was read`);
      }
      return hashes;
    };
    for (const read of reads) {
      options.signal?.throwIfAborted();
      await limit.take(read.bytes, options.signal);
      const unpacked = (async () => {
        const stored = local ? undefined : await this.readStored(read.pack, read.start, read.length, read.blobs[0]!.blob, where, options);
        await Promise.all(
          read.blobs.map(async ({ blob, group }) => {
            const { writes } = group;
            const hashes = await hashesOf(group);
            const expected = Buffer.concat(Array.from({ length: writes.length / 3 }, (_, i) => hashes.subarray(writes[3 * i]! * HASH_BYTES, (writes[3 * i]! + writes[3 * i + 1]!) * HASH_BYTES)));
            const bytes = stored
              ? stored.subarray(blob.offset - read.start, blob.offset - read.start + blob.length)
              : { file: await localPack(read.pack, blob), offset: blob.offset, length: blob.length };
            const corrupt = await unpackBlob(bytes, blob.codec, blob.rawLength, writes, expected, options.file).catch((err: unknown) => {
              throw this.unreadable(blob, read.pack, where, err);
            });
            if (corrupt !== undefined) throw this.corrupt(expected.subarray(corrupt * HASH_BYTES, (corrupt + 1) * HASH_BYTES), read.pack, where);
            done += group.bytes;
            options.onProgress?.(done);
          }),
        );
      })();
      unpacked.catch(() => undefined);
      inFlight.push(unpacked);
      if (inFlight.length >= (local ? LOCAL_READS_AHEAD : READS_AHEAD)) await inFlight.shift();
    }
    await Promise.all(inFlight);
    return snapshot;
  }

  /** A snapshot written before c54d5cb rebuilt in file order, so that replay can hash its bytes. */
  private async rebuildInOrder(key: string, where: string, options: RebuildOptions): Promise<Snapshot> {
    const { snapshot, stream } = await this.open(key, where, options);
    const limit = new RateLimit(options.bytesPerSecond ?? 0);
    const handle = options.file ? await fs.promises.open(options.file, 'w') : undefined;
    try {
      let done = 0;
      for await (const bytes of stream as AsyncIterable<Buffer>) {
        await limit.take(bytes.length, options.signal);
        if (handle) await handle.write(bytes, 0, bytes.length, done);
        done += bytes.length;
        options.onProgress?.(done);
      }
    } finally {
      await handle?.close();
    }
    return snapshot;
  }

  /**
   * A snapshot checked (read), and every blob it needs once, with the runs it fills and where it
   * lies, but not its chunks' SHA-256s (a digest of them instead): the index files are let go as
   * the check passes them, so a rebuild holds few at once whatever the size of the file.
   */
  private async blobParts(key: string, where: string, options: CallOptions & { sha256?: string }): Promise<{ snapshot: Snapshot; parts: { group: BlobPart; blob: Located; pack: string }[]; bytesSha256?: string }> {
    const groups = new Map<string, { group: BlobPart; blob: Located; pack: string }>();
    let offset = 0;
    const { snapshot, bytesSha256 } = await this.read(key, where, options, (runs, r, file, blob, bytes) => {
      const name = `${runs[r]}/${runs[r + 1]}`;
      let part = groups.get(name);
      if (!part) {
        const group = { f: runs[r]!, b: runs[r + 1]!, writes: [], bytes: 0, digest: createHash('sha256').update(blob.hashes).digest() };
        groups.set(name, (part = { group, blob: located(blob), pack: file.packs[blob.pack]! }));
      }
      part.group.writes.push(runs[r + 2]!, runs[r + 3]!, offset);
      part.group.bytes += bytes;
      offset += bytes;
    });
    return { snapshot, parts: [...groups.values()], ...(bytesSha256 ? { bytesSha256 } : {}) };
  }

  /** A snapshot checked (read), and the layout of the file it rebuilds, every index file it names kept. */
  private async layout(key: string, where: string, options: CallOptions & { sha256?: string }): Promise<{ snapshot: Snapshot; layout: Layout }> {
    const files = new Map<number, IndexFile>();
    const sizes: number[] = [];
    const { snapshot, runs, bytesSha256 } = await this.read(key, where, options, (all, r, file, _blob, bytes) => {
      files.set(all[r]!, file);
      sizes.push(bytes);
    });
    const blobOf = (f: number, b: number): { blob: Blob; pack: string } => {
      const file = files.get(f)!;
      const blob = file.blobs[b]!;
      return { blob, pack: file.packs[blob.pack]! };
    };
    return { snapshot, layout: { runs, blobOf, bytes: Uint32Array.from(sizes), ...(bytesSha256 ? { bytesSha256 } : {}) } };
  }

  /**
   * A snapshot object, checked before a byte of the file it rebuilds is read: every run names a
   * blob that exists and chunks within it, and the chunks' SHA-256s as the index files give them
   * make the snapshot's size and fingerprint. `visit` sees each run in order (its place r in
   * `runs`, its index file, its blob and the bytes of the file it fills). Index files are read in
   * the order the runs first name them, INDEX_READS ahead, and this lets each go after the last
   * run that names it.
   */
  private async read(
    key: string,
    where: string,
    options: CallOptions & { sha256?: string },
    visit: (runs: Uint32Array, r: number, file: IndexFile, blob: Blob, bytes: number) => void,
  ): Promise<{ snapshot: Snapshot; runs: Uint32Array; bytesSha256?: string }> {
    const body = await readSmall(await this.backend.read(key, options), MAX_METADATA_BYTES, 'snapshot');
    if (options.sha256) {
      const actual = createHash('sha256').update(body).digest('hex');
      if (actual !== options.sha256) {
        throw new IntegrityError(`checksum mismatch for ${this.backend.locate(key)}: expected sha256 ${options.sha256}, got ${actual}`);
      }
    }
    const snapshot = await decodeObject(body, snapshotSchema, this.backend.locate(key));
    const runs = decodeRuns(snapshot.runs);
    const order: number[] = [];
    const lastRun = new Map<number, number>();
    for (let r = 0; r < runs.length; r += 4) {
      if (!lastRun.has(runs[r]!)) order.push(runs[r]!);
      lastRun.set(runs[r]!, r);
    }
    const turn = new Map(order.map((f, i) => [f, i]));
    const reading = new Map<number, Promise<IndexFile>>();
    const loaded = new Map<number, IndexFile>();
    let started = 0;
    const fileOf = async (f: number): Promise<IndexFile> => {
      for (const until = Math.min(order.length, turn.get(f)! + INDEX_READS); started < until; started++) {
        const g = order[started]!;
        const id = snapshot.indexes[g];
        const file = id === undefined ? Promise.reject(new IntegrityError(`${where}: the snapshot names index file ${g} of ${snapshot.indexes.length}`)) : this.indexFile(id, options);
        file.catch(() => undefined);
        reading.set(g, file);
      }
      const file = await reading.get(f)!;
      loaded.set(f, file);
      return file;
    };
    const whole = createHash('sha256');
    let size = 0;
    for (let r = 0; r < runs.length; r += 4) {
      const f = runs[r]!;
      const b = runs[r + 1]!;
      const file = loaded.get(f) ?? (await fileOf(f));
      const blob = file.blobs[b];
      if (!blob) throw new IntegrityError(`${where}: the snapshot names blob ${b} of index file ${snapshot.indexes[f]}, which has no such blob`);
      const first = runs[r + 2]!;
      const end = first + runs[r + 3]!;
      if (end > chunksIn(blob.rawLength)) throw new IntegrityError(`${where}: the snapshot names chunks past the end of a blob`);
      whole.update(blob.hashes.subarray(first * HASH_BYTES, end * HASH_BYTES));
      const bytes = Math.min(end * CHUNK_SIZE, blob.rawLength) - first * CHUNK_SIZE;
      size += bytes;
      visit(runs, r, file, blob, bytes);
      if (lastRun.get(f) === r) {
        reading.delete(f);
        loaded.delete(f);
      }
    }
    const fingerprint = whole.digest('hex');
    if (size !== snapshot.size) {
      throw new IntegrityError(`${where} rebuilds as ${size} bytes with fingerprint ${fingerprint}; the snapshot says ${snapshot.size} bytes, ${snapshot.sha256}`);
    }
    // Snapshots written before c54d5cb (the first format-2 versions) record the SHA-256 of the
    // file's bytes, not the fingerprint: each chunk is still checked against its own SHA-256, and
    // the file's bytes are hashed and compared once they are rebuilt, as those versions did.
    if (fingerprint !== snapshot.sha256) return { snapshot, runs, bytesSha256: snapshot.sha256 };
    return { snapshot, runs };
  }

  private async *replay(layout: Layout, where: string, options: CallOptions): AsyncGenerator<Buffer> {
    const { runs, blobOf } = layout;
    const legacy = layout.bytesSha256 ? createHash('sha256') : undefined;
    // The blobs in the order the runs need them, and for each place in that order the next
    // place that needs the same blob: an incremental snapshot interleaves runs of old blobs with
    // runs of the few new blobs that hold the changed chunks, and a chunk that repeats in the
    // file (an empty page) sends a run back to the blob that first stored it.
    const order: [number, number][] = [];
    for (let r = 0; r < runs.length; r += 4) {
      const last = order.at(-1);
      if (!last || last[0] !== runs[r] || last[1] !== runs[r + 1]) order.push([runs[r]!, runs[r + 1]!]);
    }
    const names = order.map(([f, b]) => `${f}/${b}`);
    const nextOf = new Array<number>(order.length);
    const seenAt = new Map<string, number>();
    for (let at = order.length - 1; at >= 0; at--) {
      nextOf[at] = seenAt.get(names[at]!) ?? Infinity;
      seenAt.set(names[at]!, at);
    }
    // Each blob read, decoded and its chunks named (in the blob pool), a few ahead of need, and
    // kept while it is needed again; past BLOB_CACHE + READ_AHEAD blobs, the one needed
    // farthest ahead is dropped (and read again when its turn comes).
    const cache = new Map<string, { named: Promise<Named>; next: number }>();
    const fetch = (at: number): Promise<Named> => {
      const name = names[at]!;
      let kept = cache.get(name);
      if (!kept) {
        const { blob, pack } = blobOf(...order[at]!);
        kept = { named: this.readBlob(blob, pack, where, options), next: at };
        kept.named.catch(() => undefined);
        cache.set(name, kept);
        while (cache.size > BLOB_CACHE + READ_AHEAD) {
          let farthest: [string, number] | undefined;
          for (const [other, k] of cache) if (other !== name && (!farthest || k.next > farthest[1])) farthest = [other, k.next];
          cache.delete(farthest![0]);
        }
      }
      return kept.named;
    };
    /** Done with the blob at this place in the order: keep it for its next turn, or let it go. */
    const passed = (at: number): void => {
      const kept = cache.get(names[at]!);
      if (!kept) return;
      if (nextOf[at] === Infinity) cache.delete(names[at]!);
      else kept.next = nextOf[at]!;
    };
    let step = 0;
    for (let r = 0; r < runs.length; r += 4) {
      const f = runs[r]!;
      const b = runs[r + 1]!;
      while (step < order.length && (order[step]![0] !== f || order[step]![1] !== b)) passed(step++);
      // READ_AHEAD distinct blobs ahead (interleaved runs name the same few blobs again and again).
      const ahead = new Set<string>();
      for (let at = step + 1; at < order.length && at <= step + 4 * READ_AHEAD && ahead.size < READ_AHEAD; at++) {
        if (ahead.has(names[at]!)) continue;
        ahead.add(names[at]!);
        void fetch(at).catch(() => undefined);
      }
      const { blob, pack } = blobOf(f, b);
      const { data, hashes } = await fetch(step);
      const first = runs[r + 2]!;
      const count = runs[r + 3]!;
      for (let c = first; c < first + count; c++) {
        const expected = blob.hashes.subarray(c * HASH_BYTES, (c + 1) * HASH_BYTES);
        if (!hashes.subarray(c * HASH_BYTES, (c + 1) * HASH_BYTES).equals(expected)) throw this.corrupt(expected, pack, where);
      }
      const bytes = data.subarray(first * CHUNK_SIZE, first * CHUNK_SIZE + layout.bytes[r / 4]!);
      legacy?.update(bytes);
      yield bytes;
    }
    if (legacy) {
      const sha256 = legacy.digest('hex');
      if (sha256 !== layout.bytesSha256) {
        throw new IntegrityError(`${where} rebuilds as bytes with sha256 ${sha256} (and not the fingerprint the snapshot says); the snapshot says ${layout.bytesSha256}`);
      }
    }
  }

  /** A blob's bytes, decoded, and the SHA-256s of its chunks (named in the blob pool, not yet checked). */
  private async readBlob(blob: Blob, pack: string, where: string, options: CallOptions): Promise<Named> {
    const at = located(blob);
    const stored = await this.readStored(pack, blob.offset, blob.length, at, where, options);
    const named = await decodeChunks(blob.codec, stored).catch((err: unknown) => {
      throw this.unreadable(at, pack, where, err);
    });
    if (named.data.length !== blob.rawLength) throw this.unreadable(at, pack, where, new Error(`it decodes to ${named.data.length} bytes, not ${blob.rawLength}`));
    return named;
  }

  /** Stored bytes of a pack, by one ranged read; `blob` (the first one read) names them in errors. */
  private async readStored(pack: string, start: number, length: number, blob: Located, where: string, options: CallOptions): Promise<Buffer> {
    const key = packKey(pack);
    let stored: Buffer;
    try {
      stored = await readSmall(await this.backend.read(key, { ...options, range: { start, length } }), length, 'blob');
    } catch (err) {
      if (err instanceof NotFoundError) throw this.missing(blob, pack, where);
      throw err;
    }
    if (stored.length !== length) throw this.unreadable(blob, pack, where, new Error(`${stored.length} of ${length} bytes`));
    return stored;
  }

  private missing(blob: Located, pack: string, where: string): IntegrityError {
    return new IntegrityError(`chunk ${blob.firstChunk} of ${where} is missing: ${this.backend.locate(packKey(pack))} does not exist`);
  }

  private unreadable(blob: Located, pack: string, where: string, err: unknown): IntegrityError {
    return new IntegrityError(`chunk ${blob.firstChunk} of ${where} is corrupt: its blob at ${this.backend.locate(packKey(pack))} (offset ${blob.offset}) cannot be read (${(err as Error).message})`);
  }

  private corrupt(hash: Buffer, pack: string, where: string): IntegrityError {
    return new IntegrityError(`chunk ${hash.toString('hex')} of ${where} is corrupt: its bytes in ${this.backend.locate(packKey(pack))} do not hash to it`);
  }

  /**
   * An index file, from the few last used (a rebuild reads its snapshot's again, one after
   * another, and a location's snapshots name the same ones again and again), else read;
   * `keep: false` reads one without keeping it (refresh learns its chunks and lets it go: the
   * table of chunks is all a snapshot needs).
   */
  private async indexFile(id: string, options: CallOptions, keep = true): Promise<IndexFile> {
    const cached = this.files.get(id);
    if (cached) {
      // The most recently used last: the first is the one let go.
      this.files.delete(id);
      this.files.set(id, cached);
      return cached;
    }
    const key = indexKey(id);
    let body: Buffer | FileRange;
    try {
      body = await objectBytes(this.backend, key, 'index file', options);
    } catch (err) {
      if (err instanceof NotFoundError) throw new IntegrityError(`index file ${this.backend.locate(key)} is missing`);
      throw err;
    }
    const file = await decodeObject(body, indexFileSchema, this.backend.locate(key));
    if (keep) {
      // (Another call may have read and kept it meanwhile: counted once.)
      this.forget(id);
      this.files.set(id, file);
      this.filesBytes += hashBytesOf(file);
      while (this.filesBytes > this.keptIndexBytes && this.files.size > 1) this.forget(this.files.keys().next().value!);
    }
    return file;
  }

  /** An index file kept no more. */
  private forget(id: string): void {
    const file = this.files.get(id);
    if (!file) return;
    this.files.delete(id);
    this.filesBytes -= hashBytesOf(file);
  }

  /** Remember an index file and its chunks, for snapshots to reuse. */
  private learn(id: string, file: IndexFile): void {
    if (this.learned.has(id)) return;
    this.learned.add(id);
    this.known.reserve(file.blobs.reduce((n, blob) => n + chunksIn(blob.rawLength), 0));
    file.blobs.forEach((blob, b) => {
      const place = this.places.push({ file: id, blob: b }) - 1;
      for (let c = 0; c < chunksIn(blob.rawLength); c++) this.known.add(blob.hashes, place * CHUNKS_PER_BLOB + c, c * HASH_BYTES);
    });
  }

  private async put(key: string, body: Buffer, options: CallOptions): Promise<number> {
    return (await this.backend.write(key, Readable.from([body]), options)).bytes;
  }
}

/**
 * New chunks into blobs, blobs into packs: each blob is compressed as soon as it is full (on the
 * thread pool) and appended to the current pack in order; a pack is closed at PACK_TARGET_BYTES
 * and its upload finishes in the background.
 */
class PackWriter {
  stored = 0;
  /** New chunks queued. */
  chunks = 0;
  /** Where each blob of this run went, by its run-local number: index file id and position there. */
  readonly placed: { index: string; blob: number }[] = [];
  /** The blob being filled: its bytes, the SHA-256s of its chunks, and how many chunks and bytes it has. */
  private blob: Buffer | undefined;
  private blobHashes = Buffer.allocUnsafeSlow(CHUNKS_PER_BLOB * HASH_BYTES);
  private filled = 0;
  private bytes = 0;
  private next = 0;
  private chain: Promise<void> = Promise.resolve();
  /** The last PIPELINE + 1 blobs queued: each one's promise of being appended. */
  private readonly appended: Promise<void>[] = [];
  private current: OpenPack | undefined;
  /**
   * Buffers for the SHA-256s of a pack's blobs, each handed on to the next pack once the index
   * file of the last is written. They are held that long (a pack takes a second or two to fill),
   * so V8 would move buffers of their own to its old generation, whose ArrayBuffers it frees only
   * at a full collection, seconds apart: a file's worth of SHA-256s (10.8 MB for a 1 GiB shard)
   * piled up until then.
   */
  private readonly spareHashes: Buffer[] = [];
  /** Each closed pack: its upload, then its index file. */
  private readonly closed: Promise<void>[] = [];

  constructor(
    private readonly backend: Backend,
    private readonly options: WriteOptions,
    /** Called with each index file once it is written. */
    private readonly written: (id: string, file: IndexFile) => void,
  ) {}

  /** Queue a new chunk (bytes from..to of data, its SHA-256 at h in hashes); answers its run-local blob number × CHUNKS_PER_BLOB + position. */
  add(data: Buffer, from: number, to: number, hashes: Buffer, h: number): number {
    const code = this.next * CHUNKS_PER_BLOB + this.filled;
    this.chunks++;
    this.blob ??= Buffer.allocUnsafeSlow(CHUNKS_PER_BLOB * CHUNK_SIZE);
    data.copy(this.blob, this.bytes, from, to);
    hashes.copy(this.blobHashes, this.filled * HASH_BYTES, h, h + HASH_BYTES);
    this.bytes += to - from;
    if (++this.filled === CHUNKS_PER_BLOB) this.flush();
    return code;
  }

  /**
   * Queue a whole blob of new chunks as it is, being encoded already (rawLength bytes; hashes,
   * their SHA-256s); answers the code of its first chunk. A blob being filled is closed first.
   */
  addBlob(encoded: Promise<Encoded>, rawLength: number, hashes: Buffer): number {
    if (this.filled > 0) this.flush();
    const code = this.next * CHUNKS_PER_BLOB;
    this.chunks += hashes.length / HASH_BYTES;
    this.queue(encoded, rawLength, hashes);
    return code;
  }

  /** Waits while PIPELINE blobs are still being compressed or appended. */
  async backpressure(): Promise<void> {
    if (this.appended.length > PIPELINE) await this.appended[0];
  }

  /** Every blob in a finished pack named by a written index file. */
  async finish(): Promise<void> {
    if (this.filled > 0) this.flush();
    await this.chain;
    this.closePack();
    await Promise.all(this.closed);
  }

  abort(err: Error): void {
    this.current?.stream.destroy(err);
    for (const c of this.closed) c.catch(() => undefined);
    this.chain.catch(() => undefined);
  }

  private flush(): void {
    const rawLength = this.bytes;
    const hashes = Buffer.from(this.blobHashes.subarray(0, this.filled * HASH_BYTES));
    // A full blob owns its ArrayBuffer and is given to the compressing thread without a copy.
    const blob = this.blob!;
    this.blob = undefined;
    this.filled = 0;
    this.bytes = 0;
    this.queue(encodeBlob(rawLength === blob.length ? blob : blob.subarray(0, rawLength), this.options.level, true), rawLength, hashes);
  }

  /** The next blob of this run (hashes: its chunks' SHA-256s, left as they are until then), appended to the pack in order once encoded. */
  private queue(encoded: Promise<Encoded>, rawLength: number, hashes: Buffer): void {
    const number = this.next++;
    encoded.catch(() => undefined);
    this.chain = this.chain.then(async () => {
      const { codec, data } = await encoded;
      const { pack, offset } = await this.append(data);
      pack.blobs.push({ pack: 0, offset, length: data.length, codec, rawLength, hashes: keepHashes(pack, hashes) });
      pack.numbers.push(number);
    });
    this.appended.push(this.chain);
    if (this.appended.length > PIPELINE + 1) this.appended.shift();
  }

  private async append(data: Buffer): Promise<{ pack: OpenPack; offset: number }> {
    if (!this.current || this.current.bytes >= PACK_TARGET_BYTES) {
      this.closePack();
      const id = newId();
      const stream = new PassThrough({ highWaterMark: STREAM_BUFFER });
      const upload = this.backend.write(packKey(id), stream, { signal: this.options.signal });
      upload.catch(() => undefined);
      const hashes = this.spareHashes.pop() ?? Buffer.allocUnsafeSlow(PACK_HASH_BYTES);
      this.current = { id, stream, upload, bytes: 0, blobs: [], numbers: [], hashes, hashesUsed: 0 };
    }
    const current = this.current;
    const offset = current.bytes;
    current.bytes += data.length;
    this.stored += data.length;
    if (!current.stream.write(data)) await Promise.race([once(current.stream, 'drain'), current.upload]);
    return { pack: current, offset };
  }

  /**
   * End the current pack; once its upload is complete, write the index file naming its blobs
   * (one index file per pack: a run never holds more than one pack's blob records, and
   * garbage collection frees space pack by pack).
   */
  private closePack(): void {
    const pack = this.current;
    if (!pack) return;
    this.current = undefined;
    pack.stream.end();
    const done = (async () => {
      await pack.upload;
      const index = newId();
      const file: IndexFile = { version: 1, packs: [pack.id], blobs: pack.blobs };
      this.stored += (await this.backend.write(indexKey(index), Readable.from([await encodeObject(file)]), { signal: this.options.signal })).bytes;
      pack.numbers.forEach((n, blob) => (this.placed[n] = { index, blob }));
      this.written(index, file);
      // Encoded and learned (copied into the table): its blobs' SHA-256s are not needed any more.
      if (this.spareHashes.length < SPARE_PACK_HASHES) this.spareHashes.push(pack.hashes);
    })();
    done.catch(() => undefined);
    this.closed.push(done);
  }
}

/** A pack being filled: its upload, its blobs so far, and where their chunks' SHA-256s are kept (`hashes`, up to `hashesUsed`). */
interface OpenPack {
  id: string;
  stream: PassThrough;
  upload: Promise<unknown>;
  bytes: number;
  blobs: Blob[];
  numbers: number[];
  hashes: Buffer;
  hashesUsed: number;
}

/**
 * A blob's SHA-256s copied into its pack's buffer, answered as the copy; a full buffer is
 * replaced by one twice its size (the blobs before keep the old one until the index file is written).
 */
function keepHashes(pack: OpenPack, hashes: Buffer): Buffer {
  if (pack.hashesUsed + hashes.length > pack.hashes.length) {
    pack.hashes = Buffer.allocUnsafeSlow(Math.max(2 * pack.hashes.length, hashes.length));
    pack.hashesUsed = 0;
  }
  const at = pack.hashesUsed;
  pack.hashesUsed += hashes.copy(pack.hashes, at);
  return pack.hashes.subarray(at, pack.hashesUsed);
}

const repositories = new WeakMap<Backend, Repository>();

/** The repository of a backend location, one per process (backends are one per location, shared/backups/backends.ts). */
export function repositoryOf(backend: Backend): Repository {
  let repo = repositories.get(backend);
  if (!repo) {
    repo = new Repository(backend);
    repositories.set(backend, repo);
  }
  return repo;
}
