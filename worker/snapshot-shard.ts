/**
 * `snapshot-shard`: one shard, as a physical copy of its LMDB environment, into the backend's
 * repository (format 2, docs/formats.md §3).
 *
 * The copy is taken under one read transaction when the job starts, by the node that holds the
 * shard (ShardHost, shared/cluster/shard-host.ts: this host's DATA_DIR, or the node over HTTP):
 * writes that go on meanwhile are not in it, and no document is decoded or re-encoded. The
 * repository reads the copy under the byte-rate limit (in place when it is a file on this host,
 * else as the node's stream), stores only the chunks it does not have yet (every backup is
 * incremental against everything stored before it in that location) and writes the shard's
 * snapshot object at `<id>/<node>/<index>/<shard>`. When the shard is on this host, the pages
 * LMDB says are unchanged since the location's latest snapshot of the same file are not named
 * again (shared/store/shard-files.ts, `unchangedPages`). The AbortSignal (cancel, shutdown deadline)
 * reaches the repository's writes, which leave nothing a snapshot names half-written; the copy is
 * removed whatever happens. A worker runs one transfer per core at once (TransferSlots,
 * worker/deps.ts); the other jobs it took wait for a slot.
 */
import { addAbortSignal, Readable } from 'node:stream';
import { UnrecoverableError } from 'bullmq';
import { CancelledError } from '../shared/errors.ts';
import type { ProcessorOf } from '../shared/jobs/catalog.ts';
import { repositoryOf } from '../shared/repository/repository.ts';
import { assertWanted, ShardProgress, type JobDeps } from './deps.ts';

export function snapshotShard(deps: JobDeps): ProcessorOf<'snapshot-shard'> {
  return async (job, _token, signal) => {
    const p = job.data;
    const shardName = `${p.node}.${p.index}.${p.shard}`;
    await assertWanted(deps.ops, p.op);
    await deps.ops.advance(p.op, 'TRANSFERRING');

    const rec = await deps.catalog.getIndex(p.index);
    if (!rec || rec.uid !== p.uid) {
      throw new UnrecoverableError(`index ${p.index} was deleted or recreated while it was being backed up`);
    }
    if (rec.placement[p.shard] !== p.node) {
      throw new UnrecoverableError(`shard ${p.index}/${p.shard} is not on node ${p.node} any more: the index was moved while it was being backed up`);
    }
    const repo = repositoryOf(deps.backends(p.op.backend, p.overrides));
    const progress = new ShardProgress(job, deps.ops, p.op, shardName);

    return deps.transfers.run(async () => {
      if (signal.aborted) throw new CancelledError(`snapshot of ${p.index}/${p.shard} was cancelled before it started`);
      const copy = await deps.shards.snapshot(rec, p.shard, signal);
      try {
        // A snapshot on this host is read in place by the repository's threads; one from a node
        // on another host arrives as a stream.
        const source = copy.local ? { file: copy.local.fd, size: copy.size, head: copy.local.head, zeros: copy.local.free } : addAbortSignal(signal, copy.stream());
        const written = await repo
          .write(source, p.key, {
            level: p.compression,
            signal,
            ...(copy.origin ? { origin: copy.origin } : {}),
            ...(copy.local ? { unchanged: copy.local.unchangedSince } : {}),
            bytesPerSecond: deps.config.workerMaxBytesPerSecond,
            onProgress: (read, stored) => progress.update(Math.floor((copy.docs * read) / Math.max(1, copy.size)), stored),
          })
          .catch((err: unknown) => {
            if (source instanceof Readable) source.destroy();
            throw signal.aborted ? new CancelledError(`snapshot of ${p.index}/${p.shard} was cancelled`, { cause: err }) : err;
          });
        const result = {
          node: p.node,
          index: p.index,
          shard: p.shard,
          key: p.key,
          docs: copy.docs,
          bytes: written.stored,
          sha256: written.snapshotSha256,
          file: { size: written.size, sha256: written.sha256, chunks: written.chunks, newChunks: written.newChunks },
        };
        await progress.done(result.docs, result.bytes);
        deps.logger.debug({ job: job.id, ...result, unchangedChunks: written.unchangedChunks }, 'shard snapshot written');
        return result;
      } finally {
        await copy.release();
      }
    });
  };
}
