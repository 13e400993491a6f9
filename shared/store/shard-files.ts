/**
 * Shard files: how a shard lives on disk (`DATA_DIR/<node>/<index>/<shard>/data.mdb`, one LMDB
 * environment), for everything that moves whole shards — a physical snapshot of a shard for
 * a backup, the staging of a restored shard, and moving staged shards into place. Nothing
 * outside `shared/store` opens an LMDB environment or knows its file names.
 *
 * - Snapshot: a plain (not compacting) copy of the environment taken under one read
 *   transaction (lmdb's `backup()`, i.e. `mdb_env_copy2`) while writes go on, into a scratch
 *   file in `DATA_DIR/<node>/.snapshots/` (same filesystem, so the copy runs at disk speed),
 *   counted by opening it, streamed, then removed. A plain copy keeps every unchanged page at
 *   its offset, which is what makes page-sized chunks deduplicate (docs/chunking.md).
 * - Staging: `DATA_DIR/<node>/.staging/<backend>.<backup id>/<index>/<shard>/`. Index names
 *   never start with `.`, so neither scratch area can clash with an index. A restore writes the
 *   environment there (the file itself, or documents in batches for the dump format of version
 *   1), opens it to check it, and the commit renames it into place.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { open, type RootDatabase } from 'lmdb';
import { NotFoundError } from '../errors.ts';
import type { OperationRef } from '../jobs/operation.ts';
import type { Document } from './schema.ts';
import type { IndexRecord, Store } from './store.ts';

const SHARD_FILE = 'data.mdb';
const LOCK_SUFFIX = '-lock';
const SNAPSHOT_DIR = '.snapshots';
const STAGING_DIR = '.staging';
/** Documents written to a staging environment per LMDB transaction. */
const BATCH = 1000;

export interface ShardSnapshot {
  /** Bytes of the copy, and the documents in it. */
  size: number;
  docs: number;
  /** The copy's bytes; read it once. */
  stream(): Readable;
  /**
   * The copy as a file on this host, when it is one: read in place (by any thread of this
   * process) until it is released, instead of through stream().
   */
  file?: string;
  /** Remove the copy. */
  release(): Promise<void>;
}

/** A consistent physical copy of one shard, taken now. */
export async function takeSnapshot(store: Store, rec: IndexRecord, shard: number): Promise<ShardSnapshot> {
  const db = store.shardDb(rec, shard);
  const dir = path.join(store.dataDir, rec.placement[shard]!, SNAPSHOT_DIR);
  await fs.promises.mkdir(dir, { recursive: true });
  const file = path.join(dir, `${rec.name}.${shard}.${randomUUID()}.mdb`);
  const release = async () => {
    await fs.promises.rm(file, { force: true });
    await fs.promises.rm(file + LOCK_SUFFIX, { force: true });
  };
  try {
    await db.backup(file, false);
    const docs = await countDocuments(file);
    const { size } = await fs.promises.stat(file);
    return { size, docs, file, stream: () => fs.createReadStream(file, { highWaterMark: 256 * 1024 }), release };
  } catch (err) {
    await release();
    throw err;
  }
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
 * Remove a node's scratch areas when its process starts: snapshot copies nobody streams any
 * more, and restore staging that was interrupted by the restart. A restore still running
 * notices: its commit asks every node to prepare, and a shard that is not staged fails it by name.
 */
export async function clearScratch(dataDir: string, node: string): Promise<void> {
  for (const dir of [SNAPSHOT_DIR, STAGING_DIR]) await fs.promises.rm(path.join(dataDir, node, dir), { recursive: true, force: true });
}

/** An empty staging directory for one shard (a retried job starts over). */
export async function clearStagedShard(dir: string): Promise<void> {
  await removeShardDir(dir);
  await fs.promises.mkdir(dir, { recursive: true });
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
    await fs.promises.rename(from, to);
  } else if (!fs.existsSync(path.join(to, SHARD_FILE))) {
    throw new NotFoundError(`staged shard ${what} is missing`);
  }
}
