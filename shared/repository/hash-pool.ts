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
  parentPort.postMessage({ id, hashes: out.buffer }, [out.buffer]);
});
`;

interface Thread {
  worker: Worker;
  waiting: Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void }>;
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
      worker.on('message', ({ id, hashes }: { id: number; hashes: ArrayBuffer }) => {
        thread.waiting.get(id)?.resolve(Buffer.from(hashes));
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

  /** The SHA-256s (HASH_BYTES each, in order) of the CHUNK_SIZE chunks of data. */
  hash(data: Buffer): Promise<Buffer> {
    const thread = this.threads[this.next++ % this.threads.length]!;
    const id = this.id++;
    return new Promise((resolve, reject) => {
      if (thread.waiting.size === 0) thread.worker.ref();
      thread.waiting.set(id, { resolve, reject });
      // A copy goes to the thread: the caller keeps its bytes for the packs.
      thread.worker.postMessage({ id, data });
    });
  }
}

let pool: HashPool | undefined;

/** The SHA-256s of data's chunks, from the process's hash pool. */
export function hashChunks(data: Buffer): Promise<Buffer> {
  if (!pool || pool.broken) pool = new HashPool(Math.max(1, availableParallelism() - 1));
  return pool.hash(data);
}
