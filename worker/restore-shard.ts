/**
 * `restore-shard`: one shard object, read from the backend and verified, into the staging area
 * of its target node (`DATA_DIR/<node>/.staging/<restoreKey>/<index>/<shard>/`).
 *
 * The object streams through a meter (sha256 of the stored bytes), decompression and the docs
 * dump decoder (which checks the dump's own trailer checksum) into a fresh LMDB environment in
 * batches; nothing becomes visible here — commit-restore publishes staged shards, or deletes
 * them. A sha256 different from the one in the per-node manifest fails the job with an
 * IntegrityError naming the object and both checksums (no retry: the bytes will not change).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UnrecoverableError } from 'bullmq';
import { open, type RootDatabase } from 'lmdb';
import { stagedShardDir } from '../shared/backups/staging.ts';
import { CancelledError, IntegrityError, NotFoundError } from '../shared/errors.ts';
import { decompressStream } from '../shared/formats/compression.ts';
import { createDumpDecoder } from '../shared/formats/dump-codec.ts';
import { createMeter, sha256OfStream } from '../shared/formats/hashing.ts';
import { throttleStream } from '../shared/formats/throttle.ts';
import type { ProcessorOf } from '../shared/jobs/catalog.ts';
import type { Document } from '../shared/store/schema.ts';
import { assertWanted, ShardProgress, type JobDeps } from './deps.ts';

/** Documents written to the staging database per LMDB transaction. */
const BATCH = 1000;

/** A Writable that stores documents into an LMDB database, one transaction per batch. */
function lmdbSink(db: RootDatabase, onBatch: (count: number) => void): Writable & { count: () => number } {
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
          onBatch(count);
          callback();
        },
        (err: Error) => callback(err),
      );
    },
  });
  return Object.assign(sink, { count: () => count });
}

export function restoreShard(deps: JobDeps): ProcessorOf<'restore-shard'> {
  return async (job, _token, signal) => {
    const p = job.data;
    const shardName = `${p.node}.${p.index}.${p.shard}`;
    await assertWanted(deps.ops, p.op);
    await deps.ops.advance(p.op, 'TRANSFERRING');

    const backend = deps.backends(p.op.backend, p.overrides);
    const where = backend.locate(p.key);
    const dir = stagedShardDir(deps.config.dataDir, p.op, p.node, p.index, p.shard);
    // A retried job starts over from an empty staging directory.
    await fs.promises.rm(dir, { recursive: true, force: true });
    await fs.promises.mkdir(dir, { recursive: true });
    const progress = new ShardProgress(job, deps.ops, p.op, shardName);
    const meter = createMeter();
    const db = open({ path: path.join(dir, 'data.mdb') });
    let ok = false;
    try {
      const sink = lmdbSink(db, (count) => progress.update(count, meter.bytes));
      try {
        const source = await backend.read(p.key, { signal }).catch((err: unknown) => {
          // The manifest lists this object: its absence is damage to the backup, not a bad request.
          if (err instanceof NotFoundError) throw missingError(where, p.sha256);
          throw err;
        });
        const decoder = createDumpDecoder({ expectKind: 'docs' });
        await pipeline(source, throttleStream(deps.config.workerMaxBytesPerSecond), meter, decompressStream(), decoder, sink, { signal });
      } catch (err) {
        if (signal.aborted || err instanceof UnrecoverableError) throw err;
        // The object may be damaged: say so in terms of its checksum when it is.
        const actual = await sha256OfStream(await backend.read(p.key, { signal })).catch(() => undefined);
        if (actual !== undefined && actual !== p.sha256) throw checksumError(where, p.sha256, actual, err);
        throw err;
      }
      const actual = meter.digest();
      if (actual !== p.sha256) throw checksumError(where, p.sha256, actual);
      if (sink.count() !== p.docs) {
        throw new UnrecoverableError(`${where} holds ${sink.count()} documents; the backup manifest says ${p.docs}`);
      }
      await db.flushed;
      ok = true;
      const result = { node: p.node, index: p.index, shard: p.shard, key: p.key, docs: sink.count(), bytes: meter.bytes, sha256: actual };
      await progress.done(result.docs, result.bytes);
      return result;
    } catch (err) {
      if (signal.aborted && !(err instanceof CancelledError)) throw new CancelledError(`restoring ${where} was cancelled`, { cause: err });
      throw err;
    } finally {
      await db.close();
      if (!ok) await fs.promises.rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  };
}

function checksumError(where: string, expected: string, actual: string, cause?: unknown): UnrecoverableError {
  const detail = cause instanceof Error ? ` (${cause.message})` : '';
  const err = new IntegrityError(`checksum mismatch for ${where}: expected sha256 ${expected}, got ${actual}${detail}`);
  return new UnrecoverableError(err.message);
}

function missingError(where: string, expected: string): UnrecoverableError {
  const err = new IntegrityError(`${where} is missing: the backup manifest lists it with sha256 ${expected}`);
  return new UnrecoverableError(err.message);
}
