/**
 * Compression of backup shard objects, named as Weaviate names it (`config.CompressionLevel`).
 *
 * | level                | bytes written                          |
 * |----------------------|----------------------------------------|
 * | `BestSpeed`          | gzip, zlib level 1                     |
 * | `DefaultCompression` | gzip, zlib level 6 (the default)       |
 * | `BestCompression`    | gzip, zlib level 9                     |
 * | `NoCompression`      | the raw bytes, unchanged (no wrapper)  |
 *
 * Decompression never needs to be told the level: `decompressStream()` looks at the first
 * bytes and undoes whatever codec's magic it finds (gzip: `1f 8b`), passing anything else
 * through unchanged. A dump stream starts with `SVDUMP`, so it can never be mistaken for
 * gzip. Adding a codec later (zstd, once node:zlib has it) means one more entry in CODECS and,
 * if wanted, new level names; existing objects stay readable.
 */
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { constants as zlibConstants, createGzip, createGunzip } from 'node:zlib';

export const COMPRESSION_LEVELS = [
  'BestSpeed',
  'DefaultCompression',
  'BestCompression',
  'NoCompression',
] as const;
export type CompressionLevel = (typeof COMPRESSION_LEVELS)[number];

/**
 * Every name a request may give `config.CompressionLevel`: ours, and Weaviate's names of its zstd
 * levels (its clients send them), which are the level of the same name without `Zstd`: every
 * level of a snapshot backup is zstd (repository/codec.ts).
 */
export const REQUESTED_COMPRESSION_LEVELS = [...COMPRESSION_LEVELS, 'ZstdBestSpeed', 'ZstdDefaultCompression', 'ZstdBestCompression'] as const;

/** The level a request's name stands for. */
export function compressionLevelOf(name: (typeof REQUESTED_COMPRESSION_LEVELS)[number]): CompressionLevel {
  return name.startsWith('Zstd') ? (name.slice('Zstd'.length) as CompressionLevel) : (name as CompressionLevel);
}


/** zlib level for each gzip-backed level; NoCompression has none (bytes pass through). */
const GZIP_LEVEL: Record<Exclude<CompressionLevel, 'NoCompression'>, number> = {
  BestSpeed: zlibConstants.Z_BEST_SPEED,
  DefaultCompression: 6,
  BestCompression: zlibConstants.Z_BEST_COMPRESSION,
};

/** A Transform that compresses bytes at the given level (NoCompression: a PassThrough). */
export function compressStream(level: CompressionLevel = 'DefaultCompression'): Transform {
  if (level === 'NoCompression') return new PassThrough();
  const gzipLevel = GZIP_LEVEL[level];
  if (gzipLevel === undefined) throw new TypeError(`unknown compression level ${String(level)}`);
  return createGzip({ level: gzipLevel });
}

interface Codec {
  name: string;
  magic: Buffer;
  decompress(): Transform;
}

/** Codecs recognised by their leading bytes; the first whose magic matches wins. */
const CODECS: readonly Codec[] = [
  { name: 'gzip', magic: Buffer.from([0x1f, 0x8b]), decompress: () => createGunzip() },
];
const LONGEST_MAGIC = Math.max(...CODECS.map((c) => c.magic.length));

/** The codec whose magic starts `head`, or 'none'. `head` should hold at least 4 bytes when the stream has them. */
export function detectCompression(head: Uint8Array): string {
  return findCodec(Buffer.from(head.buffer, head.byteOffset, head.byteLength))?.name ?? 'none';
}

function findCodec(head: Buffer): Codec | undefined {
  return CODECS.find((c) => head.length >= c.magic.length && head.subarray(0, c.magic.length).equals(c.magic));
}

/**
 * Undoes whatever compression the stream carries, detected from its first bytes; bytes of an
 * unrecognised format (including NoCompression objects) pass through unchanged. The inner
 * decompressor is paused whenever this stream's reader is slow, so backpressure holds end to end.
 */
class AutoDecompress extends Transform {
  #head: Buffer[] = [];
  #headLength = 0;
  #decided = false;
  #inner: Transform | undefined;
  #innerError: Error | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.#decided) {
      this.#head.push(chunk);
      this.#headLength += chunk.length;
      if (this.#headLength < LONGEST_MAGIC) return callback();
      chunk = this.#decide();
    }
    this.#forward(chunk, callback);
  }

  override _flush(callback: TransformCallback): void {
    const rest = this.#decided ? undefined : this.#decide();
    const finish = (): void => {
      const inner = this.#inner;
      if (!inner) return callback();
      if (this.#innerError) return callback(this.#innerError);
      inner.once('end', () => callback());
      inner.once('error', (err) => callback(err));
      inner.end();
    };
    if (rest && rest.length > 0) {
      this.#forward(rest, (err, data) => {
        if (err) return callback(err);
        if (data) this.push(data);
        finish();
      });
    } else finish();
  }

  override _read(size: number): void {
    this.#inner?.resume();
    super._read(size);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#inner?.destroy();
    callback(err);
  }

  /** Chooses the codec from the buffered head; answers the buffered bytes to process. */
  #decide(): Buffer {
    this.#decided = true;
    const head = Buffer.concat(this.#head, this.#headLength);
    this.#head = [];
    const codec = findCodec(head);
    if (codec) {
      const inner = codec.decompress();
      inner.on('data', (data: Buffer) => {
        if (!this.push(data)) inner.pause();
      });
      inner.on('error', (err) => {
        this.#innerError = err;
        this.destroy(err);
      });
      this.#inner = inner;
    }
    return head;
  }

  #forward(chunk: Buffer, callback: TransformCallback): void {
    const inner = this.#inner;
    if (!inner) return callback(null, chunk);
    if (this.#innerError) return callback(this.#innerError);
    if (inner.write(chunk)) callback();
    else inner.once('drain', () => callback());
  }
}

/**
 * A Transform that decompresses what compressStream wrote, at any level: the codec is detected
 * from the stream's magic bytes, so `_level` is accepted for symmetry but never needed.
 */
export function decompressStream(_level?: CompressionLevel): Transform {
  return new AutoDecompress();
}
