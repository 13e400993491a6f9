/**
 * Naming chunks off the JavaScript thread: the SHA-256 of every 4 KiB chunk of a buffer, in a
 * small pool of worker threads (one per core but one, at least one), so that one large shard
 * uses the cores the main thread does not — it dedupes and packs while the next buffers are
 * hashed, and zstd runs on libuv's pool. One pool per process, started on first use; a thread
 * keeps the process alive only while it has work (ref'd then, unref'd when idle).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { CHUNK_SIZE, HASH_BYTES } from './format.ts';

/** The thread's code (CommonJS, evaluated: the same under tsx, vitest and the build). */
const THREAD = `
const { parentPort } = require('node:worker_threads');
const crypto = require('node:crypto');
const one = typeof crypto.hash === 'function'
  ? (b) => crypto.hash('sha256', b, 'buffer')
  : (b) => crypto.createHash('sha256').update(b).digest();
parentPort.on('message', ({ id, data }) => {
  const buf = Buffer.from(data);
  const n = Math.ceil(buf.length / ${CHUNK_SIZE});
  const out = Buffer.allocUnsafeSlow(n * ${HASH_BYTES});
  for (let i = 0; i < n; i++) one(buf.subarray(i * ${CHUNK_SIZE}, (i + 1) * ${CHUNK_SIZE})).copy(out, i * ${HASH_BYTES});
  parentPort.postMessage({ id, data, hashes: out.buffer }, [data, out.buffer]);
});
`;

/** A buffer's bytes (handed back by the thread) and the SHA-256s of its chunks. */
export interface Named {
  data: Buffer;
  hashes: Buffer;
}

interface Thread {
  worker: Worker;
  waiting: Map<number, { resolve: (n: Named) => void; reject: (e: Error) => void }>;
}

class HashPool {
  private readonly threads: Thread[];
  private next = 0;
  private id = 0;
  broken = false;

  constructor(size: number) {
    this.threads = Array.from({ length: size }, () => {
      const worker = new Worker(THREAD, { eval: true });
      const thread: Thread = { worker, waiting: new Map() };
      worker.on('message', ({ id, data, hashes }: { id: number; data: ArrayBuffer; hashes: ArrayBuffer }) => {
        thread.waiting.get(id)?.resolve({ data: Buffer.from(data), hashes: Buffer.from(hashes) });
        thread.waiting.delete(id);
        if (thread.waiting.size === 0) worker.unref();
      });
      // A thread that dies fails what it was given; the next call starts a new pool.
      const fail = (err: Error) => {
        this.broken = true;
        for (const w of thread.waiting.values()) w.reject(err);
        thread.waiting.clear();
      };
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new Error(`a chunk hashing thread exited (code ${code})`)));
      // After the listeners (adding one refs the worker again).
      worker.unref();
      return thread;
    });
  }

  /**
   * The SHA-256s (HASH_BYTES each, in order) of the CHUNK_SIZE chunks of data. The bytes travel
   * to the thread and back without a copy when data owns its whole ArrayBuffer (it is unusable
   * meanwhile: use the `data` answered); otherwise a copy travels.
   */
  hash(data: Buffer): Promise<Named> {
    const thread = this.threads[this.next++ % this.threads.length]!;
    const id = this.id++;
    const own = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
    const travelling = own ? (data.buffer as ArrayBuffer) : Uint8Array.prototype.slice.call(data).buffer;
    return new Promise((resolve, reject) => {
      if (thread.waiting.size === 0) thread.worker.ref();
      thread.waiting.set(id, { resolve, reject });
      try {
        thread.worker.postMessage({ id, data: travelling }, [travelling]);
      } catch {
        // A buffer that cannot be transferred (one some native code owns) travels as a copy.
        const copy = Uint8Array.prototype.slice.call(data).buffer;
        thread.worker.postMessage({ id, data: copy }, [copy]);
      }
    });
  }
}

let pool: HashPool | undefined;

/** data's bytes and the SHA-256s of its chunks, from the process's hash pool (see HashPool.hash). */
export function hashChunks(data: Buffer): Promise<Named> {
  if (!pool || pool.broken) pool = new HashPool(Math.max(1, availableParallelism() - 1));
  return pool.hash(data);
}
