/**
 * A shard's physical snapshot (shared/store/shard-files.ts) read in place from the live file:
 * it is what LMDB's own copy writes but for the free pages, which it holds as zeros; it stays the state of the moment it was taken while
 * writes go on and free pages are reused, and releasing it lets LMDB reuse its pages again.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { open } from 'lmdb';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stageShard, takeSnapshot } from '../../shared/store/shard-files.ts';
import { Store, type IndexRecord } from '../../shared/store/store.ts';
import { makeDoc } from '../support/backups.ts';
import { tempDir } from '../support/temp.ts';

let temp: ReturnType<typeof tempDir>;
let store: Store;
let rec: IndexRecord;

const DOCS = 3000;
/** Rewrites of every document that use up the free pages an environment starts with. */
const ROUNDS = 6;

beforeEach(async () => {
  temp = tempDir();
  store = new Store({ dataDir: path.join(temp.dir, 'data'), nodes: ['node-0'] });
  rec = await store.createIndex('Snap', { shards: 1 });
  for (let n = 0; n < DOCS; n += 500) await store.putDocuments('Snap', Array.from({ length: 500 }, (_, i) => makeDoc('Snap', n + i)));
});

afterEach(async () => {
  await store.close();
  temp.cleanup();
});

/** The snapshot's bytes written to a file (through its stream), and the documents that file holds. */
async function materialise(snapshot: Awaited<ReturnType<typeof takeSnapshot>>, name: string): Promise<{ file: string; docs: Map<string, unknown> }> {
  const file = path.join(temp.dir, `${name}.mdb`);
  await pipeline(snapshot.stream(), fs.createWriteStream(file));
  const db = open({ path: file, readOnly: true });
  try {
    return { file, docs: new Map([...db.getRange({})].map(({ key, value }) => [String(key), value])) };
  } finally {
    await db.close();
  }
}

function current(): Map<string, unknown> {
  return new Map([...store.shardDb(rec, 0).getRange({})].map(({ key, value }) => [String(key), value]));
}

describe('a shard snapshot read in place', () => {
  /**
   * The snapshot against LMDB's own plain copy of the same moment: equal page for page, but
   * for the pages LMDB lists as free, which are zeros in the snapshot; answers how many those are.
   */
  async function compareWithCopy(docs: number): Promise<number> {
    const copy = path.join(temp.dir, 'lmdb-copy.mdb');
    fs.rmSync(copy, { force: true });
    await store.shardDb(rec, 0).backup(copy, false);
    const snapshot = await takeSnapshot(store, rec, 0);
    try {
      expect(snapshot.docs).toBe(docs);
      expect(snapshot.size).toBe(fs.statSync(copy).size);
      expect(snapshot.local!.head.length).toBeGreaterThan(0);
      const { file, docs: read } = await materialise(snapshot, 'in-place');
      expect(read).toEqual(current());
      const ours = fs.readFileSync(file);
      const theirs = fs.readFileSync(copy);
      const pageSize = snapshot.local!.head.length / 2;
      const free = new Set<number>();
      const ranges = snapshot.local!.free;
      for (let i = 0; i < ranges.length; i += 2) for (let at = ranges[i]!; at < ranges[i]! + ranges[i + 1]!; at += pageSize) free.add(at / pageSize);
      for (let page = 0; page < ours.length / pageSize; page++) {
        const mine = ours.subarray(page * pageSize, (page + 1) * pageSize);
        if (free.has(page)) expect(mine.every((b) => b === 0), `free page ${page} is zeros`).toBe(true);
        else expect(mine.equals(theirs.subarray(page * pageSize, (page + 1) * pageSize)), `page ${page} as LMDB copies it`).toBe(true);
      }
      return free.size;
    } finally {
      await snapshot.release();
    }
  }

  it("is what LMDB's own copy writes, with the shard's document count", async () => {
    await compareWithCopy(DOCS);
  });

  it("holds LMDB's free pages as zeros, and the environment it makes takes writes again", async () => {
    // Rewrites and deletes, one transaction at a time, leave pages free (and what they held in them).
    for (let round = 1; round <= 2; round++) {
      for (let n = 0; n < DOCS; n += 500) await store.putDocuments('Snap', Array.from({ length: 500 }, (_, i) => makeDoc('Snap', n + i, { round })));
    }
    for (let n = 0; n < DOCS; n += 3) await store.deleteDocument('Snap', makeDoc('Snap', n)._id);
    const free = await compareWithCopy(DOCS - DOCS / 3);
    expect(free).toBeGreaterThan(10);
    // The restored environment reuses its zeroed free pages for new writes like any other.
    const file = path.join(temp.dir, 'in-place.mdb');
    const db = open({ path: file });
    try {
      for (let n = 0; n < DOCS; n += 500) {
        await db.transaction(() => {
          for (let i = n; i < n + 500; i++) db.put(`new-${i}`, makeDoc('Snap', i, { round: 9 }));
        });
      }
      for (let n = 0; n < DOCS; n += 3) await db.remove(makeDoc('Snap', n + 1)._id);
      expect([...db.getRange({})].length).toBe(DOCS + DOCS / 3);
      expect(db.get('new-1234')).toEqual(makeDoc('Snap', 1234, { round: 9 }));
    } finally {
      await db.close();
    }
  });

  it('keeps every page as it is when the free-page database does not add up', async () => {
    for (let n = 0; n < DOCS; n += 3) await store.deleteDocument('Snap', makeDoc('Snap', n)._id);
    expect(await compareWithCopy(DOCS - DOCS / 3)).toBeGreaterThan(0);
    // Both meta pages claim one more leaf page of the free-page database than it has
    // (`mm_dbs[FREE_DBI].md_leaf_pages`: 16 bytes into the record, 24 into the meta, after the
    // 24-byte page header).
    const file = path.join(store.shardDir('node-0', 'Snap', 0), 'data.mdb');
    await store.close();
    const fd = fs.openSync(file, 'r+');
    try {
      const pageSize = fs.readFileSync(file).readUInt32LE(24 + 24);
      for (const meta of [0, pageSize]) {
        const at = meta + 24 + 24 + 16;
        const page = Buffer.alloc(8);
        fs.readSync(fd, page, 0, 8, at);
        page.writeBigUInt64LE(page.readBigUInt64LE(0) + 1n);
        fs.writeSync(fd, page, 0, 8, at);
      }
    } finally {
      fs.closeSync(fd);
    }
    store = new Store({ dataDir: path.join(temp.dir, 'data'), nodes: ['node-0'] });
    rec = store.listIndexes()[0]!;
    const snapshot = await takeSnapshot(store, rec, 0);
    try {
      expect(snapshot.local!.free).toEqual([]);
      const copy = path.join(temp.dir, 'lmdb-copy.mdb');
      fs.rmSync(copy, { force: true });
      await store.shardDb(rec, 0).backup(copy, false);
      const { file: written, docs } = await materialise(snapshot, 'untrusted');
      expect(fs.readFileSync(written).equals(fs.readFileSync(copy))).toBe(true);
      expect(docs).toEqual(current());
    } finally {
      await snapshot.release();
    }
  });

  it('stays the state it was taken in while every document is rewritten and half are deleted', async () => {
    const before = current();
    const snapshot = await takeSnapshot(store, rec, 0);
    try {
      // Rewritten again and again, then half deleted: once the free pages from before the
      // snapshot are used up, the pages it holds would be reused if it did not hold them.
      for (let round = 1; round <= ROUNDS; round++) {
        for (let n = 0; n < DOCS; n += 500) await store.putDocuments('Snap', Array.from({ length: 500 }, (_, i) => makeDoc('Snap', n + i, { round })));
      }
      for (let n = 0; n < DOCS; n += 2) await store.deleteDocument('Snap', makeDoc('Snap', n)._id);
      expect(current().size).toBe(DOCS / 2);
      const { docs } = await materialise(snapshot, 'pinned');
      expect(docs).toEqual(before);
    } finally {
      await snapshot.release();
    }
  });

  it("is taken while this process's own batches and transactions are being written, without either waiting on the other for good", async () => {
    const db = store.shardDb(rec, 0);
    for (let round = 1; round <= 10; round++) {
      const writes = Array.from({ length: 4 }, (_, k) => store.putDocuments('Snap', Array.from({ length: 500 }, (_, i) => makeDoc('Snap', k * 500 + i, { round }))));
      const transaction = db.transaction(() => {
        for (let i = 0; i < 100; i++) db.put(`extra-${i}`, { round });
      });
      const snapshot = await takeSnapshot(store, rec, 0);
      await Promise.all([...writes, transaction]);
      await snapshot.release();
      // One moment's state: the transaction's 100 new documents (new in the first round) are in
      // it whole or not at all.
      expect([DOCS, DOCS + 100]).toContain(snapshot.docs);
    }
  });

  it('stays readable, and releases, when its index is deleted meanwhile', async () => {
    const before = current();
    const snapshot = await takeSnapshot(store, rec, 0);
    await store.deleteIndex('Snap');
    expect(fs.existsSync(path.join(store.shardDir('node-0', 'Snap', 0), 'data.mdb'))).toBe(false);
    const { docs } = await materialise(snapshot, 'deleted');
    expect(docs).toEqual(before);
    await snapshot.release();
  });

  it('tells which pages hold what an earlier snapshot of the same file held, and a recreated shard is another file', async () => {
    // Large documents too: their values lie on overflow pages, whose header stands for the run.
    await store.putDocuments('Snap', Array.from({ length: 40 }, (_, i) => makeDoc('Snap', DOCS + i, { big: 'x'.repeat(9000 + i) })));
    const first = await takeSnapshot(store, rec, 0);
    const { file: before } = await materialise(first, 'first');
    await first.release();
    // 1 % of the documents rewritten (some large ones among them), 0.5 % deleted and 1 % added, a few per transaction.
    for (let n = 0; n < DOCS; n += 100) await store.putDocuments('Snap', [makeDoc('Snap', n, { round: 1 }), makeDoc('Snap', DOCS + (n % 40), { big: 'y'.repeat(9500) })]);
    for (let n = 1; n < DOCS; n += 200) await store.deleteDocument('Snap', makeDoc('Snap', n)._id);
    for (let n = 0; n < DOCS / 100; n += 3) await store.putDocuments('Snap', Array.from({ length: 3 }, (_, i) => makeDoc('Snap', 2 * DOCS + n + i)));
    const second = await takeSnapshot(store, rec, 0);
    try {
      expect(second.origin!.lineage).toBe(first.origin!.lineage);
      expect(BigInt(second.origin!.generation)).toBeGreaterThan(BigInt(first.origin!.generation));
      const unchanged = await second.local!.unchangedSince(first.origin!.generation);
      const { file: after } = await materialise(second, 'second');
      const a = fs.readFileSync(before);
      const b = fs.readFileSync(after);
      const pageSize = second.local!.head.length / 2;
      let pages = 0;
      for (let i = 0; i < unchanged.length; i += 2) {
        for (let at = unchanged[i]!; at < unchanged[i]! + unchanged[i + 1]!; at += pageSize, pages++) {
          expect(b.subarray(at, at + pageSize).equals(a.subarray(at, at + pageSize)), `page ${at / pageSize} is unchanged`).toBe(true);
        }
      }
      // Most pages are told unchanged; the rest hold the changes (not one of them could be told so).
      const total = b.length / pageSize;
      expect(pages / total).toBeGreaterThan(0.5);
      let differing = 0;
      for (let at = 0; at < b.length; at += pageSize) if (!b.subarray(at, at + pageSize).equals(a.subarray(at, at + pageSize))) differing++;
      expect(differing).toBeGreaterThan(0);
      expect(pages + differing).toBeLessThanOrEqual(total);
      // Nothing is told unchanged since a transaction newer than the snapshot's, or one that is not a number.
      expect(await second.local!.unchangedSince(String(BigInt(second.origin!.generation) + 1n))).toEqual([]);
      expect(await second.local!.unchangedSince('soon')).toEqual([]);
    } finally {
      await second.release();
    }
    await store.deleteIndex('Snap');
    rec = await store.createIndex('Snap', { shards: 1 });
    await store.putDocuments('Snap', [makeDoc('Snap', 1)]);
    const recreated = await takeSnapshot(store, rec, 0);
    await recreated.release();
    expect(recreated.origin!.lineage).not.toBe(first.origin!.lineage);
  });

  it('holds its pages until released, then lets LMDB reuse them', async () => {
    const lastPage = () => (store.shardDb(rec, 0).getStats() as { lastPageNumber: number }).lastPageNumber;
    let round = 0;
    const rewrite = async (rounds: number) => {
      for (const end = round + rounds; round < end; ) {
        round++;
        for (let n = 0; n < DOCS; n += 500) await store.putDocuments('Snap', Array.from({ length: 500 }, (_, i) => makeDoc('Snap', n + i, { round })));
      }
      return lastPage();
    };
    const start = await rewrite(ROUNDS);
    const held = await takeSnapshot(store, rec, 0);
    const whileHeld = await rewrite(ROUNDS);
    await held.release();
    const released = await rewrite(ROUNDS);
    // Every rewrite needs new pages while the snapshot holds the old ones; once it lets them
    // go, rewrites reuse the pages freed meanwhile.
    expect(whileHeld).toBeGreaterThan(start);
    expect(await rewrite(ROUNDS)).toBe(released);
  });
});

describe("a shard's staging", () => {
  it('takes two attempts of the same shard that finish at once: both succeed, one whole copy is staged, nothing else is left', async () => {
    // A restore's shard job whose first run lost its lock while the run that took it over
    // streams the same shard: each stages beside the shard's place and moves its copy there.
    const tmp = tempDir('shardvault-staging-');
    try {
      const dir = path.join(tmp.dir, 'filesystem.both', 'Alpha', '0');
      const attempt = (bytes: string) => (own: string) => fs.promises.writeFile(path.join(own, 'data.mdb'), bytes).then(() => bytes.length);
      for (let i = 0; i < 20; i++) {
        const copies = [`copy a of round ${i}`, `copy b of round ${i}`];
        const outcomes = await Promise.allSettled(copies.map((c) => stageShard(dir, attempt(c))));
        expect(outcomes.map((o) => (o.status === 'rejected' ? String(o.reason) : 'staged'))).toEqual(['staged', 'staged']);
        expect(copies).toContain(fs.readFileSync(path.join(dir, 'data.mdb'), 'utf8'));
        expect(fs.readdirSync(path.dirname(dir))).toEqual(['0']);
      }
    } finally {
      tmp.cleanup();
    }
  });

  it('never shows a partly removed shard at its place while a late attempt replaces it', async () => {
    // The commit checks and publishes whatever is staged while a run that lost its job's lock
    // may still finish: the staged place must hold a whole copy (or, for an instant, nothing).
    const tmp = tempDir('shardvault-staging-');
    try {
      const dir = path.join(tmp.dir, 'filesystem.late', 'Alpha', '0');
      const FILES = 400;
      const attempt = (tag: string) => async (own: string) => {
        for (let f = 0; f < FILES; f++) await fs.promises.writeFile(path.join(own, `part-${f}`), tag);
        return FILES;
      };
      await stageShard(dir, attempt('first'));
      const seen: number[] = [];
      let replaced = false;
      const watching = (async () => {
        while (!replaced) {
          const entries = await fs.promises.readdir(dir).catch(() => undefined);
          if (entries) seen.push(entries.length);
        }
      })();
      await stageShard(dir, attempt('late'));
      replaced = true;
      await watching;
      expect(seen.length).toBeGreaterThan(0);
      expect(seen.filter((n) => n !== FILES)).toEqual([]);
      expect(fs.readFileSync(path.join(dir, 'part-0'), 'utf8')).toBe('late');
      expect(fs.readdirSync(path.dirname(dir))).toEqual(['0']);
    } finally {
      tmp.cleanup();
    }
  });
});
