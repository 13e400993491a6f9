/**
 * Compression of repository blobs: zstd, from Node's zlib where the running Node has it
 * (22.15 and later), else from `@mongodb-js/zstd` (prebuilt binaries, no download at install).
 * Both write and read standard zstd frames, so a repository written under one Node reads
 * under the other. Calls run on libuv's thread pool, so compression uses the cores the
 * JavaScript thread does not.
 *
 * Weaviate's `CompressionLevel` names map to zstd levels; `NoCompression` stores blobs raw
 * (codec 0 in the index), every other level stores zstd frames (codec 1).
 */
import zlib from 'node:zlib';
import { promisify } from 'node:util';
import type { CompressionLevel } from '../formats/compression.ts';

export const ZSTD_LEVEL: Record<Exclude<CompressionLevel, 'NoCompression'>, number> = {
  BestSpeed: 1,
  DefaultCompression: 3,
  BestCompression: 9,
};

export const CODEC = { raw: 0, zstd: 1 } as const;
export type Codec = (typeof CODEC)[keyof typeof CODEC];

interface Zstd {
  compress(data: Buffer, level: number): Promise<Buffer>;
  decompress(data: Buffer): Promise<Buffer>;
}

type BuiltIn = typeof zlib & {
  zstdCompress?: (buf: Buffer, opts: object, cb: (err: Error | null, out: Buffer) => void) => void;
  zstdDecompress?: (buf: Buffer, cb: (err: Error | null, out: Buffer) => void) => void;
  constants: typeof zlib.constants & { ZSTD_c_compressionLevel?: number };
};

let loaded: Promise<Zstd> | undefined;

function zstd(): Promise<Zstd> {
  loaded ??= (async (): Promise<Zstd> => {
    const z = zlib as BuiltIn;
    if (typeof z.zstdCompress === 'function' && typeof z.zstdDecompress === 'function' && z.constants.ZSTD_c_compressionLevel !== undefined) {
      const compress = promisify(z.zstdCompress);
      const decompress = promisify(z.zstdDecompress);
      const param = z.constants.ZSTD_c_compressionLevel;
      return {
        compress: (data, level) => compress(data, { params: { [param]: level } }),
        decompress: (data) => decompress(data),
      };
    }
    // The package's own wrapper (index.js of 1.2.x) drops the level it declares; its native
    // bindings take it (and default to 3), so they are called directly.
    const bindings = await import('@mongodb-js/zstd/bindings.js');
    return { compress: (data, level) => bindings.compress(data, level), decompress: (data) => bindings.decompress(data) };
  })();
  return loaded;
}

/** The codec and bytes of a blob at this level. */
export async function encodeBlob(raw: Buffer, level: CompressionLevel): Promise<{ codec: Codec; data: Buffer }> {
  if (level === 'NoCompression') return { codec: CODEC.raw, data: raw };
  return { codec: CODEC.zstd, data: await (await zstd()).compress(raw, ZSTD_LEVEL[level]) };
}

export async function decodeBlob(codec: number, data: Buffer): Promise<Buffer> {
  if (codec === CODEC.raw) return data;
  if (codec === CODEC.zstd) return (await zstd()).decompress(data);
  throw new Error(`unknown blob codec ${codec}`);
}
