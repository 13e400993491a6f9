/** The native bindings of @mongodb-js/zstd 1.2.x (its index.js wrapper drops the level). */
declare module '@mongodb-js/zstd/bindings.js' {
  export function compress(data: Buffer, level?: number): Promise<Buffer>;
  export function decompress(data: Buffer): Promise<Buffer>;
}
