/**
 * A byte-rate limit for one shard's transfer, like Elasticsearch's `max_snapshot_bytes_per_sec`
 * and `max_restore_bytes_per_sec`: operators cap what a backup or restore takes from the disk
 * and the network while the store serves traffic (WORKER_MAX_BYTES_PER_SECOND, per running
 * shard job). Bytes pass unchanged; they are held back just long enough that the bytes passed
 * so far never run ahead of the rate by more than one second's worth.
 */
import { PassThrough, Transform } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

/** One transfer's limit; 0 bytes per second means none. */
export class RateLimit {
  private readonly started = Date.now();
  private passed = 0;

  constructor(private readonly bytesPerSecond: number) {}

  /** Count n more bytes; answers the milliseconds they must wait (0: they may pass now). */
  delayFor(n: number): number {
    if (this.bytesPerSecond <= 0) return 0;
    this.passed += n;
    return Math.max(0, ((this.passed - this.bytesPerSecond) / this.bytesPerSecond) * 1000 - (Date.now() - this.started));
  }

  /** Wait until n more bytes may pass. */
  async take(n: number, signal?: AbortSignal): Promise<void> {
    const ms = this.delayFor(n);
    if (ms > 0) await sleep(ms, undefined, signal ? { signal } : {});
  }
}

/** A pass-through stream limited to bytesPerSecond; 0 means no limit (a plain PassThrough). */
export function throttleStream(bytesPerSecond: number): Transform {
  if (bytesPerSecond <= 0) return new PassThrough();
  const limit = new RateLimit(bytesPerSecond);
  let timer: NodeJS.Timeout | undefined;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const dueMs = limit.delayFor(chunk.length);
      if (dueMs <= 0) return callback(null, chunk);
      timer = setTimeout(() => callback(null, chunk), dueMs);
    },
    destroy(err, callback) {
      clearTimeout(timer);
      callback(err);
    },
  });
}
