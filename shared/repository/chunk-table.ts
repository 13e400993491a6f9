/**
 * A table of chunks by name (SHA-256) with one number each, in typed arrays: open addressing
 * with linear probing, at most half full, keyed by the first 16 bytes of the hash (uniform, so
 * its first word is the slot). 20 bytes a slot, a quarter to half of them full: 40–80 bytes a
 * chunk, against ~100 for a Map keyed by strings; a repository's million chunks (4 GiB of
 * distinct data) cost 40–80 MB.
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

  constructor(capacity = 1024) {
    const slots = 2 ** Math.ceil(Math.log2(Math.max(16, capacity * 2)));
    this.keys = new Uint32Array(slots * WORDS);
    this.values = new Uint32Array(slots);
  }

  get size(): number {
    return this.count;
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
    for (let w = 0; w < WORDS; w++) this.keys[slot * WORDS + w] = hashes.readUInt32LE(at + w * 4);
    this.values[slot] = value + 1;
    if (++this.count * 2 > this.values.length) this.grow();
  }

  clear(): void {
    this.keys.fill(0);
    this.values.fill(EMPTY);
    this.count = 0;
  }

  /** The slot holding hash, or the empty slot where it would go. */
  private find(hashes: Buffer, at: number): number {
    const mask = this.values.length - 1;
    const k0 = hashes.readUInt32LE(at);
    const k1 = hashes.readUInt32LE(at + 4);
    const k2 = hashes.readUInt32LE(at + 8);
    const k3 = hashes.readUInt32LE(at + 12);
    for (let slot = k0 & mask; ; slot = (slot + 1) & mask) {
      if (this.values[slot] === EMPTY) return slot;
      const at = slot * WORDS;
      if (this.keys[at] === k0 && this.keys[at + 1] === k1 && this.keys[at + 2] === k2 && this.keys[at + 3] === k3) return slot;
    }
  }

  private grow(): void {
    const { keys, values } = this;
    this.keys = new Uint32Array(keys.length * 2);
    this.values = new Uint32Array(values.length * 2);
    const mask = this.values.length - 1;
    for (let old = 0; old < values.length; old++) {
      if (values[old] === EMPTY) continue;
      let slot = keys[old * WORDS]! & mask;
      while (this.values[slot] !== EMPTY) slot = (slot + 1) & mask;
      this.keys.set(keys.subarray(old * WORDS, old * WORDS + WORDS), slot * WORDS);
      this.values[slot] = values[old]!;
    }
  }
}
