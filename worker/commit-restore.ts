/**
 * `commit-restore`: the parent of a restore flow. Started when every shard is staged, or as
 * soon as one fails (children use `continueParentOnFailure`).
 *
 * - All shards staged and no cancel: TRANSFERRED, FINALIZING; each staged shard directory is
 *   renamed to its place (`DATA_DIR/<node>/<index>/<shard>/`); then every restored index record
 *   (new uid, target placement, schema, metadata) is published in ONE cluster transaction, so
 *   the classes appear together; then SUCCESS.
 * - A shard failed, or a cancel was asked: running siblings are stopped and waited for, the
 *   staging area is deleted on every target node, FAILED (with the shard's error) or CANCELED.
 *   No index is ever published then.
 *
 * A commit that dies half-way through the renames is picked up again: a shard already moved
 * is recognised (staged directory gone, target present) and the publish happens once.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { WaitingChildrenError } from 'bullmq';
import { publishStagedShard, removeStaging, stagedShardDir } from '../shared/store/shard-files.ts';
import type { OperationRef } from '../shared/jobs/operation.ts';
import { type CommitResult, type JobOf, type ProcessorOf, type RestoredIndex } from '../shared/jobs/catalog.ts';
import { readChildren, settleChildren } from '../shared/jobs/children.ts';
import type { IndexSchema } from '../shared/store/schema.ts';
import type { IndexRecord } from '../shared/store/store.ts';
import { commitOrAbandon, describeFailure, type JobDeps } from './deps.ts';

export function commitRestore(deps: JobDeps): ProcessorOf<'commit-restore'> {
  const { ops, store, config } = deps;

  const targetNodes = (indexes: RestoredIndex[]) => [...new Set(indexes.flatMap((i) => i.placement))];

  async function abandon(job: JobOf<'commit-restore'>, token: string | undefined, error: string | undefined): Promise<CommitResult> {
    const p = job.data;
    if (error) await ops.markFailing(p.op, error);
    await ops.publishCancel(p.op);
    await settleChildren(job, token);
    const state = await ops.get(p.op);
    await removeStaging(config.dataDir, p.op, targetNodes(p.indexes));
    if (state?.status === 'CANCELLING') {
      await ops.advance(p.op, 'CANCELED');
      deps.logger.info({ backup: p.op.id, backend: p.op.backend }, 'restore cancelled; staging removed, no class created');
      return { status: 'CANCELED' };
    }
    const reason = state?.error ?? error ?? 'the restore was abandoned';
    await ops.advance(p.op, 'FAILED', { error: reason });
    deps.logger.warn({ backup: p.op.id, backend: p.op.backend, error: reason }, 'restore failed; staging removed, no class created');
    return { status: 'FAILED', error: reason };
  }

  /** The schema to store: a foreign reference only if this cluster can resolve it. */
  function schemaFor(index: RestoredIndex): IndexRecord['schema'] {
    const schema = index.schema as unknown as IndexRecord['schema'];
    if (schema._type !== 'foreign/object') return schema;
    try {
      store.effectiveSchema({ name: index.name, uid: '', shards: index.shards, placement: index.placement, schema, createdAt: '' });
      return schema;
    } catch {
      return index.effectiveSchema as unknown as IndexSchema;
    }
  }

  /** Rename every staged shard into place; answers the directories now in place. */
  async function moveIntoPlace(restore: OperationRef, indexes: RestoredIndex[]): Promise<string[]> {
    const moved: string[] = [];
    for (const index of indexes) {
      for (let shard = 0; shard < index.shards; shard++) {
        const node = index.placement[shard]!;
        const to = store.shardDir(node, index.name, shard);
        await publishStagedShard(stagedShardDir(config.dataDir, restore, node, index.name, shard), to, `${index.name}/${shard} for node ${node}`);
        moved.push(to);
      }
    }
    return moved;
  }

  async function commit(job: JobOf<'commit-restore'>, token: string | undefined): Promise<CommitResult> {
    const p = job.data;
    const state = await ops.get(p.op);
    const children = await readChildren(job, 'restore-shard');
    if (!state) return abandon(job, token, 'the restore state was lost from Redis while it ran');
    if (state.status === 'CANCELLING' || state.error || children.failures.length > 0) {
      return abandon(job, token, describeFailure(state, children.failures));
    }
    if (children.pending > 0 && token && (await job.moveToWaitingChildren(token))) throw new WaitingChildrenError();
    const expected = p.indexes.reduce((n, i) => n + i.shards, 0);
    if (children.results.length !== expected) {
      return abandon(job, token, `only ${children.results.length} of ${expected} shards were staged`);
    }
    await ops.advance(p.op, 'TRANSFERRED');

    // The last moment a cancel or a clash can stop the restore without leaving anything behind.
    if ((await ops.get(p.op))?.status === 'CANCELLING') return abandon(job, token, undefined);
    const clash = p.indexes.find((i) => store.getIndex(i.name));
    if (clash) return abandon(job, token, `class ${JSON.stringify(clash.name)} was created while the restore ran`);
    await ops.advance(p.op, 'FINALIZING');

    const moved = await moveIntoPlace(p.op, p.indexes);
    const now = new Date().toISOString();
    const records: IndexRecord[] = p.indexes.map((i) => ({
      name: i.name,
      uid: randomUUID(),
      shards: i.shards,
      placement: i.placement,
      schema: schemaFor(i),
      createdAt: now,
    }));
    try {
      await store.publishIndexes(records, Object.fromEntries(p.indexes.map((i) => [i.name, i.metadata])));
    } catch (err) {
      // Not published: the moved shards belong to nobody; remove them unless someone else's index took the name.
      for (const dir of moved) {
        const index = path.basename(path.dirname(dir));
        if (!store.getIndex(index)) await fs.promises.rm(dir, { recursive: true, force: true });
      }
      throw err;
    }
    await removeStaging(config.dataDir, p.op, targetNodes(p.indexes));
    await ops.advance(p.op, 'SUCCESS');
    deps.logger.info({ backup: p.op.id, backend: p.op.backend, classes: p.classes }, 'restore committed');
    return { status: 'SUCCESS' };
  }

  return commitOrAbandon('restore', commit, abandon);
}
