/**
 * A byte-rate limit for one shard's transfer, like Elasticsearch's `max_snapshot_bytes_per_sec`
 * and `max_restore_bytes_per_sec`: operators cap what a backup or restore takes from the disk
 * and the network while the store serves traffic (WORKER_MAX_BYTES_PER_SECOND, per running
 * shard job). Bytes pass through unchanged; a chunk is held back just long enough that the
 * bytes passed so far never run ahead of the rate by more than one second's worth.
 */
import { PassThrough, Transform } from 'node:stream';

/** A pass-through stream limited to bytesPerSecond; 0 means no limit (a plain PassThrough). */
export function throttleStream(bytesPerSecond: number): Transform {
  if (bytesPerSecond <= 0) return new PassThrough();
  const started = Date.now();
  let passed = 0;
  let timer: NodeJS.Timeout | undefined;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      passed += chunk.length;
      // When the bytes passed so far are allowed, less the one second of burst.
      const dueMs = ((passed - bytesPerSecond) / bytesPerSecond) * 1000 - (Date.now() - started);
      if (dueMs <= 0) return callback(null, chunk);
      timer = setTimeout(() => callback(null, chunk), dueMs);
    },
    destroy(err, callback) {
      clearTimeout(timer);
      callback(err);
    },
  });
}
