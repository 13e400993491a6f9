/** Stream helpers every backend's write, read and access check use. */
import { PassThrough, Readable, Transform } from 'node:stream';
import { IntegrityError } from '../errors.ts';

/** Longest a write may keep the event loop busy before letting timers and I/O run. */
const YIELD_EVERY_MS = 20;

/**
 * Pipes a write's body through a byte counter. If the body itself fails (the caller's data
 * source, not the backend), bodyError() answers that error so write can rethrow it unchanged
 * instead of blaming the backend. When the counter closes early (sink failed, aborted), the
 * body is destroyed so its producer stops.
 *
 * It also yields to the event loop at least every 20 ms. On a fast link some clients (the GCS
 * one in particular) move the whole body through process.nextTick and promise callbacks
 * without ever returning to the event loop, which starves timers for the entire upload:
 * abort signals fired from timers, job-lock renewals, health checks.
 */
export function meterBody(body: Readable): { stream: Transform; bytes: () => number; bodyError: () => unknown } {
  let bytes = 0;
  let failed: unknown;
  let lastYield = Date.now();
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      if (Date.now() - lastYield < YIELD_EVERY_MS) return callback(null, chunk);
      setImmediate(() => {
        lastYield = Date.now();
        callback(null, chunk);
      });
    },
  });
  // The counter may fail before, while or after the backend consumes it (a cancel destroys the
  // body at any moment, also before the backend's pipeline starts or after it stopped
  // listening). Its errors reach the backend through that pipeline and the caller through
  // bodyError(); this listener keeps one that nobody else is listening for from becoming an
  // uncaught exception that takes the whole process down.
  stream.on('error', () => undefined);
  body.on('error', (err) => {
    failed ??= err;
    stream.destroy(err);
  });
  stream.once('close', () => {
    if (!body.destroyed && !body.readableEnded) body.destroy();
  });
  body.pipe(stream);
  return { stream, bytes: () => bytes, bodyError: () => failed };
}

/**
 * What a failed write rejects with: the body's own error, unchanged, when the caller's data
 * source failed (and the write was not cancelled); else the backend's error for `err`. Stops
 * the body either way.
 */
export function failedWriteError(meter: ReturnType<typeof meterBody>, err: unknown, signal: AbortSignal | undefined, backendError: (err: unknown) => unknown): unknown {
  meter.stream.destroy();
  const bodyError = meter.bodyError();
  if (bodyError !== undefined && !signal?.aborted) return bodyError;
  return backendError(err);
}

/**
 * Reads a small stream fully (access-check markers, manifests; never shard objects), refusing
 * more than `limit` bytes with an IntegrityError that says `what` is too large.
 */
export async function readSmall(stream: Readable, limit = 64 * 1024, what = 'access-check marker'): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    size += buf.length;
    if (size > limit) {
      stream.destroy();
      throw new IntegrityError(`${what} is larger than ${limit} bytes`);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

/**
 * A response body passed on through a stream of its own: the body's failures (the connection
 * reset or timed out mid-way) come out as `mapError` makes them, naming the object and the
 * setting as the request's do; and a reader that stops early (destroys what it was given)
 * destroys the body, so that request and its socket end with it — that request only.
 */
export function relayBody(body: Readable, mapError: (err: Error) => Error): PassThrough {
  const out = new PassThrough();
  body.on('error', (err) => out.destroy(mapError(err)));
  out.on('close', () => {
    if (!body.destroyed) body.destroy();
  });
  body.pipe(out);
  return out;
}
