/**
 * The repository's per-byte work off the JavaScript thread: naming chunks (the SHA-256 of every
 * 4 KiB), compressing blobs and decompressing them (zstd), in a small pool of worker threads,
 * one per core. The main thread of a snapshot only looks chunks up and appends blobs to packs,
 * so one large shard uses every core, and a worker's event loop stays free for its jobs' Redis
 * traffic. One pool per process, started on first use; a thread keeps the process alive only
 * while it has work (ref'd then, unref'd when idle).
 *
 * zstd comes from Node's zlib where the running Node has it (22.15 and later), else from
 * `@mongodb-js/zstd` (prebuilt binaries, no download at install). Both write and read standard
 * zstd frames, so a repository written under one Node reads under the other.
 *
 * Bytes travel to a thread and back without a copy when the caller gives a buffer that owns
 * its whole ArrayBuffer (it is unusable afterwards: use the bytes answered); otherwise a copy
 * of just its bytes travels.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Worker } from 'node:worker_threads';
import { CHUNK_SIZE, CHUNKS_PER_BLOB, HASH_BYTES } from './format.ts';

/** A blob's most bytes, and a span's: CHUNKS_PER_BLOB chunks. */
const BLOB_BYTES = CHUNK_SIZE * CHUNKS_PER_BLOB;

/** The thread's code (CommonJS, evaluated: the same under tsx, vitest and the build). */
const THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
const fs = require('node:fs');
const zlib = require('node:zlib');
const one = typeof crypto.hash === 'function'
  ? (b) => crypto.hash('sha256', b, 'buffer')
  : (b) => crypto.createHash('sha256').update(b).digest();
// The SHA-256s of buf's chunks, but for the whole chunks of the (offset, length) pairs of skip,
// whose places are left zeros.
function name(buf, skip) {
  const n = Math.ceil(buf.length / ${CHUNK_SIZE});
  const out = Buffer.allocUnsafeSlow(n * ${HASH_BYTES});
  for (let i = 0, s = 0; i < n; i++) {
    const at = i * ${CHUNK_SIZE};
    if (skip) {
      while (s < skip.length && skip[s] + skip[s + 1] <= at) s += 2;
      if (s < skip.length && skip[s] <= at && at + ${CHUNK_SIZE} <= skip[s] + skip[s + 1]) {
        out.fill(0, i * ${HASH_BYTES}, (i + 1) * ${HASH_BYTES});
        continue;
      }
    }
    one(buf.subarray(at, at + ${CHUNK_SIZE})).copy(out, i * ${HASH_BYTES});
  }
  return out.buffer;
}
const level = zlib.constants.ZSTD_c_compressionLevel;
const builtIn = typeof zlib.zstdCompressSync === 'function' && typeof zlib.zstdDecompressSync === 'function' && level !== undefined;
// The package's own wrapper (index.js of 1.2.x) drops the level it declares; its native
// bindings take it, so they are called directly.
const pkg = builtIn ? undefined : require(workerData.zstdBindings);
const compress = builtIn ? async (b, l) => zlib.zstdCompressSync(b, { params: { [level]: l } }) : (b, l) => pkg.compress(b, l);
const decompress = builtIn ? async (b) => zlib.zstdDecompressSync(b) : (b) => pkg.decompress(b);
// Memory a thread lets go (zstd's answers, once copied, written or sent on; spans beyond the
// spare ones) is garbage, but a thread that makes few JavaScript objects seldom collects: V8
// waited until 30–48 MB of it had piled up in each thread at the peak of a backup of a 1 GiB
// shard (measured 2026-12-06). Once 16 MiB has been let go, the thread collects its small heap
// (a few MB, a few milliseconds). V8 offers collection to contexts made after --expose-gc is set;
// the flag stays set (threads start together, and one turning it off would race another's
// context), which gives later vm contexts and threads of this process a \`gc\` too, and no more.
// A Node that does not offer it leaves collection to V8: more memory, nothing else.
const collectGarbage = (() => {
  try {
    require('node:v8').setFlagsFromString('--expose-gc');
    const gc = require('node:vm').runInNewContext('typeof gc === "function" ? gc : undefined');
    if (gc) return gc;
  } catch {}
  return () => undefined;
})();
let garbage = 0;
// bytes are let go (a buffer moved to another thread is empty by then: 0).
const dropped = (bytes) => {
  garbage += bytes;
  if (garbage >= 16 * 1024 * 1024) {
    garbage = 0;
    collectGarbage();
  }
};
// Buffers of one blob's size, kept for the next read of a file: a thread that took a new one
// for every span would leave the garbage collector hundreds of megabytes to find.
const spare = [];
const BLOB = ${BLOB_BYTES};
const take = (n) => (n <= BLOB && spare.length > 0 ? spare.pop() : Buffer.allocUnsafeSlow(Math.max(n, BLOB))).subarray(0, n);
const give = (b) => {
  if (b.buffer.byteLength === BLOB && spare.length < 4) spare.push(Buffer.from(b.buffer));
  else dropped(b.buffer.byteLength);
};
const readFd = require('node:util').promisify(fs.read);
// The bytes of (offset, length) pairs, one after the other.
const lengthOf = (ranges) => {
  let total = 0;
  for (let i = 1; i < ranges.length; i += 2) total += ranges[i];
  return total;
};
// The bytes of a file (a path, or a descriptor of this process) at (offset, length) pairs, one
// after the other, read without blocking this thread (it names and compresses other spans
// meanwhile); give() the buffer back when done.
async function readRanges(path, ranges) {
  const buf = take(lengthOf(ranges));
  const file = typeof path === 'number' ? undefined : await fs.promises.open(path, 'r');
  const fd = file ? file.fd : path;
  try {
    for (let i = 0, at = 0; i < ranges.length; at += ranges[i + 1], i += 2) {
      for (let done = 0; done < ranges[i + 1]; ) {
        const { bytesRead } = await readFd(fd, buf, at + done, ranges[i + 1] - done, ranges[i] + done);
        if (bytesRead === 0) throw new Error((file ? path : 'the snapshot file') + ' ends before byte ' + (ranges[i] + ranges[i + 1]));
        done += bytesRead;
      }
    }
  } catch (err) {
    give(buf);
    throw err;
  } finally {
    await file?.close();
  }
  return buf;
}
// The bytes of b as an ArrayBuffer that can be transferred (b's own when it has one to itself).
const own = (b) => (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b.buffer : Uint8Array.prototype.slice.call(b).buffer);
// The bytes zstd answered, as an ArrayBuffer that can be transferred. The package answers in
// memory its native code owns: postMessage cannot move that, and copies it through the message
// into memory the receiving thread allocates, which then fragments that thread's heap. A copy
// made here moves instead, and goes back to this thread's heap once the receiver lets it go
// (measured, a backup of a 1 GiB shard: ~20 MB less at the worker's peak).
const codecOut = builtIn ? own : (b) => Uint8Array.prototype.slice.call(b).buffer;
function send(message, buffers) {
  try {
    parentPort.postMessage(message, buffers);
  } catch {
    // A buffer that cannot be moved made postMessage throw: copies travel. (Memory native code owns
    // does not throw: it is copied silently, hence codecOut above.)
    parentPort.postMessage(message);
  }
}
// A blob's chunks checked and written where a file needs them: writes are (first chunk, count,
// file offset) triples, expected the SHA-256s of the chunks they name, in that order. Answers the
// place in expected of the first chunk that does not match, or nothing when every one does.
function unpack(raw, writes, expected, target) {
  for (let i = 0, e = 0; i < writes.length; i += 3) {
    for (let c = writes[i]; c < writes[i] + writes[i + 1]; c++, e++) {
      if (!one(raw.subarray(c * ${CHUNK_SIZE}, (c + 1) * ${CHUNK_SIZE})).equals(expected.subarray(e * ${HASH_BYTES}, (e + 1) * ${HASH_BYTES}))) return e;
    }
  }
  if (target === undefined) return undefined;
  const fd = fs.openSync(target, 'r+');
  try {
    for (let i = 0; i < writes.length; i += 3) {
      const from = writes[i] * ${CHUNK_SIZE};
      const to = Math.min((writes[i] + writes[i + 1]) * ${CHUNK_SIZE}, raw.length);
      for (let done = 0; done < to - from; ) done += fs.writeSync(fd, raw, from + done, to - from - done, writes[i + 2] + done);
    }
  } finally {
    fs.closeSync(fd);
  }
  return undefined;
}
// Spans read (or given) and named here, kept until the caller takes the parts it stores or
// seals the whole: what is stored is then the bytes that were named, whatever the file holds by
// then. Each as { span, given }: given, when the JavaScript thread gave it (a stream's span).
const kept = new Map();
// A kept span, no longer kept.
function letGo(key) {
  const entry = kept.get(key);
  kept.delete(key);
  if (!entry) throw new Error('no span kept as ' + key);
  return entry;
}
// A span let go: a given one of a blob's size goes back to the JavaScript thread, for its next
// span of a stream (its buffer moved, so this thread holds it no more: answered, to be sent with
// the answer); any other is kept for the next read here, or is garbage.
function release({ span, given }) {
  if (given && span.byteOffset === 0 && span.buffer.byteLength === BLOB) return span.buffer;
  give(span);
  return undefined;
}
// The bytes of a kept span at (offset, length) pairs, one after the other; the span is let go.
function takeKept(key, ranges) {
  const entry = letGo(key);
  const { span } = entry;
  const total = lengthOf(ranges);
  // All of it: it travels as it is.
  if (total === span.length) return { out: span };
  const out = Buffer.allocUnsafeSlow(total);
  for (let i = 0, at = 0; i < ranges.length; at += ranges[i + 1], i += 2) span.copy(out, at, ranges[i], ranges[i] + ranges[i + 1]);
  return { out, spare: release(entry) };
}
// An answer with the buffers it moves, and the spare span buffer it hands back, if any.
const withSpare = (message, buffers, spare) => (spare ? send({ ...message, spare }, [...buffers, spare]) : send(message, buffers));
parentPort.on('message', async ({ id, op, data, level, hashes, path, ranges, zeros, skip, keep, codec, rawLength, writes, expected, target, key }) => {
  try {
    if (op === 'take') {
      const taken = takeKept(key, ranges);
      const out = own(taken.out);
      return withSpare({ id, data: out }, [out], taken.spare);
    }
    if (op === 'seal') {
      // A kept span stored whole: compressed here, where its bytes are, and its buffer kept for
      // the next read or handed back (release; at no level, its bytes travel as they are).
      const entry = letGo(key);
      if (level === undefined) {
        const out = own(entry.span);
        return send({ id, data: out }, [out]);
      }
      const answer = await compress(entry.span, level);
      const out = codecOut(answer);
      withSpare({ id, data: out }, [out], release(entry));
      return dropped(answer.length);
    }
    const read = path !== undefined;
    const buf = read ? await readRanges(path, ranges) : Buffer.from(data);
    if (zeros) for (let i = 0; i < zeros.length; i += 2) buf.fill(0, zeros[i], zeros[i] + zeros[i + 1]);
    if (op === 'hash') {
      const named = name(buf, skip);
      if (read || keep) {
        kept.set(id, { span: buf, given: !read });
        send({ id, hashes: named }, [named]);
      } else send({ id, data, hashes: named }, [data, named]);
    } else if (op === 'compress') {
      const answer = await compress(buf, level);
      const out = codecOut(answer);
      give(buf);
      send({ id, data: out }, [out]);
      dropped(answer.length);
    } else if (op === 'unpack') {
      const raw = codec === 0 ? buf : await decompress(buf);
      if (raw.length !== rawLength) throw new Error('it decodes to ' + raw.length + ' bytes, not ' + rawLength);
      const corrupt = unpack(raw, writes, Buffer.from(expected), target);
      if (read) give(buf);
      parentPort.postMessage({ id, corrupt });
      if (raw !== buf) dropped(raw.length);
    } else {
      const answer = await decompress(buf);
      const out = codecOut(answer);
      const named = hashes ? name(Buffer.from(out)) : undefined;
      send({ id, data: out, hashes: named }, named ? [out, named] : [out]);
      // The frame, read here or given, is let go too.
      if (read) give(buf);
      else dropped(buf.length);
      dropped(answer.length);
    }
  } catch (err) {
    parentPort.postMessage({ id, error: String((err && err.message) || err) });
  }
});
`;

/** Bytes (handed back by the thread) and the SHA-256s of their chunks. */
export interface Named {
  data: Buffer;
  hashes: Buffer;
}

interface Answer {
  data: ArrayBuffer;
  /** A buffer of a span this process gave, handed back once the thread is done with it (see spanBuffer). */
  spare?: ArrayBuffer;
  hashes?: ArrayBuffer;
  corrupt?: number;
  error?: string;
}

/**
 * A file on this host that the threads read themselves: its path, or a descriptor open in this
 * process (threads share the process's descriptors; a file deleted or replaced at its path
 * meanwhile is still read as it was).
 */
export type LocalFile = string | number;

/** Bytes of a local file that a thread reads itself. */
export interface FileRange {
  file: LocalFile;
  offset: number;
  length: number;
}

/**
 * What a thread is asked to do, to bytes sent with the request or to bytes it reads itself from
 * a local file (`path`, at the (offset, length) pairs of `ranges`); the (offset, length) pairs
 * of `zeros` in those bytes are taken as zeros, and the chunks those of `skip` hold whole are
 * not named.
 */
type Request = (
  | { op: 'hash'; keep?: boolean }
  | { op: 'compress'; level: number }
  | { op: 'decompress'; hashes: boolean }
  | { op: 'unpack'; codec: number; rawLength: number; writes: number[]; expected: Uint8Array; target?: string }
  | { op: 'take'; key: number }
  | { op: 'seal'; key: number; level?: number }
) & { path?: LocalFile; ranges?: number[]; zeros?: number[]; skip?: number[] };

interface Thread {
  worker: Worker;
  waiting: Map<number, { resolve: (a: Answer) => void; reject: (e: Error) => void }>;
}

/**
 * Bytes the threads hand this (the JavaScript) thread (compressed blobs on their way into a pack,
 * SHA-256s of spans, decoded blobs and index files) between two full collections of its heap. It
 * makes few JavaScript objects, so V8 collects little on its own: it starts a full collection only
 * once external memory has grown ~64 MB, and then marks in steps paced by the thread's few
 * allocations. A backup of a 1 GiB shard ran its first one 10–17 s in (2026-12-07), the buffers
 * that had come from the threads and outlived a young collection meanwhile piling up to 50–70 MB:
 * the worker peaked 25–35 MB higher than for a 256 MiB shard, which ends before that. A full
 * collection of this thread's heap (~20 MB live) takes 10–30 ms, about ten per 1 GiB backed up.
 */
const ARRIVED_BYTES = 32 * 1024 * 1024;
/**
 * Answers between two such collections, whatever their bytes. A restore hands this thread few
 * bytes (a 1 GiB shard's, ~22 MB) but an answer per blob, and what each leaves behind is
 * native memory V8 counts as external but not as an ArrayBuffer: ~6 KB a blob, piling up for
 * 10–12 s of a 4 GiB shard's restore (to ~57 MB) until V8's first full collection freed it
 * (2026-12-07, `process.memoryUsage()` sampled every 50 ms).
 */
const ARRIVED_ANSWERS = 1024;

/** A full collection of this thread's heap, where V8 offers one (see the threads' collectGarbage); else nothing. */
function heapCollector(): () => void {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('typeof gc === "function" ? gc : undefined') as (() => void) | undefined;
    if (gc) return gc;
  } catch {
    // No collection to offer: V8 collects on its own.
  }
  return () => undefined;
}

class BlobPool {
  private readonly threads: Thread[];
  private id = 0;
  /** Bytes handed over by the threads since this thread's last collection. */
  private arrived = 0;
  /** Answers from the threads since this thread's last collection. */
  private answers = 0;
  private readonly collectHeap = heapCollector();
  broken = false;

  constructor(size: number) {
    const zstdBindings = createRequire(import.meta.url).resolve('@mongodb-js/zstd/bindings.js');
    this.threads = Array.from({ length: size }, () => {
      const worker = new Worker(THREAD, { eval: true, workerData: { zstdBindings } });
      const thread: Thread = { worker, waiting: new Map() };
      worker.on('message', (answer: Answer & { id: number }) => {
        this.arrived += (answer.data?.byteLength ?? 0) + (answer.hashes?.byteLength ?? 0);
        if (this.arrived >= ARRIVED_BYTES || ++this.answers >= ARRIVED_ANSWERS) {
          this.arrived = 0;
          this.answers = 0;
          this.collectHeap();
        }
        const w = thread.waiting.get(answer.id);
        thread.waiting.delete(answer.id);
        if (thread.waiting.size === 0) worker.unref();
        if (answer.error !== undefined) w?.reject(new Error(answer.error));
        else w?.resolve(answer);
      });
      // A thread that dies fails what it was given; the next call starts a new pool.
      const fail = (err: Error) => {
        this.broken = true;
        for (const w of thread.waiting.values()) w.reject(err);
        thread.waiting.clear();
      };
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new Error(`a blob pool thread exited (code ${code})`)));
      // After the listeners (adding one refs the worker again).
      worker.unref();
      return thread;
    });
  }

  /**
   * Run a request on data (given to the thread when `give`), or on the file the request names;
   * on the thread with the least work waiting (hashing and compressing requests alternate, so
   * taking turns would send every one of a kind to the same thread), or on `on`.
   */
  run(request: Request, data?: Buffer, give = false, on?: Thread): Promise<Answer & { thread: Thread; id: number }> {
    if (on && this.broken) return Promise.reject(new Error('a blob pool thread exited'));
    const thread = on ?? this.threads.reduce((a, b) => (b.waiting.size < a.waiting.size ? b : a));
    const id = this.id++;
    return new Promise<Answer>((resolve, reject) => {
      if (thread.waiting.size === 0) thread.worker.ref();
      thread.waiting.set(id, { resolve, reject });
      if (!data) return thread.worker.postMessage({ id, ...request });
      const copy = (): ArrayBuffer => Uint8Array.prototype.slice.call(data).buffer;
      const own = give && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
      const travelling = own ? (data.buffer as ArrayBuffer) : copy();
      try {
        thread.worker.postMessage({ id, ...request, data: travelling }, [travelling]);
      } catch {
        // A buffer that cannot be transferred (one some native code owns) travels as a copy.
        const copied = copy();
        thread.worker.postMessage({ id, ...request, data: copied }, [copied]);
      }
    }).then((answer) => ({ ...answer, thread, id }));
  }
}

let pool: BlobPool | undefined;

function threads(): BlobPool {
  if (!pool || pool.broken) pool = new BlobPool(availableParallelism());
  return pool;
}

/**
 * data's bytes and the SHA-256s (HASH_BYTES each, in order) of its CHUNK_SIZE chunks, the last
 * one possibly shorter. data is given to the thread (see the top of this file).
 */
export async function hashChunks(data: Buffer): Promise<Named> {
  const answer = await threads().run({ op: 'hash' }, data, true);
  return { data: Buffer.from(answer.data), hashes: Buffer.from(answer.hashes!) };
}

/**
 * A span named by a thread (of a local file it read, or of bytes it was given), which keeps its
 * bytes until `take` or `seal`: the bytes stored are then the bytes named, whatever the file
 * holds by that time (a live file may change). Every span must be taken or sealed once (taken
 * with no ranges to let it go).
 */
export interface NamedSpan {
  hashes: Buffer;
  /** The span's bytes at (offset in the span, length) pairs, one after the other, without a copy when they are all of it. */
  take(ranges: number[]): Promise<Buffer>;
  /** The whole span as one zstd frame at this zstd level, compressed by the thread that keeps it (no level: its bytes as they are). */
  seal(level?: number): Promise<Buffer>;
}

/**
 * A local file's bytes from offset (length bytes), read and named by a thread (see NamedSpan),
 * with the (offset in the span, length) pairs of `zeros` taken as zeros; the chunks that the
 * (offset in the span, length) pairs of `skip` hold whole are not named (their names are zeros).
 * (They are read all the same: one read of the span costs less than many small ones.)
 */
export async function nameFileSpan(path: LocalFile, offset: number, length: number, zeros?: number[], skip?: number[]): Promise<NamedSpan> {
  const pool = threads();
  return keptBy(pool, await pool.run({ op: 'hash', path, ranges: [offset, length], ...(zeros?.length ? { zeros } : {}), ...(skip?.length ? { skip } : {}) }));
}

/**
 * data named by a thread, which keeps it (see NamedSpan), but for the whole chunks the (offset,
 * length) pairs of `skip` hold; data is given to the thread (see the top of this file).
 */
export async function keepChunks(data: Buffer, skip?: number[]): Promise<NamedSpan> {
  const pool = threads();
  return keptBy(pool, await pool.run({ op: 'hash', keep: true, ...(skip?.length ? { skip } : {}) }, data, true));
}

function keptBy(pool: BlobPool, { hashes, thread, id }: Answer & { thread: Thread; id: number }): NamedSpan {
  const data = (answer: Answer): Buffer => {
    if (answer.spare && spares.length < SPARES) spares.push(answer.spare);
    return Buffer.from(answer.data);
  };
  return {
    hashes: Buffer.from(hashes!),
    take: async (ranges) => data(await pool.run({ op: 'take', key: id, ranges }, undefined, false, thread)),
    seal: async (level) => data(await pool.run({ op: 'seal', key: id, ...(level === undefined ? {} : { level }) }, undefined, false, thread)),
  };
}

/** Buffers of spans given to keepChunks that the threads handed back, for the next ones. */
const spares: ArrayBuffer[] = [];
const SPARES = 8;

/**
 * A buffer of `length` bytes for a span to be given to keepChunks: for a span of BLOB_BYTES, one
 * a thread handed back once it was done with an earlier span, if there is one, so that a
 * stream's spans do not each cost new memory.
 */
export function spanBuffer(length: number): Buffer {
  const spare = length === BLOB_BYTES ? spares.pop() : undefined;
  return spare ? Buffer.from(spare) : Buffer.allocUnsafeSlow(length);
}

/** data as one zstd frame at this zstd level; data is given to the thread when `give`. */
export async function zstdCompress(data: Buffer, level: number, give = false): Promise<Buffer> {
  return Buffer.from((await threads().run({ op: 'compress', level }, data, give)).data);
}

/**
 * A zstd frame's bytes: of data, given to the thread (see the top of this file), or of a local
 * file's bytes, which the thread reads itself (none of them come to this thread).
 */
export async function zstdDecompress(data: Buffer | FileRange): Promise<Buffer> {
  const request = { op: 'decompress', hashes: false } as const;
  const answer = Buffer.isBuffer(data) ? await threads().run(request, data, true) : await threads().run({ ...request, path: data.file, ranges: [data.offset, data.length] });
  return Buffer.from(answer.data);
}

/**
 * One blob's part in rebuilding a file, in one trip to a thread: the blob (as stored: `codec`,
 * decoding to rawLength bytes; its bytes, or where they lie in a local file for the thread to
 * read) decoded, the chunks that `writes` name — (first chunk, count, file
 * offset) triples — checked against `expected` (their SHA-256s, in that order) and, when a file
 * is given, written at their offsets in it. Answers the place in `expected` of the first chunk
 * that does not match its SHA-256 (nothing is written then), or undefined; throws when the blob
 * cannot be decoded to rawLength bytes.
 */
export async function unpackBlob(data: Buffer | FileRange, codec: number, rawLength: number, writes: number[], expected: Buffer, file?: string): Promise<number | undefined> {
  const request = { op: 'unpack', codec, rawLength, writes, expected, target: file } as const;
  if (Buffer.isBuffer(data)) return (await threads().run(request, data, true)).corrupt;
  return (await threads().run({ ...request, path: data.file, ranges: [data.offset, data.length] })).corrupt;
}

/** A zstd frame's bytes and the SHA-256s of their chunks, in one trip to a thread; data is given to it. */
export async function zstdDecompressNamed(data: Buffer): Promise<Named> {
  const answer = await threads().run({ op: 'decompress', hashes: true }, data, true);
  return { data: Buffer.from(answer.data), hashes: Buffer.from(answer.hashes!) };
}
