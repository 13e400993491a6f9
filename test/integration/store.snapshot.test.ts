/**
 * A shard's physical snapshot (shared/store/shard-files.ts) read in place from the live file:
 * it is what LMDB's own copy writes, it stays the state of the moment it was taken while
 * writes go on and free pages are reused, and releasing it lets LMDB reuse its pages again.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { open } from 'lmdb';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { takeSnapshot } from '../../shared/store/shard-files.ts';
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
  it("is byte for byte what LMDB's own copy writes, with the shard's document count", async () => {
    const copy = path.join(temp.dir, 'lmdb-copy.mdb');
    await store.shardDb(rec, 0).backup(copy, false);
    const snapshot = await takeSnapshot(store, rec, 0);
    try {
      expect(snapshot.docs).toBe(DOCS);
      expect(snapshot.size).toBe(fs.statSync(copy).size);
      expect(snapshot.local!.head.length).toBeGreaterThan(0);
      const { file, docs } = await materialise(snapshot, 'in-place');
      expect(fs.readFileSync(file).equals(fs.readFileSync(copy))).toBe(true);
      expect(docs.size).toBe(DOCS);
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
