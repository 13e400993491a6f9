/**
 * `commit-restore`: the parent of a restore flow. Started when every shard is staged, or as
 * soon as one fails (children use `continueParentOnFailure`).
 *
 * - All shards staged and no cancel: TRANSFERRED, FINALIZING, then the commit, over every
 *   target node (ShardHost, shared/cluster/shard-host.ts):
 *   1. prepare: each node checks its staged shards are complete and open. Any refusal, or a
 *      node that cannot be reached, abandons the restore (below), naming the node and why —
 *      nothing has moved yet.
 *   2. publish: each node moves its staged shards into place (`<node>/<index>/<shard>/`).
 *   3. `catalog.publishIndexes`: every restored index record (target placement, schema,
 *      metadata) in ONE change — the only step that makes the classes visible, together.
 *   4. each node drops the restore's staging; SUCCESS.
 * - A shard failed, a cancel was asked, or the commit cannot go on: running siblings are
 *   stopped and waited for, every target node drops its staging and the shards it moved for
 *   indexes that were not published (`abort`), then FAILED (with the reason) or CANCELED. No
 *   index is ever published then.
 *
 * A coordinator that dies mid-commit is resumed by BullMQ's retry of this job, and every step
 * is repeatable: prepare accepts a shard already moved, publish leaves a moved shard in place,
 * and the index records carry uids derived from this job (not drawn anew), so a retry that
 * finds exactly these records published knows the publish happened.
 */
import { createHash } from 'node:crypto';
import { WaitingChildrenError } from 'bullmq';
import { type CommitResult, type JobOf, type ProcessorOf, type RestoredIndex } from '../shared/jobs/catalog.ts';
import { readChildren, settleChildren } from '../shared/jobs/children.ts';
import type { RestoreShard } from '../shared/cluster/shard-host.ts';
import { ConflictError } from '../shared/errors.ts';
import type { IndexSchema } from '../shared/store/schema.ts';
import type { IndexRecord } from '../shared/store/store.ts';
import { commitOrAbandon, describeFailure, type JobDeps } from './deps.ts';

type Job = JobOf<'commit-restore'>;

export function commitRestore(deps: JobDeps): ProcessorOf<'commit-restore'> {
  const { ops, catalog, shards: host } = deps;

  /** Every target node with the shards it gets. */
  function shardsByNode(indexes: RestoredIndex[]): Map<string, RestoreShard[]> {
    const byNode = new Map<string, RestoreShard[]>();
    for (const index of indexes) {
      index.placement.forEach((node, shard) => {
        const list = byNode.get(node) ?? [];
        list.push({ index: index.name, shard });
        byNode.set(node, list);
      });
    }
    return byNode;
  }

  /**
   * One commit step on every target node at once; answers the failures, each naming its node
   * and why. `abort` with `stagingOnly` drops the staging and keeps every moved shard.
   */
  async function onEveryNode(job: Job, step: 'prepare' | 'publish' | 'abort', stagingOnly = false): Promise<{ error: unknown; message: string }[]> {
    const p = job.data;
    const byNode = [...shardsByNode(p.indexes)];
    const outcomes = await Promise.allSettled(byNode.map(([node, list]) => host[step](node, p.op, stagingOnly ? [] : list)));
    return outcomes.flatMap((o, i) =>
      o.status === 'rejected' ? [{ error: o.reason, message: `${step} on node ${byNode[i]![0]}: ${o.reason instanceof Error ? o.reason.message : String(o.reason)}` }] : [],
    );
  }

  const describeAll = (failures: { message: string }[]) => failures.map((f) => f.message).join('; ');

  async function abandon(job: Job, token: string | undefined, error: string | undefined): Promise<CommitResult> {
    const p = job.data;
    if (error) await ops.markFailing(p.op, error);
    await ops.publishCancel(p.op);
    await settleChildren(job, token);
    const state = await ops.get(p.op);
    // A node that cannot be reached keeps its staging; the others drop theirs now.
    const leftovers = await onEveryNode(job, 'abort');
    if (leftovers.length > 0) deps.logger.warn({ backup: p.op.id, backend: p.op.backend, errors: describeAll(leftovers) }, 'restore staging left on nodes that could not be reached');
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
  async function schemaFor(index: RestoredIndex): Promise<IndexRecord['schema']> {
    const schema = index.schema as unknown as IndexRecord['schema'];
    if (schema._type !== 'foreign/object') return schema;
    try {
      await catalog.effectiveSchema({ name: index.name, uid: '', shards: index.shards, placement: index.placement, schema, createdAt: '' });
      return schema;
    } catch {
      return index.effectiveSchema as unknown as IndexSchema;
    }
  }

  /**
   * The records this job publishes. Their uids come from the job (its id and creation time,
   * both kept across retries), so a retried commit publishes the same records, and a later
   * restore of the same backup gets new ones; `createdAt` is the job's creation time likewise.
   */
  async function recordsOf(job: Job): Promise<IndexRecord[]> {
    const createdAt = new Date(job.timestamp).toISOString();
    return Promise.all(
      job.data.indexes.map(async (i) => ({
        name: i.name,
        uid: uidOf(`${job.id}\n${job.timestamp}\n${i.name}`),
        shards: i.shards,
        placement: i.placement,
        schema: await schemaFor(i),
        createdAt,
      })),
    );
  }

  /** How many of `records` are published already as they are (same name, same uid); throws naming a class someone else created. */
  async function alreadyPublished(records: IndexRecord[]): Promise<number> {
    let found = 0;
    for (const r of records) {
      const existing = await catalog.getIndex(r.name);
      if (!existing) continue;
      if (existing.uid !== r.uid) throw new ConflictError(`class ${JSON.stringify(r.name)} was created while the restore ran`);
      found++;
    }
    return found;
  }

  async function commit(job: Job, token: string | undefined): Promise<CommitResult> {
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

    const records = await recordsOf(job);
    let published: number;
    try {
      published = await alreadyPublished(records);
    } catch (err) {
      if (err instanceof ConflictError) return abandon(job, token, err.message);
      throw err;
    }
    if (published < records.length) {
      // The last moment a cancel can stop the restore without leaving anything behind.
      if ((await ops.get(p.op))?.status === 'CANCELLING') return abandon(job, token, undefined);
      await ops.advance(p.op, 'FINALIZING');
      const unprepared = await onEveryNode(job, 'prepare');
      if (unprepared.length > 0) return abandon(job, token, `the restore could not be committed: ${describeAll(unprepared)}`);
      const unpublished = await onEveryNode(job, 'publish');
      if (unpublished.length > 0) {
        // Repeatable: a retry (while one can help) moves the rest; else the abandon drops what moved.
        const first = unpublished[0]!.error;
        if (first instanceof Error) first.message = `moving the restored shards into place failed: ${describeAll(unpublished)}`;
        throw first;
      }
      try {
        await catalog.publishIndexes(records, Object.fromEntries(p.indexes.map((i) => [i.name, i.metadata])));
      } catch (err) {
        // A publish that answered an error may still have happened (a lost answer, a retry after it).
        if (!(err instanceof ConflictError) || (await alreadyPublished(records)) < records.length) throw err;
      }
    }
    // Published: the restore has succeeded. Staging a node cannot drop now is left to it.
    const leftovers = await onEveryNode(job, 'abort', true);
    if (leftovers.length > 0) deps.logger.warn({ backup: p.op.id, backend: p.op.backend, errors: describeAll(leftovers) }, 'restore staging left on nodes that could not be reached');
    await ops.advance(p.op, 'SUCCESS');
    deps.logger.info({ backup: p.op.id, backend: p.op.backend, classes: p.classes }, 'restore committed');
    return { status: 'SUCCESS' };
  }

  return commitOrAbandon('restore', commit, abandon);
}

/** A UUID (version 8: custom) made of a SHA-256 of `seed`. */
function uidOf(seed: string): string {
  const h = createHash('sha256').update(seed).digest();
  h[6] = (h[6]! & 0x0f) | 0x80;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
