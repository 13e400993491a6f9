/**
 * `snapshot-shard`: one shard, as a physical copy of its LMDB environment, into the backend's
 * repository (format 2, docs/formats.md §3).
 *
 * The copy is taken under one read transaction by the node that holds the shard (ShardHost,
 * shared/cluster/shard-host.ts: this host's DATA_DIR, when the job starts; or the node over
 * HTTP, once the repository has found the latest snapshot of the shard's file): writes that go
 * on meanwhile are not in it, and no document is decoded or re-encoded. The repository reads
 * the copy under the byte-rate limit (in place when it is a file on this host, else as the
 * node's stream), stores only the chunks it does not have yet (every backup is incremental
 * against everything stored before it in that location) and writes the shard's snapshot object
 * at `<id>/<node>/<index>/<shard>`. The pages LMDB says are unchanged since the location's
 * latest snapshot of the same file (shared/store/shard-files.ts, `unchangedPages`) are not named
 * again, and a node on another host does not send them (but a sample, to check its account). The AbortSignal (cancel, shutdown deadline)
 * reaches the repository's writes, which leave nothing a snapshot names half-written; the copy is
 * removed whatever happens. A worker runs one transfer per core at once (TransferSlots,
 * worker/deps.ts); the other jobs it took wait for a slot.
 */
import { addAbortSignal } from 'node:stream';
import { UnrecoverableError } from 'bullmq';
import { CancelledError } from '../shared/errors.ts';
import { globalManifestKey } from '../shared/backups/manifest.ts';
import type { ProcessorOf } from '../shared/jobs/catalog.ts';
import type { SnapshotBase } from '../shared/cluster/shard-host.ts';
import { repositoryOf, type SnapshotSource, type WriteOptions } from '../shared/repository/repository.ts';
import type { ShardSnapshot } from '../shared/store/shard-files.ts';
import { assertWanted, ShardProgress, StoppedError, type JobDeps } from './deps.ts';

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
    const backend = deps.backends(p.op.backend, p.overrides);
    // Run again after the backup was committed (Redis lost the end of the first run): its
    // objects are final, and a new snapshot would no longer match its manifests.
    if (await backend.exists(globalManifestKey(p.op.id))) throw new StoppedError('gone', `backup ${p.op.id} is already committed`);
    const repo = repositoryOf(backend);
    const progress = new ShardProgress(job, deps.ops, p.op, shardName);

    return deps.transfers.run(async () => {
      if (signal.aborted) throw new CancelledError(`snapshot of ${p.index}/${p.shard} was cancelled before it started`);
      // The copy the backup is of: on this host, taken now and read in place by the repository's
      // threads; from a node on another host, asked for (as a stream) once the repository knows
      // its base, and again whole if the node's account of it does not hold.
      let copy: ShardSnapshot | undefined;
      const take = async (base?: SnapshotBase): Promise<ShardSnapshot> => {
        const previous = copy;
        copy = undefined;
        await previous?.release();
        copy = await deps.shards.snapshot(rec, p.shard, signal, base);
        return copy;
      };
      try {
        let source: SnapshotSource;
        let base: Pick<WriteOptions, 'origin' | 'unchanged'> = {};
        const lineageOf = deps.shards.lineage?.bind(deps.shards);
        if (lineageOf) {
          const lineage = await lineageOf(rec, p.shard, signal);
          source = {
            ...(lineage ? { lineage } : {}),
            open: async (asked) => {
              const taken = await take(asked && lineage ? { lineage, ...asked } : undefined);
              return { stream: addAbortSignal(signal, taken.stream()), size: taken.size, unchanged: taken.unchanged ?? [], ...(taken.origin ? { origin: taken.origin } : {}) };
            },
          };
        } else {
          const { local, size, origin } = await take();
          if (!local) throw new Error(`the snapshot of ${shardName} is not a file on this host`);
          source = { file: local.fd, size, head: local.head, zeros: local.free };
          if (origin) base = { origin, unchanged: local.unchangedSince };
        }
        const written = await repo
          .write(source, p.key, {
            level: p.compression,
            signal,
            ...base,
            bytesPerSecond: deps.config.workerMaxBytesPerSecond,
            onProgress: (read, stored) => progress.update(copy ? Math.floor((copy.docs * read) / Math.max(1, copy.size)) : 0, stored),
          })
          .catch((err: unknown) => {
            throw signal.aborted ? new CancelledError(`snapshot of ${p.index}/${p.shard} was cancelled`, { cause: err }) : err;
          });
        const docs = copy!.docs;
        const result = {
          node: p.node,
          index: p.index,
          shard: p.shard,
          key: p.key,
          docs,
          bytes: written.stored,
          sha256: written.snapshotSha256,
          file: { size: written.size, sha256: written.sha256, chunks: written.chunks, newChunks: written.newChunks },
        };
        await progress.done(result.docs, result.bytes);
        deps.logger.debug({ job: job.id, ...result, unchangedChunks: written.unchangedChunks }, 'shard snapshot written');
        return result;
      } finally {
        await copy?.release();
      }
    });
  };
}
