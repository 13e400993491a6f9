/**
 * `restore-shard`: one shard of a backup, read from the backend and verified, streamed into
 * the staging area of its target node (ShardHost, shared/cluster/shard-host.ts: this host's
 * DATA_DIR, or the node over HTTP). Nothing becomes visible here: commit-restore publishes
 * staged shards, or deletes them. The checking (chunk hashes, checksums, decompression) is
 * done here, in the worker; the node only writes what it is sent and opens it.
 *
 * - Format 2 (a repository snapshot): the shard's environment file is rebuilt from its chunks,
 *   each checked against its SHA-256 and the whole file against the snapshot's, written to
 *   staging (in place by the repository's threads when the staging is on this host) and opened
 *   to check it holds the documents the manifest says.
 * - Format 1 (one dump object, written by versions before the repository): the object streams
 *   through a meter (sha256 of the stored bytes) and decompression to the node, whose docs dump
 *   decoder (which checks the dump's own trailer) writes a fresh environment in batches.
 *
 * Damage — a checksum that differs from the manifest's, a missing or corrupt chunk, a missing
 * object — fails the job with an IntegrityError naming what is damaged (no retry: the bytes
 * will not change).
 */
import { pipeline, Transform, type Readable } from 'node:stream';
import { UnrecoverableError } from 'bullmq';
import type { Backend } from '../shared/backends/backend.ts';
import { CancelledError, IntegrityError, NotFoundError } from '../shared/errors.ts';
import { decompressStream } from '../shared/formats/compression.ts';
import { createMeter, sha256OfStream } from '../shared/formats/hashing.ts';
import { throttleStream } from '../shared/formats/throttle.ts';
import type { PayloadOf, ProcessorOf } from '../shared/jobs/catalog.ts';
import { describeShard } from '../shared/jobs/operation.ts';
import type { StagedShardRef } from '../shared/cluster/shard-host.ts';
import { repositoryOf } from '../shared/repository/repository.ts';
import { assertWanted, ShardProgress, type JobDeps } from './deps.ts';

type Payload = PayloadOf<'restore-shard'>;

export function restoreShard(deps: JobDeps): ProcessorOf<'restore-shard'> {
  return async (job, _token, signal) => {
    const p = job.data;
    await assertWanted(deps.ops, p.op);
    await deps.ops.advance(p.op, 'TRANSFERRING');

    const backend = deps.backends(p.op.backend, p.overrides);
    // A retried job starts over: staging a shard replaces what an earlier attempt left, once
    // whole. What a run stages is its own until then, so a run that fails (or was stopped
    // because its job's lock was lost) leaves nothing, and never removes another run's; what a
    // restore that fails leaves staged, commit-restore removes.
    const ref: StagedShardRef = { restore: p.op, node: p.node, index: p.index, shard: p.shard };
    const progress = new ShardProgress(job, deps.ops, p.op, `${p.node}.${p.index}.${p.shard}`);
    try {
      const { docs, bytes } = await deps.transfers.run(() =>
        p.file ? fromSnapshot(deps, backend, p, ref, progress, signal) : fromDump(deps, backend, p, ref, progress, signal),
      );
      if (docs !== p.docs) {
        throw new UnrecoverableError(`${backend.locate(p.key)} holds ${docs} documents; the backup manifest says ${p.docs}`);
      }
      const result = { node: p.node, index: p.index, shard: p.shard, key: p.key, docs, bytes, sha256: p.sha256 };
      await progress.done(result.docs, result.bytes);
      return result;
    } catch (err) {
      if (signal.aborted && !(err instanceof CancelledError)) throw new CancelledError(`restoring ${backend.locate(p.key)} was cancelled`, { cause: err });
      if (err instanceof IntegrityError) throw new UnrecoverableError(err.message);
      throw err;
    }
  };
}

/**
 * Format 2: the environment file, rebuilt chunk by chunk from the repository — in place by the
 * repository's threads when the target node's staging is on this host, else streamed to it.
 */
async function fromSnapshot(deps: JobDeps, backend: Backend, p: Payload, ref: StagedShardRef, progress: ShardProgress, signal: AbortSignal): Promise<{ docs: number; bytes: number }> {
  const where = `${describeShard({ node: p.sourceNode, index: p.index, shard: p.shard })} in backup ${p.op.id}`;
  const repo = repositoryOf(backend);
  // The manifest lists this snapshot: its absence is damage to the backup, not a bad request.
  const missing = (err: unknown): never => {
    if (err instanceof NotFoundError) throw new IntegrityError(`${backend.locate(p.key)} is missing: the backup manifest lists it with sha256 ${p.sha256}`);
    throw err;
  };
  let bytes = 0;
  const report = byteProgress(progress, p.docs, p.file!.size);
  const rebuilt = (n: number) => report((bytes = n));
  if (deps.shards.stageFile) {
    const options = { sha256: p.sha256, signal, bytesPerSecond: deps.config.workerMaxBytesPerSecond, onProgress: rebuilt };
    const docs = await deps.shards.stageFile(ref, (file) => repo.rebuild(p.key, where, { ...options, file }).then(() => undefined, missing));
    return { docs, bytes };
  }
  const { stream } = await repo.open(p.key, where, { sha256: p.sha256, signal }).catch(missing);
  const docs = await deps.shards.stage(ref, 'file', chain(stream, throttleStream(deps.config.workerMaxBytesPerSecond), countingProgress(rebuilt)), signal);
  return { docs, bytes };
}

/** Format 1: one compressed dump object, decoded into documents. */
async function fromDump(deps: JobDeps, backend: Backend, p: Payload, ref: StagedShardRef, progress: ShardProgress, signal: AbortSignal): Promise<{ docs: number; bytes: number }> {
  const where = backend.locate(p.key);
  const meter = createMeter();
  let docs: number;
  try {
    const source = await backend.read(p.key, { signal }).catch((err: unknown) => {
      if (err instanceof NotFoundError) throw new IntegrityError(`${where} is missing: the backup manifest lists it with sha256 ${p.sha256}`);
      throw err;
    });
    const through = [throttleStream(deps.config.workerMaxBytesPerSecond), meter, countingProgress(byteProgress(progress, p.docs, p.bytes)), decompressStream()];
    docs = await deps.shards.stage(ref, 'dump', chain(source, ...through), signal);
  } catch (err) {
    if (signal.aborted || err instanceof UnrecoverableError || err instanceof IntegrityError) throw err;
    // The object may be damaged: say so in terms of its checksum when it is.
    const actual = await sha256OfStream(await backend.read(p.key, { signal })).catch(() => undefined);
    if (actual !== undefined && actual !== p.sha256) throw checksumError(where, p.sha256, actual, err);
    throw err;
  }
  const actual = meter.digest();
  if (actual !== p.sha256) throw checksumError(where, p.sha256, actual);
  return { docs, bytes: meter.bytes };
}

/**
 * Progress by bytes: the documents estimated from the share of `total` bytes done (the node
 * counts the documents only at the end).
 */
function byteProgress(progress: ShardProgress, docs: number, total: number): (bytes: number) => void {
  return (bytes) => progress.update(Math.floor((docs * Math.min(bytes, total)) / Math.max(1, total)), bytes);
}

/** Bytes passing, counted as they pass. */
function countingProgress(onBytes: (bytes: number) => void): Transform {
  let bytes = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      onBytes((bytes += chunk.length));
      done(null, chunk);
    },
  });
}

/** `source` through `through`, as one stream to hand on; an error anywhere destroys the stream handed on with it. */
function chain(source: Readable, ...through: Transform[]): Readable {
  return pipeline([source, ...through], () => undefined) as unknown as Readable;
}

function checksumError(where: string, expected: string, actual: string, cause?: unknown): IntegrityError {
  const detail = cause instanceof Error ? ` (${cause.message})` : '';
  return new IntegrityError(`checksum mismatch for ${where}: expected sha256 ${expected}, got ${actual}${detail}`);
}
