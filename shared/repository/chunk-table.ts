/**
 * A table of chunks by name (SHA-256) with one number each, in typed arrays: open addressing
 * with linear probing, at most three quarters full, keyed by the first 16 bytes of the hash
 * (uniform, so its first word is the slot). 20 bytes a slot, three eighths to three quarters of
 * them full: 27–53 bytes a chunk, against ~100 for a Map keyed by strings; a repository's million
 * chunks (4 GiB of distinct data) cost 27–53 MB. At most half full it took twice the memory and
 * was slower, not faster (measured 2026-12-06, 340,000 chunks: 30 ms for as many lookups of
 * absent chunks at most three quarters full, 80 ms at most half full — a table twice the size
 * misses the processor's caches more often than its shorter probes save).
 *
 * 16 bytes of SHA-256 never collide in practice (2^-64 at four billion chunks), and if two ever
 * did, a snapshot's fingerprint (the SHA-256 of its chunks' full SHA-256s) would not match on
 * restore: damage found, not hidden.
 */
const WORDS = 4;
const EMPTY = 0;

export class ChunkTable {
  private keys: Uint32Array;
  /** value + 1; 0 marks an empty slot. */
  private values: Uint32Array;
  private count = 0;
  // The words of the hash `find` looked for last, which `add` stores without reading them again.
  private w0 = 0;
  private w1 = 0;
  private w2 = 0;
  private w3 = 0;

  constructor(capacity = 1024) {
    const slots = slotsFor(capacity);
    this.keys = new Uint32Array(slots * WORDS);
    this.values = new Uint32Array(slots);
  }

  get size(): number {
    return this.count;
  }

  /** The memory the table holds. */
  get bytes(): number {
    return this.keys.byteLength + this.values.byteLength;
  }

  /** The memory a table holding `chunks` chunks takes once it has grown to hold them. */
  static bytesFor(chunks: number): number {
    return slotsFor(chunks) * (WORDS + 1) * 4;
  }

  /** The value of the hash at `at` in hashes (HASH_BYTES from there), if known. */
  get(hashes: Buffer, at = 0): number | undefined {
    const slot = this.find(hashes, at);
    const v = this.values[slot]!;
    return v === EMPTY ? undefined : v - 1;
  }

  /** Remember the hash at `at` in hashes → value unless the hash is there already (the first place found is kept). */
  add(hashes: Buffer, value: number, at = 0): void {
    if (value < 0 || value >= 0xffffffff) throw new RangeError(`chunk table value ${value} out of range`);
    const slot = this.find(hashes, at);
    if (this.values[slot] !== EMPTY) return;
    const k = slot * WORDS;
    this.keys[k] = this.w0;
    this.keys[k + 1] = this.w1;
    this.keys[k + 2] = this.w2;
    this.keys[k + 3] = this.w3;
    this.values[slot] = value + 1;
    if (++this.count * 4 > this.values.length * 3) this.rehash(this.values.length * 2);
  }

  /** Make room for `more` hashes beyond those held at once, rather than doubling step by step as they come. */
  reserve(more: number): void {
    const slots = slotsFor(this.count + more);
    if (slots > this.values.length) this.rehash(slots);
  }

  clear(): void {
    this.keys.fill(0);
    this.values.fill(EMPTY);
    this.count = 0;
  }

  /** The slot holding hash, or the empty slot where it would go. */
  private find(hashes: Buffer, at: number): number {
    const { keys, values } = this;
    const mask = values.length - 1;
    const k0 = (this.w0 = hashes.readUInt32LE(at));
    const k1 = (this.w1 = hashes.readUInt32LE(at + 4));
    const k2 = (this.w2 = hashes.readUInt32LE(at + 8));
    const k3 = (this.w3 = hashes.readUInt32LE(at + 12));
    for (let slot = k0 & mask; ; slot = (slot + 1) & mask) {
      if (values[slot] === EMPTY) return slot;
      const k = slot * WORDS;
      if (keys[k] === k0 && keys[k + 1] === k1 && keys[k + 2] === k2 && keys[k + 3] === k3) return slot;
    }
  }

  /** Move every entry into new arrays of `slots` slots. */
  private rehash(slots: number): void {
    const { keys, values } = this;
    const newKeys = new Uint32Array(slots * WORDS);
    const newValues = new Uint32Array(slots);
    const mask = slots - 1;
    for (let old = 0; old < values.length; old++) {
      const v = values[old]!;
      if (v === EMPTY) continue;
      const from = old * WORDS;
      let slot = keys[from]! & mask;
      while (newValues[slot] !== EMPTY) slot = (slot + 1) & mask;
      const to = slot * WORDS;
      newKeys[to] = keys[from]!;
      newKeys[to + 1] = keys[from + 1]!;
      newKeys[to + 2] = keys[from + 2]!;
      newKeys[to + 3] = keys[from + 3]!;
      newValues[slot] = v;
    }
    this.keys = newKeys;
    this.values = newValues;
    letGo(keys);
    letGo(values);
  }
}

/**
 * An array's memory freed at V8's next young-generation collection (a fraction of a second away
 * during a transfer) rather than at its next full one: a table's old arrays are in its old
 * generation by the time the table grows, and a backup's main thread ran no full collection for
 * 15 s (1 GiB shard, 2026-12-07), the old arrays of every doubling held meanwhile. Detaching the
 * array's buffer moves its memory to a new, unreachable one. The array must be used no more.
 */
function letGo(array: Uint32Array): void {
  structuredClone(array.buffer, { transfer: [array.buffer] });
}

/** Slots for `capacity` hashes: a power of two, at most three quarters of them full. */
function slotsFor(capacity: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(16, (capacity * 4) / 3)));
}
