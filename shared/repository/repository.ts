/**
 * A content-addressed repository in one backend location (docs/formats.md §3): shard files cut
 * into 4 KiB chunks, each named by its SHA-256 and stored once, in compressed blobs packed into
 * pack objects; index files say which chunks exist, so a new snapshot reuses every chunk any
 * earlier one stored without listing the packs. One `Repository` per backend location and
 * process keeps the index files it has read (they never change once written).
 *
 * Writing (`write`): chunks are hashed on the JavaScript thread while blobs are compressed on
 * the thread pool and streamed into the current pack; at most PIPELINE blobs are in flight, a
 * pack's blob records are let go once its index file is written, and the table of chunks
 * queued in this run is bounded, so memory does not grow with the file. A pack is written
 * before the index file that names it, and every index file before the snapshot that uses
 * it: whatever a snapshot names exists once the snapshot does.
 *
 * Reading (`open`): the snapshot's runs are replayed in order; each blob is read with one
 * ranged read (a few distinct blobs ahead of need, and kept while later runs return to it: an
 * incremental snapshot's runs go back to its few new blobs all across the file), decoded, its
 * chunks named in the hash pool, and every chunk checked against its SHA-256 before its bytes
 * are passed on; the file's size and fingerprint (the SHA-256 of its chunks' SHA-256s, in
 * order) are checked at the end. A missing pack or a corrupt chunk fails with an
 * IntegrityError naming the chunk and the file.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { hostname } from 'node:os';
import { PassThrough, Readable } from 'node:stream';
import type { Backend, CallOptions } from '../backends/backend.ts';
import { readSmall } from '../backends/bodies.ts';
import { IntegrityError, NotFoundError } from '../errors.ts';
import type { CompressionLevel } from '../formats/compression.ts';
import { decodeBlob, encodeBlob } from './codec.ts';
import { ChunkTable } from './chunk-table.ts';
import { hashChunks, type Named } from './hash-pool.ts';
import { acquireLock } from './locks.ts';
import {
  CHUNK_SIZE,
  CHUNKS_PER_BLOB,
  chunksIn,
  decodeObject,
  decodeRuns,
  encodeObject,
  encodeRuns,
  HASH_BYTES,
  INDEX_PREFIX,
  indexFileSchema,
  indexKey,
  MAX_METADATA_BYTES,
  newId,
  PACK_TARGET_BYTES,
  packKey,
  snapshotSchema,
  type Blob,
  type IndexFile,
  type Snapshot,
} from './format.ts';

/**
 * Blobs compressed or queued for their pack at once (each ≤ 1 MiB raw). A worker runs several
 * shard jobs at once (WORKER_CONCURRENCY per node queue), so each one keeps little in flight.
 */
const PIPELINE = 3;
/** Blobs read ahead of the one being passed on, and decoded blobs kept for runs that return to them. */
const READ_AHEAD = 8;
const BLOB_CACHE = 8;
/** New chunks a run remembers to store each once (5 MB of table); past it, it starts again. */
const MINE_LIMIT = 1 << 17;
/** Source buffers being named at once, beyond the one being handled. */
const NAMING_AHEAD = 4;
/** In a run's list while it is written: a blob of this run, whose index file is not known yet. */
const OWN = 0xffffffff;
/** Bytes buffered by each stream stage of a snapshot. */
export const STREAM_BUFFER = 256 * 1024;

export interface WriteOptions extends CallOptions {
  level: CompressionLevel;
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
  /** Bytes this snapshot added to the backend: packs, index file, the snapshot itself. */
  stored: number;
  /** SHA-256 of the snapshot object (what a manifest records to check it). */
  snapshotSha256: string;
}

/** A chunk's place: the index file and blob it is in, and its position there. */
interface Place {
  file: string;
  blob: number;
}

export class Repository {
  /** Index files read or written, by id. */
  private readonly files = new Map<string, IndexFile>();
  /** Index files whose chunks are in `known` (a restore reads index files without learning them). */
  private readonly learned = new Set<string>();
  /** Every known chunk: SHA-256 → place number × CHUNKS_PER_BLOB + position. */
  private readonly known = new ChunkTable();
  private readonly places: Place[] = [];
  private refreshing: Promise<void> | undefined;

  constructor(readonly backend: Backend) {}

  /**
   * Read the index files written since the last look (by any process), and forget everything
   * if one was removed (by garbage collection) — a chunk of a removed run must not be reused.
   */
  refresh(options: CallOptions = {}): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const listed = await this.backend.list(INDEX_PREFIX, options);
        const present = new Set(listed.map((o) => o.key.slice(INDEX_PREFIX.length)));
        for (const id of this.files.keys()) if (!present.has(id)) this.files.delete(id);
        if ([...this.learned].some((id) => !present.has(id))) {
          this.learned.clear();
          this.known.clear();
          this.places.length = 0;
        }
        for (const id of present) if (!this.learned.has(id)) this.learn(id, await this.indexFile(id, options));
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
  async write(source: Readable, key: string, options: WriteOptions): Promise<WriteResult> {
    // Shared lock: no garbage collection from before the index is read until the snapshot exists.
    const lock = await acquireLock(this.backend, false, { signal: options.signal, owner: `${hostname()} pid ${process.pid}: snapshot ${key}` });
    try {
      return await this.writeLocked(source, key, options);
    } finally {
      await lock.release();
    }
  }

  private async writeLocked(source: Readable, key: string, options: WriteOptions): Promise<WriteResult> {
    const { signal } = options;
    await this.refresh(options);
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
    const mine = new ChunkTable();
    const packs = new PackWriter(this.backend, options);
    const whole = createHash('sha256');
    let size = 0;
    let chunks = 0;
    // One chunk, named already: reused or queued for a pack. Synchronous, so a buffer of the
    // source is handled without a turn of the event loop per chunk.
    const chunk = (page: Buffer, hash: Buffer): void => {
      size += page.length;
      chunks++;
      whole.update(hash);
      const seen = this.known.get(hash);
      if (seen !== undefined) {
        const place = this.places[Math.floor(seen / CHUNKS_PER_BLOB)]!;
        addRun(fileOf(place.file), place.blob, seen % CHUNKS_PER_BLOB);
        return;
      }
      let code = mine.get(hash);
      if (code === undefined) {
        if (mine.size >= MINE_LIMIT) mine.clear();
        code = packs.add(page, hash);
        mine.add(hash, code);
      }
      addRun(OWN, Math.floor(code / CHUNKS_PER_BLOB), code % CHUNKS_PER_BLOB);
    };
    // Buffers of the source whose chunks are being named (hash-pool.ts), in order, a few ahead.
    const naming: Promise<Named>[] = [];
    const handle = async (keep: number): Promise<void> => {
      while (naming.length > keep) {
        const { data: buf, hashes } = await naming.shift()!;
        for (let at = 0, i = 0; at < buf.length; at += CHUNK_SIZE, i++) {
          chunk(buf.subarray(at, at + CHUNK_SIZE), hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES));
        }
        options.onProgress?.(size, packs.stored);
        await packs.backpressure();
      }
    };
    const name = (buf: Buffer) => {
      const named = hashChunks(buf);
      named.catch(() => undefined);
      naming.push(named);
    };
    try {
      let carry: Buffer | undefined;
      for await (const data of source) {
        signal?.throwIfAborted();
        const buf: Buffer = carry ? Buffer.concat([carry, data as Buffer]) : (data as Buffer);
        const cut = buf.length - (buf.length % CHUNK_SIZE);
        if (cut > 0) name(buf.subarray(0, cut));
        carry = cut < buf.length ? Buffer.from(buf.subarray(cut)) : undefined;
        await handle(NAMING_AHEAD);
      }
      if (carry) name(carry);
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
      const snapshot: Snapshot = { version: 2, size, sha256: whole.digest('hex'), indexes: files, runs: encodeRuns(runs) };
      const body = await encodeObject(snapshot);
      stored += await this.put(key, body, options);
      options.onProgress?.(size, stored);
      return {
        size,
        sha256: snapshot.sha256,
        chunks,
        newChunks: packs.chunks,
        stored,
        snapshotSha256: createHash('sha256').update(body).digest('hex'),
      };
    } catch (err) {
      packs.abort(err as Error);
      throw err;
    }
  }

  /**
   * A snapshot (checked against the SHA-256 a manifest recorded for it, when given) and a
   * stream of the file it rebuilds; `where` names the file in errors (`shard A/0 on node-1`).
   */
  async open(key: string, where: string, options: CallOptions & { sha256?: string } = {}): Promise<{ snapshot: Snapshot; stream: Readable }> {
    const body = await readSmall(await this.backend.read(key, options), MAX_METADATA_BYTES, 'snapshot');
    if (options.sha256) {
      const actual = createHash('sha256').update(body).digest('hex');
      if (actual !== options.sha256) {
        throw new IntegrityError(`checksum mismatch for ${this.backend.locate(key)}: expected sha256 ${options.sha256}, got ${actual}`);
      }
    }
    const snapshot = await decodeObject(body, snapshotSchema, this.backend.locate(key));
    const files = await Promise.all(snapshot.indexes.map((id) => this.indexFile(id, options)));
    return { snapshot, stream: Readable.from(this.replay(snapshot, files, where, options), { objectMode: false, highWaterMark: STREAM_BUFFER }) };
  }

  private async *replay(snapshot: Snapshot, files: IndexFile[], where: string, options: CallOptions): AsyncGenerator<Buffer> {
    const runs = decodeRuns(snapshot.runs);
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
    // Each blob read, decoded and its chunks named (in the hash pool), a few ahead of need, and
    // kept while it is needed again; past BLOB_CACHE + READ_AHEAD blobs, the one needed
    // farthest ahead is dropped (and read again when its turn comes).
    const cache = new Map<string, { named: Promise<Named>; next: number }>();
    const blobOf = ([f, b]: [number, number]): { blob: Blob; pack: string } => {
      const file = files[f];
      const blob = file?.blobs[b];
      if (!file || !blob) throw new IntegrityError(`${where}: the snapshot names blob ${b} of index file ${snapshot.indexes[f] ?? f}, which has no such blob`);
      return { blob, pack: file.packs[blob.pack]! };
    };
    const fetch = (at: number): Promise<Named> => {
      const name = names[at]!;
      let kept = cache.get(name);
      if (!kept) {
        const { blob, pack } = blobOf(order[at]!);
        kept = { named: this.readBlob(blob, pack, where, options).then(hashChunks), next: at };
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
    const whole = createHash('sha256');
    let size = 0;
    let step = 0;
    for (let r = 0; r < runs.length; r += 4) {
      const ref: [number, number] = [runs[r]!, runs[r + 1]!];
      while (step < order.length && (order[step]![0] !== ref[0] || order[step]![1] !== ref[1])) passed(step++);
      // READ_AHEAD distinct blobs ahead (interleaved runs name the same few blobs again and again).
      const ahead = new Set<string>();
      for (let at = step + 1; at < order.length && at <= step + 4 * READ_AHEAD && ahead.size < READ_AHEAD; at++) {
        if (ahead.has(names[at]!)) continue;
        ahead.add(names[at]!);
        void fetch(at).catch(() => undefined);
      }
      const { blob, pack } = blobOf(ref);
      const { data, hashes } = await fetch(step);
      const first = runs[r + 2]!;
      const count = runs[r + 3]!;
      if (first + count > chunksIn(blob.rawLength)) throw new IntegrityError(`${where}: the snapshot names chunks past the end of a blob`);
      for (let c = first; c < first + count; c++) {
        const expected = blob.hashes.subarray(c * HASH_BYTES, (c + 1) * HASH_BYTES);
        whole.update(expected);
        if (!hashes.subarray(c * HASH_BYTES, (c + 1) * HASH_BYTES).equals(expected)) {
          throw new IntegrityError(`chunk ${expected.toString('hex')} of ${where} is corrupt: its bytes in ${this.backend.locate(packKey(pack))} do not hash to it`);
        }
      }
      const bytes = data.subarray(first * CHUNK_SIZE, Math.min((first + count) * CHUNK_SIZE, blob.rawLength));
      size += bytes.length;
      yield bytes;
    }
    const fingerprint = whole.digest('hex');
    if (size !== snapshot.size || fingerprint !== snapshot.sha256) {
      throw new IntegrityError(`${where} rebuilt as ${size} bytes with fingerprint ${fingerprint}; the snapshot says ${snapshot.size} bytes, ${snapshot.sha256}`);
    }
  }

  private async readBlob(blob: Blob, pack: string, where: string, options: CallOptions): Promise<Buffer> {
    const key = packKey(pack);
    const firstChunk = blob.hashes.subarray(0, HASH_BYTES).toString('hex');
    let stored: Buffer;
    try {
      stored = await readSmall(await this.backend.read(key, { ...options, range: { start: blob.offset, length: blob.length } }), blob.length, 'blob');
    } catch (err) {
      if (err instanceof NotFoundError) throw new IntegrityError(`chunk ${firstChunk} of ${where} is missing: ${this.backend.locate(key)} does not exist`);
      throw err;
    }
    let data: Buffer;
    try {
      if (stored.length !== blob.length) throw new Error(`${stored.length} of ${blob.length} bytes`);
      data = await decodeBlob(blob.codec, stored);
    } catch (err) {
      throw new IntegrityError(`chunk ${firstChunk} of ${where} is corrupt: its blob at ${this.backend.locate(key)} (offset ${blob.offset}) cannot be read (${(err as Error).message})`);
    }
    if (data.length !== blob.rawLength) {
      throw new IntegrityError(`chunk ${firstChunk} of ${where} is corrupt: its blob at ${this.backend.locate(key)} decodes to ${data.length} bytes, not ${blob.rawLength}`);
    }
    return data;
  }

  private async indexFile(id: string, options: CallOptions): Promise<IndexFile> {
    const cached = this.files.get(id);
    if (cached) return cached;
    const key = indexKey(id);
    let body: Buffer;
    try {
      body = await readSmall(await this.backend.read(key, options), MAX_METADATA_BYTES, 'index file');
    } catch (err) {
      if (err instanceof NotFoundError) throw new IntegrityError(`index file ${this.backend.locate(key)} is missing`);
      throw err;
    }
    const file = await decodeObject(body, indexFileSchema, this.backend.locate(key));
    this.files.set(id, file);
    return file;
  }

  /** Remember an index file and its chunks, for snapshots to reuse. */
  private learn(id: string, file: IndexFile): void {
    if (this.learned.has(id)) return;
    this.learned.add(id);
    this.files.set(id, file);
    file.blobs.forEach((blob, b) => {
      const place = this.places.push({ file: id, blob: b }) - 1;
      for (let c = 0; c < chunksIn(blob.rawLength); c++) this.known.add(blob.hashes.subarray(c * HASH_BYTES, (c + 1) * HASH_BYTES), place * CHUNKS_PER_BLOB + c);
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
  private pending: Buffer[] = [];
  private pendingHashes: Buffer[] = [];
  private next = 0;
  private chain: Promise<void> = Promise.resolve();
  private readonly appended: Promise<void>[] = [];
  private current: { id: string; stream: PassThrough; upload: Promise<unknown>; bytes: number; blobs: Blob[]; numbers: number[] } | undefined;
  /** Each closed pack: its upload, then its index file. */
  private readonly closed: Promise<void>[] = [];

  constructor(
    private readonly backend: Backend,
    private readonly options: WriteOptions,
  ) {}

  /** Queue a new chunk; answers its run-local blob number × CHUNKS_PER_BLOB + position. */
  add(chunk: Buffer, hash: Buffer): number {
    const code = this.next * CHUNKS_PER_BLOB + this.pending.length;
    this.chunks++;
    this.pending.push(chunk);
    this.pendingHashes.push(hash);
    if (this.pending.length === CHUNKS_PER_BLOB) this.flush();
    return code;
  }

  /** Waits while PIPELINE blobs are still being compressed or appended. */
  async backpressure(): Promise<void> {
    const n = this.appended.length;
    if (n > PIPELINE) await this.appended[n - PIPELINE - 1];
  }

  /** Every blob in a finished pack named by a written index file. */
  async finish(): Promise<void> {
    if (this.pending.length > 0) this.flush();
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
    const raw = Buffer.concat(this.pending);
    const hashes = Buffer.concat(this.pendingHashes);
    this.pending = [];
    this.pendingHashes = [];
    const number = this.next++;
    const encoded = encodeBlob(raw, this.options.level);
    encoded.catch(() => undefined);
    this.chain = this.chain.then(async () => {
      const { codec, data } = await encoded;
      const { pack, offset } = await this.append(data);
      pack.blobs.push({ pack: 0, offset, length: data.length, codec, rawLength: raw.length, hashes });
      pack.numbers.push(number);
    });
    this.appended.push(this.chain);
  }

  private async append(data: Buffer): Promise<{ pack: NonNullable<PackWriter['current']>; offset: number }> {
    if (!this.current || this.current.bytes >= PACK_TARGET_BYTES) {
      this.closePack();
      const id = newId();
      const stream = new PassThrough({ highWaterMark: STREAM_BUFFER });
      const upload = this.backend.write(packKey(id), stream, { signal: this.options.signal });
      upload.catch(() => undefined);
      this.current = { id, stream, upload, bytes: 0, blobs: [], numbers: [] };
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
    })();
    done.catch(() => undefined);
    this.closed.push(done);
  }
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
