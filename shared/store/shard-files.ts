/**
 * Shard files: how a shard lives on disk (`DATA_DIR/<node>/<index>/<shard>/data.mdb`, one LMDB
 * environment), for everything that moves whole shards — a physical snapshot of a shard for
 * a backup, the staging of a restored shard, and moving staged shards into place. Nothing
 * outside `shared/store` opens an LMDB environment or knows its file names.
 *
 * - Snapshot: the bytes of a plain (not compacting) copy of the environment as of one read
 *   transaction, taken while writes go on — what lmdb's `backup()` (`mdb_env_copy2`) would
 *   write — but read in place from the shard's own file while the transaction holds its pages
 *   (`takeSnapshot`), so no copy is written to the disk and read back — with LMDB's free pages
 *   as zeros (`freePages`). A plain copy keeps every unchanged page at its offset, which is
 *   what makes page-sized chunks deduplicate (docs/chunking.md). While a snapshot is held, LMDB
 *   cannot reuse the pages it holds, so a shard written to meanwhile grows by what is
 *   rewritten; a process killed while holding one leaves its reader slot, which lmdb-js clears
 *   when an environment is opened and every ten minutes of writes.
 * - Staging: `DATA_DIR/<node>/.staging/<backend>.<backup id>/<index>/<shard>/`. Index names
 *   never start with `.`, so the staging area cannot clash with an index. A restore writes the
 *   environment there (the file itself, or documents in batches for the dump format of version
 *   1), opens it to check it, and the commit renames it into place.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Readable, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ABORT, open, type RootDatabase } from 'lmdb';
import { syncDirectory, syncFile } from '../durable.ts';
import { NotFoundError } from '../errors.ts';
import { appendRange, withoutRanges, zeroRanges } from '../formats/ranges.ts';
import type { OperationRef } from '../jobs/operation.ts';
import type { Document } from './schema.ts';
import { SHARD_FILE, type IndexRecord, type Store } from './store.ts';

const LOCK_SUFFIX = '-lock';
/** Where earlier versions copied a shard to snapshot it: a copy a crash left there is removed at start. */
const SNAPSHOT_DIR = '.snapshots';
const STAGING_DIR = '.staging';
/** Documents written to a staging environment per LMDB transaction. */
const BATCH = 1000;

export interface ShardSnapshot {
  /** Bytes of the snapshot, and the documents in it. */
  size: number;
  docs: number;
  /**
   * The snapshot's bytes; read it once. `leave`, for a snapshot on this host: (offset, length)
   * byte ranges, in order, left out of the stream.
   */
  stream(leave?: number[]): Readable;
  /**
   * The snapshot in place, when it is on this host: its first `head.length` bytes are `head`,
   * the rest are bytes `head.length` to `size` of the shard file open at `fd` (any thread of
   * this process may read it), which stay the snapshot's until it is released — but for the
   * (offset, length) byte ranges of `free`, LMDB's free pages, which are zeros in the snapshot.
   */
  local?: {
    fd: number;
    head: Buffer;
    free: number[];
    /**
     * The pages that hold what they held in an earlier snapshot of the same `origin.lineage`,
     * taken at `origin.generation` `since`, as (offset, length) byte ranges in order (see
     * `unchangedPages`); none when that cannot be told.
     */
    unchangedSince(since: string): Promise<number[]>;
  };
  /**
   * Which environment file this is (`lineage`: the file itself, not its path — a restored or
   * recreated shard is a new one) and which of its transactions the snapshot holds
   * (`generation`), for a snapshot on this host.
   */
  origin?: { lineage: string; generation: string };
  /**
   * For a snapshot asked for against a base (of a node on another host): the byte ranges
   * unchanged since the base, whose chunks its stream leaves out but for a sample.
   */
  unchanged?: number[];
  /** Let the shard's pages go (and close the file). */
  release(): Promise<void>;
}

/**
 * LMDB's meta page (lmdb's mdb.c, `MDB_meta`, 64-bit little-endian): found by its magic
 * number after the page header; its fields by their offsets from the magic number.
 */
const META = {
  magic: 0xbeefc0de,
  version: 2,
  /** Where the page header may end. */
  search: 64,
  /** `mm_dbs[FREE_DBI].md_pad`: the page size. */
  pageSize: 24,
  /** `mm_dbs[FREE_DBI]` and `mm_dbs[MAIN_DBI]` (`MDB_db`): the free-page database and the documents'. */
  freeDb: 24,
  mainDb: 72,
  /** `mm_last_pg`, `mm_txnid`. */
  lastPage: 120,
  txnid: 128,
  /** Bytes of the fields read. */
  end: 136,
} as const;

/** An `MDB_db` record: a B-tree's depth, its pages of each kind, its entries and its root page. */
interface Tree {
  depth: number;
  branchPages: number;
  leafPages: number;
  overflowPages: number;
  entries: number;
  root: number;
}

interface Meta {
  pageSize: number;
  lastPage: number;
  txnid: bigint;
  free: Tree;
  main: Tree;
}

/** The `MDB_db` record at `at` of buf. */
function readTree(buf: Buffer, at: number): Tree {
  return {
    depth: buf.readUInt16LE(at + 6),
    branchPages: Number(buf.readBigUInt64LE(at + 8)),
    leafPages: Number(buf.readBigUInt64LE(at + 16)),
    overflowPages: Number(buf.readBigUInt64LE(at + 24)),
    entries: Number(buf.readBigUInt64LE(at + 32)),
    root: Number(buf.readBigUInt64LE(at + 40)),
  };
}

/** The meta page at `at` of `buf`. */
function readMeta(buf: Buffer, at: number, file: string): Meta {
  for (let m = at; m < at + META.search; m += 4) {
    if (buf.readUInt32LE(m) !== META.magic) continue;
    if (buf.readUInt32LE(m + 4) !== META.version) break;
    return {
      pageSize: buf.readUInt32LE(m + META.pageSize),
      lastPage: Number(buf.readBigUInt64LE(m + META.lastPage)),
      txnid: buf.readBigUInt64LE(m + META.txnid),
      free: readTree(buf, m + META.freeDb),
      main: readTree(buf, m + META.mainDb),
    };
  }
  throw new Error(`${file}: no LMDB meta page of version ${META.version} at byte ${at}`);
}

/**
 * LMDB's pages (mdb.c as lmdb-js builds it: `MDB_page_header` of 24 bytes — page number,
 * txnid, pad, flags, then lower and upper bounds or an overflow page's page count — whose
 * node offsets count from the end of the header, PAGEBASE; `MDB_node` of 8 bytes).
 */
const PAGE = {
  header: 24,
  flags: 18,
  lower: 20,
  /** An overflow page's number of pages. */
  pages: 20,
  branch: 0x01,
  leaf: 0x02,
  overflow: 0x04,
  node: 8,
  /** A leaf node's data lies on overflow pages (`F_BIGDATA`). */
  bigData: 0x01,
} as const;

/** The first two pages are the meta pages. */
const META_PAGES = 2;

/**
 * The pages LMDB lists as free as of a meta page, as (byte offset, length) ranges in order: the
 * records of its free-page database (FREE_DBI, keyed by the transaction that freed them). No
 * database reaches a free page, and LMDB writes a page whole before it uses it again, so a
 * snapshot holds zeros in their place: what they held was left over from older transactions,
 * and it changes between two snapshots without any document changing.
 *
 * A record is lmdb-js's form of LMDB's `MDB_IDL` (its midl.c, `mdb_midl_xmerge`): a count n,
 * then n signed 64-bit entries — a page number; or -k followed by the first page of k pages in
 * a row; or 0, room left empty — in records reserved for at least that many.
 *
 * The free-page database's pages belong to the snapshot like any other (its read transaction
 * holds them) and are read from the file. What the walk finds is checked before a page is taken
 * as free: every page it reads says its number and is of the kind the tree's depth calls for;
 * the pages and entries it found are those the meta page counts; no page is listed twice or
 * lies outside the file's; and the file's pages add up — the meta pages, the two databases'
 * pages and the free ones make every page up to the last (the documents are one database, with
 * none inside it). Anything else answers undefined: the snapshot then keeps every page's bytes
 * as they are (and tells no page unchanged).
 */
function freePages(fd: number, meta: Meta): number[] | undefined {
  const { pageSize, lastPage, free: tree, main } = meta;
  const used = (t: Tree) => t.branchPages + t.leafPages + t.overflowPages;
  if (tree.depth === 0) return META_PAGES + used(main) === lastPage + 1 ? [] : undefined;
  if (tree.entries === 0 || tree.root < META_PAGES || tree.root > lastPage) return undefined;
  const read = (pgno: number, pages = 1): Buffer => {
    const buf = Buffer.alloc(pages * pageSize);
    if (fs.readSync(fd, buf, 0, buf.length, pgno * pageSize) !== buf.length) throw new Error(`page ${pgno} is past the end of the file`);
    if (Number(buf.readBigUInt64LE(0)) !== pgno) throw new Error(`page ${pgno} says it is page ${buf.readBigUInt64LE(0)}`);
    return buf;
  };
  const found = { branchPages: 0, leafPages: 0, overflowPages: 0, entries: 0 };
  /** First page and count of each run of free pages. */
  const runs: number[] = [];
  try {
    const walk = (pgno: number, depth: number): void => {
      const page = read(pgno);
      const kind = page.readUInt16LE(PAGE.flags) & (PAGE.branch | PAGE.leaf | PAGE.overflow);
      const keys = page.readUInt16LE(PAGE.lower) >> 1;
      const leaf = depth === tree.depth;
      if (kind !== (leaf ? PAGE.leaf : PAGE.branch)) throw new Error(`page ${pgno} is not a ${leaf ? 'leaf' : 'branch'} page`);
      if (leaf) found.leafPages++;
      else found.branchPages++;
      for (let k = 0; k < keys; k++) {
        const node = PAGE.header + page.readUInt16LE(PAGE.header + 2 * k);
        const lo = page.readUInt16LE(node);
        const hi = page.readUInt16LE(node + 2);
        const flags = page.readUInt16LE(node + 4);
        const keySize = page.readUInt16LE(node + 6);
        if (!leaf) {
          walk(lo + hi * 0x10000 + flags * 0x100000000, depth + 1);
          continue;
        }
        found.entries++;
        const size = lo + hi * 0x10000;
        let data = page.subarray(node + PAGE.node + keySize);
        if (flags & PAGE.bigData) {
          const at = Number(data.readBigUInt64LE(0));
          const first = read(at);
          const pages = first.readUInt32LE(PAGE.pages);
          if (pages < 1 || at + pages - 1 > lastPage) throw new Error(`overflow page ${at} runs past the last page`);
          const overflow = pages === 1 ? first : read(at, pages);
          if ((overflow.readUInt16LE(PAGE.flags) & PAGE.overflow) === 0) throw new Error(`page ${at} is not an overflow page`);
          found.overflowPages += pages;
          data = overflow.subarray(PAGE.header);
        }
        const n = Number(data.readBigUInt64LE(0));
        if (size < (n + 1) * 8 || data.length < size) throw new Error(`a free-page record of ${size} bytes lists ${n} entries`);
        for (let i = 1; i <= n; i++) {
          const entry = data.readBigInt64LE(8 * i);
          if (entry === 0n) continue;
          if (entry > 0n) runs.push(Number(entry), 1);
          else if (++i <= n) runs.push(Number(data.readBigInt64LE(8 * i)), -Number(entry));
          else throw new Error('a free-page record ends inside a run of pages');
        }
      }
    };
    walk(tree.root, 1);
  } catch {
    return undefined;
  }
  if (found.branchPages !== tree.branchPages || found.leafPages !== tree.leafPages || found.overflowPages !== tree.overflowPages || found.entries !== tree.entries) return undefined;
  // In order of first page, each run after the last without overlapping it.
  const order = Array.from({ length: runs.length / 2 }, (_, r) => r).sort((a, b) => runs[2 * a]! - runs[2 * b]!);
  const ranges: number[] = [];
  let freeCount = 0;
  let next = META_PAGES;
  for (const r of order) {
    const first = runs[2 * r]!;
    const count = runs[2 * r + 1]!;
    if (first < next || first + count - 1 > lastPage) return undefined;
    next = first + count;
    freeCount += count;
    appendRange(ranges, first * pageSize, count * pageSize);
  }
  if (META_PAGES + used(tree) + used(main) + freeCount !== lastPage + 1) return undefined;
  return ranges;
}

const readAt = promisify(fs.read);

/** Bytes of the file read at once to look at its page headers (and to pick a snapshot's pages out of). */
const SCAN_BYTES = 4 * 1024 * 1024;

/**
 * The pages of a snapshot (as of `meta`, its free pages `free` as `freePages` verified them) that
 * hold the bytes they held as of the file's transaction `since` — in an earlier snapshot of the
 * same file — as (offset, length) byte ranges in order; an incremental backup takes their
 * chunks' names from that snapshot instead of reading them again.
 *
 * LMDB never changes a committed page: a transaction writes what it changes to pages it
 * allocates, stamps them with its id (`mp_txnid`, mdb.c: "(clean page).mp_txnid == txnid of
 * creator < txnid of later txns"), and frees the old ones. So a page that a snapshot's
 * databases reach (every page but the meta pages and the free ones, as `freePages` checked) and
 * whose header says a transaction no later than `since` wrote it was reached, with these bytes,
 * by the snapshot at `since` as well — it was never freed, else it would have been written
 * again before being reached. An overflow page's header stands for the pages of its value.
 * The pages are walked in order, their headers read in large reads, free ones skipped; a page
 * that does not say its own number where a header must be, or a transaction newer than the
 * snapshot's, answers none.
 */
async function unchangedPages(handle: fs.promises.FileHandle, meta: Meta, free: readonly number[], since: bigint): Promise<number[]> {
  const { pageSize, lastPage } = meta;
  // Page numbers and transaction ids as numbers, read as two words each (a BigInt per page
  // header was most of the walk's time and garbage); ids past 2^53 would not compare exactly.
  if (since > meta.txnid || meta.txnid > BigInt(Number.MAX_SAFE_INTEGER)) return [];
  const newest = Number(meta.txnid);
  const before = Number(since);
  const end = lastPage + 1;
  const buf = Buffer.allocUnsafe(SCAN_BYTES);
  const u64 = (at: number): number => buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * 2 ** 32;
  const perRead = SCAN_BYTES / pageSize;
  let held = 0;
  let heldEnd = 0;
  const ranges: number[] = [];
  let f = 0;
  for (let p = META_PAGES; p < end; ) {
    while (f < free.length && free[f]! + free[f + 1]! <= p * pageSize) f += 2;
    if (f < free.length && free[f]! <= p * pageSize) {
      p = (free[f]! + free[f + 1]!) / pageSize;
      continue;
    }
    if (p < held || p >= heldEnd) {
      const n = Math.min(perRead, end - p);
      const { bytesRead } = await handle.read(buf, 0, n * pageSize, p * pageSize);
      if (bytesRead < pageSize) return [];
      held = p;
      heldEnd = p + Math.floor(bytesRead / pageSize);
    }
    const at = (p - held) * pageSize;
    if (u64(at) !== p) return [];
    const txnid = u64(at + 8);
    if (txnid > newest) return [];
    const count = buf.readUInt16LE(at + PAGE.flags) & PAGE.overflow ? buf.readUInt32LE(at + PAGE.pages) : 1;
    if (count < 1 || p + count > end) return [];
    if (txnid <= before) appendRange(ranges, p * pageSize, count * pageSize);
    p += count;
  }
  return ranges;
}

/**
 * A consistent physical snapshot of one shard, taken now, while writes go on — what LMDB's own
 * copy (`mdb_env_copyfd0`) writes, read in place instead of copied: a read transaction is
 * taken first and held until release, so no page of any later snapshot is written over
 * (LMDB reuses a freed page only once every reader is newer than the transaction that freed
 * it); then, with writers held off (a write transaction, aborted), the two meta pages are
 * read; the newest names the pages up to its last one, and its free-page database the pages
 * that are zeros in the snapshot. Those pages are read from the file itself (the page cache)
 * as the snapshot is written: no copy is written or read back.
 */
export async function takeSnapshot(store: Store, rec: IndexRecord, shard: number): Promise<ShardSnapshot> {
  const db = store.shardDb(rec, shard);
  const file = path.join(store.shardDir(rec.placement[shard]!, rec.name, shard), SHARD_FILE);
  const txn = db.useReadTransaction();
  let handle: fs.promises.FileHandle | undefined;
  const release = async () => {
    try {
      txn.done();
    } catch (err) {
      // Only the shard's database closing (its index deleted meanwhile) ends the transaction
      // before this does; nobody writes the file after that.
      if (!/already closed/.test((err as Error).message)) throw err;
    }
    await handle?.close();
  };
  try {
    handle = await fs.promises.open(file, 'r');
    const fd = handle.fd;
    let metas = Buffer.alloc(0);
    let pageSize = 0;
    db.transactionSync(() => {
      const first = Buffer.alloc(META.search + META.end);
      fs.readSync(fd, first, 0, first.length, 0);
      pageSize = readMeta(first, 0, file).pageSize;
      if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) throw new Error(`${file}: LMDB page size ${pageSize} is not a power of two from 512 to 65536`);
      metas = Buffer.alloc(2 * pageSize);
      if (fs.readSync(fd, metas, 0, metas.length, 0) !== metas.length) throw new Error(`${file} ends inside its meta pages`);
      return ABORT;
    });
    const newest = [readMeta(metas, 0, file), readMeta(metas, pageSize, file)].reduce((a, b) => (b.txnid > a.txnid ? b : a));
    const stat = await handle.stat({ bigint: true });
    const size = Math.min((newest.lastPage + 1) * pageSize, Number(stat.size));
    // The free-page database is the snapshot's like every other page: the read transaction holds it.
    const free = freePages(fd, newest);
    const opened = handle;
    const local = {
      fd,
      head: metas,
      free: free ?? [],
      unchangedSince: async (since: string) => (free && /^\d{1,20}$/.test(since) ? unchangedPages(opened, newest, free, BigInt(since)) : []),
    };
    const origin = { lineage: lineageOf(stat), generation: newest.txnid.toString() };
    return { size, docs: newest.main.entries, local, origin, stream: (leave) => snapshotStream(local, size, leave), release };
  } catch (err) {
    await release();
    throw err;
  }
}
/**
 * The environment file of a shard, whatever its path (a restore or a new index puts a new file
 * there): a hash of its device, inode and birth time.
 */
function lineageOf(stat: fs.BigIntStats): string {
  return createHash('sha256').update(`${stat.dev}:${stat.ino}:${stat.birthtimeNs}`).digest('hex').slice(0, 32);
}

/** The lineage (see ShardSnapshot's `origin`) of a shard's environment file as it is now. */
export async function shardLineage(store: Store, rec: IndexRecord, shard: number): Promise<string> {
  store.shardDb(rec, shard);
  return lineageOf(await fs.promises.stat(path.join(store.shardDir(rec.placement[shard]!, rec.name, shard), SHARD_FILE), { bigint: true }));
}

/**
 * A snapshot's bytes as a stream: its head, then the rest from the file, its free pages as
 * zeros, without the ranges of `leave`.
 */
function snapshotStream({ fd, head, free }: NonNullable<ShardSnapshot['local']>, size: number, leave: number[] = []): Readable {
  return Readable.from(
    (async function* () {
      const first = withoutRanges(head.subarray(0, Math.min(head.length, size)), 0, leave);
      if (first.length) yield first;
      if (size <= head.length) return;
      if (leave.length === 0) {
        let at = head.length;
        for await (const part of fs.createReadStream('', { fd, start: head.length, end: size - 1, autoClose: false, highWaterMark: 256 * 1024 })) {
          yield zeroRanges(part as Buffer, at, free);
          at += (part as Buffer).length;
        }
        return;
      }
      // Most of the file is left out: it is read through one buffer, and only what is kept is
      // copied out (a fresh buffer per read, as above, costs ~3.5× the CPU, most of it garbage
      // collection of the file's worth of buffers).
      const block = Buffer.allocUnsafeSlow(SCAN_BYTES);
      for (let at = head.length; at < size; ) {
        const n = Math.min(block.length, size - at);
        for (let done = 0; done < n; ) {
          const { bytesRead } = await readAt(fd, block, done, n - done, at + done);
          if (bytesRead === 0) throw new Error(`the shard file ends at byte ${at + done} of its ${size}-byte snapshot`);
          done += bytesRead;
        }
        const part = zeroRanges(block.subarray(0, n), at, free);
        const kept = withoutRanges(part, at, leave);
        at += n;
        if (kept.length) yield kept === part ? Buffer.from(part) : kept;
      }
    })(),
    { objectMode: false },
  );
}

/** Documents in an environment file, by opening it read-only (which also checks it opens). */
async function countDocuments(file: string): Promise<number> {
  const db = open({ path: file, readOnly: true });
  try {
    return (db.getStats() as { entryCount: number }).entryCount;
  } finally {
    await db.close();
    await fs.promises.rm(file + LOCK_SUFFIX, { force: true });
  }
}

// ---- restore staging ---------------------------------------------------------------------------

function stagingRoot(dataDir: string, node: string, restore: OperationRef): string {
  return path.join(dataDir, node, STAGING_DIR, `${restore.backend}.${restore.id}`);
}

export function stagedShardDir(dataDir: string, restore: OperationRef, node: string, index: string, shard: number): string {
  return path.join(stagingRoot(dataDir, node, restore), index, String(shard));
}

/** Delete a restore's staging area on one node (and its `.staging` dir when left empty). */
export async function removeStaging(dataDir: string, restore: OperationRef, node: string): Promise<void> {
  await fs.promises.rm(stagingRoot(dataDir, node, restore), { recursive: true, force: true });
  await fs.promises.rmdir(path.join(dataDir, node, STAGING_DIR)).catch(() => undefined);
}

/**
 * The other nodes of `nodes` whose shards a data directory holds. A node on its own host holds
 * only its own: one started on another node's directory (or a copy of a single host's) would
 * serve its own shards as empty, and backups would leave their documents out.
 */
export async function otherNodesHeld(dataDir: string, node: string, nodes: readonly string[]): Promise<string[]> {
  const held = new Set(await fs.promises.readdir(dataDir).catch(() => [] as string[]));
  return nodes.filter((n) => n !== node && held.has(n));
}

/**
 * Remove a node's scratch areas when its process starts: snapshot copies an earlier version
 * left behind, and restore staging that was interrupted by the restart. A restore still running
 * notices: its commit asks every node to prepare, and a shard that is not staged fails it by name.
 */
export async function clearScratch(dataDir: string, node: string): Promise<void> {
  for (const dir of [SNAPSHOT_DIR, STAGING_DIR]) await fs.promises.rm(path.join(dataDir, node, dir), { recursive: true, force: true });
}

/**
 * Stage one shard at `dir`: `write` fills a directory of this attempt's own beside it (and
 * answers the documents in it), which is moved to `dir` once complete, replacing whatever an
 * earlier attempt staged there. Attempts that overlap — a run whose job's lock was lost and the
 * run that took the job over, or a worker's upload cut off while its retry streams — never
 * touch each other's bytes: a failed attempt removes only its own directory (half a shard is of
 * no use to anyone), and `dir` always holds a whole shard or nothing: what was there is first
 * moved aside, then removed (removing it in place let a late attempt leave a directory emptied
 * file by file where the commit checks and publishes the staged shard). Two attempts that finish
 * at once both succeed: when another one's whole copy arrives at `dir` between this one's moving
 * what was there aside and moving its own in, that copy stays and this one's is removed.
 */
export async function stageShard(dir: string, write: (own: string) => Promise<number>): Promise<number> {
  const own = `${dir}.${randomBytes(8).toString('hex')}`;
  await fs.promises.mkdir(own, { recursive: true });
  try {
    const docs = await write(own);
    const aside = `${own}.replaced`;
    await fs.promises.rename(dir, aside).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    try {
      await fs.promises.rename(own, dir);
    } catch (err) {
      const { code } = err as NodeJS.ErrnoException;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') {
        // What was staged goes back where it was.
        await fs.promises.rename(aside, dir).catch(() => undefined);
        throw err;
      }
      await removeShardDir(own);
    }
    await removeShardDir(aside);
    return docs;
  } catch (err) {
    await removeShardDir(own);
    throw err;
  }
}

/**
 * Remove one shard's directory: a staged one (a failed or cancelled job's), or one a restore
 * moved into place for an index that was never published.
 */
export async function removeShardDir(dir: string): Promise<void> {
  await fs.promises.rm(dir, { recursive: true, force: true });
}

/** Write a shard's environment file into its staging directory, then open it: answers the documents in it. */
export function stageShardFile(dir: string, source: Readable, signal?: AbortSignal): Promise<number> {
  return fillShardFile(dir, (file) => pipeline(source, fs.createWriteStream(file), signal ? { signal } : {}));
}

/**
 * Have a shard's environment file written into its staging directory (`fill` writes the file at
 * the path it is given), then open it: answers the documents in it.
 */
export async function fillShardFile(dir: string, fill: (file: string) => Promise<void>): Promise<number> {
  const file = path.join(dir, SHARD_FILE);
  await fill(file);
  // On the device before it can be published: a restore that answered SUCCESS survives a crash.
  await syncFile(file);
  return countDocuments(file);
}

/**
 * Write documents (source through transforms that end in an object stream of documents) into
 * a fresh environment in the staging directory, one transaction per batch; answers how many.
 */
export async function stageDocuments(dir: string, source: Readable, through: Transform[], signal?: AbortSignal): Promise<number> {
  const db = open({ path: path.join(dir, SHARD_FILE) });
  try {
    const sink = documentSink(db);
    await pipeline([source, ...through, sink], signal ? { signal } : {});
    await db.flushed;
    return sink.count();
  } finally {
    await db.close();
  }
}

function documentSink(db: RootDatabase): Writable & { count: () => number } {
  let count = 0;
  const sink = new Writable({
    objectMode: true,
    highWaterMark: BATCH,
    writev(chunks, callback) {
      const docs = chunks.map((c) => c.chunk as Document);
      db.transaction(() => {
        for (const doc of docs) db.put(doc._id, doc);
      }).then(
        () => {
          count += docs.length;
          callback();
        },
        (err: Error) => callback(err),
      );
    },
  });
  return Object.assign(sink, { count: () => count });
}

/**
 * Check that a staged shard is ready to be moved to its place: its environment opens. A shard
 * an earlier publish already moved (staging gone, the environment in place) is ready too, so a
 * commit that is retried after it started moving shards can prepare again.
 */
export async function checkStagedShard(from: string, to: string, what: string): Promise<void> {
  const staged = path.join(from, SHARD_FILE);
  if (fs.existsSync(staged)) await countDocuments(staged);
  else if (!fs.existsSync(path.join(to, SHARD_FILE))) throw new NotFoundError(`staged shard ${what} is missing`);
}

/**
 * Move one staged shard to its place. Repeatable: a shard already moved (staging gone, the
 * environment in place) is left as it is; one in neither place is an error.
 */
export async function publishStagedShard(from: string, to: string, what: string): Promise<void> {
  if (fs.existsSync(from)) {
    // Nothing registered lives at `to` (the index does not exist): clear any leftover.
    await fs.promises.rm(to, { recursive: true, force: true });
    await fs.promises.mkdir(path.dirname(to), { recursive: true });
    // The staged directory's entries, then the move, made to survive a crash (the file's bytes are already synced).
    await syncDirectory(from);
    await fs.promises.rename(from, to);
    await syncDirectory(path.dirname(to));
    await syncDirectory(path.dirname(from));
  } else if (!fs.existsSync(path.join(to, SHARD_FILE))) {
    throw new NotFoundError(`staged shard ${what} is missing`);
  }
}
