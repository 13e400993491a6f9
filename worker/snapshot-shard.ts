/**
 * `snapshot-shard`: one shard, from one LMDB read transaction, to one backend object.
 *
 * The read transaction is a consistent snapshot of the shard taken when the job starts;
 * writes that go on meanwhile are not seen, and no document is ever half-read. Documents
 * flow lazily, with backpressure, through the docs dump encoder (docs/formats.md §2), compression at
 * the backup's level and a meter (sha256 + byte count) into backend.write — the shard is
 * never held in memory. The AbortSignal (cancel, shutdown deadline) reaches backend.write and
 * the source, which tears the whole pipeline down; the backend leaves no partial object.
 */
import { Readable, pipeline } from 'node:stream';
import { UnrecoverableError } from 'bullmq';
import { CancelledError } from '../shared/errors.ts';
import { compressStream } from '../shared/formats/compression.ts';
import { createDumpEncoder } from '../shared/formats/dump-codec.ts';
import { createMeter } from '../shared/formats/hashing.ts';
import { throttleStream } from '../shared/formats/throttle.ts';
import type { ProcessorOf } from '../shared/jobs/catalog.ts';
import type { Document } from '../shared/store/schema.ts';
import { assertWanted, ShardProgress, type JobDeps } from './deps.ts';

export function snapshotShard(deps: JobDeps): ProcessorOf<'snapshot-shard'> {
  return async (job, _token, signal) => {
    const p = job.data;
    const shardName = `${p.node}.${p.index}.${p.shard}`;
    await assertWanted(deps.ops, p.op);
    await deps.ops.advance(p.op, 'TRANSFERRING');

    const rec = deps.store.getIndex(p.index);
    if (!rec || rec.uid !== p.uid) {
      throw new UnrecoverableError(`index ${p.index} was deleted or recreated while it was being backed up`);
    }
    if (rec.placement[p.shard] !== p.node) {
      throw new UnrecoverableError(`shard ${p.index}/${p.shard} is not on node ${p.node} any more: the index was moved while it was being backed up`);
    }
    const backend = deps.backends(p.op.backend, p.overrides);
    const db = deps.store.shardDb(rec, p.shard);
    const progress = new ShardProgress(job, deps.ops, p.op, shardName);

    // A fresh read transaction: the snapshot is taken now, not at some earlier read of this process.
    db.resetReadTxn();
    const txn = db.useReadTransaction();
    try {
      const range = db.getRange({ transaction: txn });
      const source = Readable.from(
        (function* () {
          for (const { value } of range) yield value as Document;
        })(),
        { objectMode: true, highWaterMark: 64 },
      );
      const encoder = createDumpEncoder({
        kind: 'docs',
        index: p.index,
        shard: p.shard,
        node: p.node,
        backup: p.op.id,
      });
      const meter = createMeter();
      const onAbort = () => source.destroy(new CancelledError(`snapshot of ${p.index}/${p.shard} was cancelled`));
      signal.addEventListener('abort', onAbort, { once: true });
      let failed: Error | undefined;
      let piped!: () => void;
      const pipelineDone = new Promise<void>((resolve) => (piped = resolve));
      const body = pipeline(source, encoder, compressStream(p.compression), throttleStream(deps.config.workerMaxBytesPerSecond), meter, (err) => {
        if (err) failed = err;
        piped();
      });
      const ticker = setInterval(() => progress.update(encoder.count, meter.bytes), 500);
      try {
        if (signal.aborted) onAbort();
        await backend.write(p.key, body, { signal });
      } catch (err) {
        source.destroy(err as Error);
        throw err;
      } finally {
        clearInterval(ticker);
        signal.removeEventListener('abort', onAbort);
        // The range iterator must be closed before its read transaction ends.
        await pipelineDone;
      }
      if (failed) throw failed;
      const result = { node: p.node, index: p.index, shard: p.shard, key: p.key, docs: encoder.count, bytes: meter.bytes, sha256: meter.digest() };
      await progress.done(result.docs, result.bytes);
      deps.logger.debug({ job: job.id, ...result }, 'shard snapshot written');
      return result;
    } finally {
      txn.done();
    }
  };
}
