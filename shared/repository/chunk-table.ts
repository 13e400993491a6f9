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
 *
 * `LocationChunks` is the table of every chunk a backup location holds: a ChunkTable up to
 * CHUNKS_IN_MEMORY chunks, on disk beyond (below).
 */
import { ScratchTable } from '../store/scratch-table.ts';

const WORDS = 4;
const EMPTY = 0;
const KEY_BYTES = WORDS * 4;

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

  /** Let the table's memory go now (at V8's next young collection, letGo); the table must be used no more. */
  release(): void {
    letGo(this.keys);
    letGo(this.values);
  }

  /**
   * Every entry, as its key's bytes (one buffer, written anew for each) and its value, in the
   * byte order of the keys' first four bytes: an ordered store takes them in one pass over its pages.
   */
  forEachInKeyOrder(visit: (key: Buffer, value: number) => void): void {
    const { keys, values } = this;
    const slots = values.length;
    // Sort keys of 32 bits × slot numbers of at most 21: exact as doubles, sorted natively.
    if (slots > 2 ** 21) throw new RangeError(`a table of ${slots} slots is too large to sort this way`);
    const order = new Float64Array(this.count);
    let n = 0;
    for (let slot = 0; slot < slots; slot++) {
      if (values[slot] === EMPTY) continue;
      const w = keys[slot * WORDS]!;
      // The first four bytes as a big-endian number (the word holds them little-endian).
      const first = ((w & 0xff) * 0x1000000 + ((w >>> 8) & 0xff) * 0x10000 + ((w >>> 16) & 0xff) * 0x100 + (w >>> 24)) >>> 0;
      order[n++] = first * slots + slot;
    }
    order.sort();
    const key = Buffer.alloc(KEY_BYTES);
    for (const o of order) {
      const slot = o % slots;
      for (let i = 0; i < WORDS; i++) key.writeUInt32LE(keys[slot * WORDS + i]!, i * 4);
      visit(key, values[slot]! - 1);
    }
    letGo(order);
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
function letGo(array: Uint32Array | Float64Array): void {
  structuredClone(array.buffer, { transfer: [array.buffer] });
}

/** Slots for `capacity` hashes: a power of two, at most three quarters of them full. */
function slotsFor(capacity: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(16, (capacity * 4) / 3)));
}

/**
 * Chunks of a location a process keeps in memory (three quarters of 2^20: a table of 2^20 slots,
 * 20 MiB; 3 GiB of distinct data). Beyond, the table is on disk.
 */
export const CHUNKS_IN_MEMORY = 3 * 2 ** 18;
/** New chunks held in memory on their way to the table on disk (a table of 2^18 slots, 5 MiB). */
const RECENT_CHUNKS = 3 * 2 ** 16;
/** Bits of the filter in front of the table on disk: 2^26, 8 MiB, whatever the table holds. */
const FILTER_BITS = 2 ** 26;

/**
 * The table of every chunk a backup location holds (SHA-256 → a number), within a bounded
 * memory: a ChunkTable up to `memoryChunks` chunks; past it, a scratch table on disk
 * (shared/store/scratch-table.ts: LMDB, its pages the page cache's, not the process's), so what
 * a process holds does not grow with what its location holds.
 *
 * On disk, a lookup costs ~1.5 µs instead of ~0.1 and a write batch a pass over the table's
 * pages (measured 2026-12-07). So new chunks wait in a small table in memory and go to disk
 * sorted, in batches of RECENT_CHUNKS (one write transaction each), and a filter of fixed size
 * (three bits a chunk, from three words of its hash) answers most lookups of a chunk the table
 * lacks — a full backup's — without the disk: all but one in about 12,000 at a million chunks,
 * all but one in twenty at ten million (the others are looked up on disk, and found absent).
 */
export class LocationChunks {
  /** The table in memory, or once moved: the table on disk, the new chunks on their way there, the filter, and how many chunks all that holds. */
  private where: ChunkTable | OnDisk = new ChunkTable();

  constructor(private readonly memoryChunks = CHUNKS_IN_MEMORY) {}

  get size(): number {
    const { where } = this;
    return where instanceof ChunkTable ? where.size : where.count;
  }

  /** Whether the table has moved to disk. */
  get onDisk(): boolean {
    return !(this.where instanceof ChunkTable);
  }

  /** The value of the hash at `at` in hashes, if known. */
  get(hashes: Buffer, at = 0): number | undefined {
    const { where } = this;
    if (where instanceof ChunkTable) return where.get(hashes, at);
    const recent = where.recent.get(hashes, at);
    if (recent !== undefined || !filterBits(where.filter, hashes, at, false)) return recent;
    return where.table.get(hashes.subarray(at, at + KEY_BYTES));
  }

  /** Remember the hash at `at` in hashes → value unless the hash is there already (the first place found is kept). */
  add(hashes: Buffer, value: number, at = 0): void {
    let { where } = this;
    if (where instanceof ChunkTable) {
      if (where.size < this.memoryChunks) return where.add(hashes, value, at);
      where = this.spill(where);
    }
    if (this.get(hashes, at) !== undefined) return;
    where.recent.add(hashes, value, at);
    filterBits(where.filter, hashes, at, true);
    where.count++;
    if (where.recent.size >= RECENT_CHUNKS) {
      // The new chunks waiting in memory, onto the table on disk in one write transaction.
      const { table, recent } = where;
      table.batch(() => recent.forEachInKeyOrder((k, v) => table.put(k, v)));
      recent.clear();
    }
  }

  /** Make room for `more` hashes at once rather than step by step (or move to disk now, if they would not fit). */
  reserve(more: number): void {
    const { where } = this;
    if (!(where instanceof ChunkTable)) return;
    if (where.size + more > this.memoryChunks) this.spill(where);
    else where.reserve(more);
  }

  /** Forget every chunk (and the table on disk, if it moved there). */
  clear(): void {
    const { where } = this;
    // Thrown away: a failure to close it leaves nothing behind (its files are already gone).
    if (!(where instanceof ChunkTable)) where.table.close().catch(() => undefined);
    this.where = new ChunkTable();
  }

  /** Move every chunk of the memory table to a table on disk, and let the memory table go. */
  private spill(memory: ChunkTable): OnDisk {
    const disk: OnDisk = { table: new ScratchTable(), recent: new ChunkTable(RECENT_CHUNKS), filter: new Uint32Array(FILTER_BITS / 32), count: memory.size };
    disk.table.batch(() =>
      memory.forEachInKeyOrder((key, value) => {
        filterBits(disk.filter, key, 0, true);
        disk.table.put(key, value);
      }),
    );
    memory.release();
    this.where = disk;
    return disk;
  }
}

interface OnDisk {
  table: ScratchTable;
  recent: ChunkTable;
  filter: Uint32Array;
  count: number;
}

/**
 * The filter's three bits for the hash at `at`, from its second, third and fourth words (the
 * first picks a ChunkTable slot): set them (`set`), or tell whether all three are set.
 */
function filterBits(filter: Uint32Array, hashes: Buffer, at: number, set: boolean): boolean {
  for (let w = 1; w < WORDS; w++) {
    const bit = hashes.readUInt32LE(at + 4 * w) & (FILTER_BITS - 1);
    const mask = 1 << (bit & 31);
    if (set) filter[bit >>> 5]! |= mask;
    else if ((filter[bit >>> 5]! & mask) === 0) return false;
  }
  return true;
}
