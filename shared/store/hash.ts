/**
 * Stable shard routing: FNV-1a (32-bit) of the `_id`'s canonical string form, modulo the
 * shard count. The same id always lands on the same shard, in every process and release.
 */
export function hashId(id: string | number): number {
  const text = typeof id === 'number' ? `n:${id}` : `s:${id}`;
  let h = 0x811c9dc5;
  const bytes = Buffer.from(text, 'utf8');
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export function shardFor(id: string | number, shards: number): number {
  return hashId(id) % shards;
}

/** Shard i lives on node i mod N. */
export function placeShards(shards: number, nodes: readonly string[]): string[] {
  return Array.from({ length: shards }, (_, i) => nodes[i % nodes.length]!);
}
