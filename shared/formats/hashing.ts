/**
 * Checksums computed while bytes flow, so nothing is read twice: a backup child meters a shard
 * object as it uploads it, a restore child meters it again as it reads it back, and both sides
 * compare the hex sha256 recorded in the per-node manifest (docs/formats.md §1.3).
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * A byte passthrough that counts bytes and hashes them (sha256) on the way through.
 * `digest()` may be called at any time, any number of times: it answers the sha256 (hex) of
 * the bytes seen so far, so after `'end'`/`'finish'` it is the checksum of the whole stream.
 */
class ByteMeter extends Transform {
  #hash: Hash = createHash('sha256');
  #bytes = 0;

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** sha256 (lowercase hex) of the bytes seen so far. */
  digest(): string {
    return this.#hash.copy().digest('hex');
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
    callback(null, chunk);
  }
}

/** A passthrough that counts bytes and computes their sha256 as data flows (see ByteMeter). */
export function createMeter(): ByteMeter {
  return new ByteMeter();
}

/** Reads a stream to its end and answers the sha256 (lowercase hex) of its bytes. */
export async function sha256OfStream(readable: Readable): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(readable, async (source: AsyncIterable<Buffer | string>) => {
    for await (const chunk of source) hash.update(chunk);
  });
  return hash.digest('hex');
}
