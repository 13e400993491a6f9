/**
 * `commit-backup`: the parent of a backup flow. BullMQ starts it when every shard is written,
 * or as soon as one shard fails (children use `continueParentOnFailure`).
 *
 * - All shards written and no cancel: TRANSFERRED; one `backup.json` per source node
 *   (indexes, schemas, metadata, placement, every shard object with docs/bytes/sha256); then
 *   `backup_config.json` LAST (status SUCCESS, nodes, classes, totals, format version,
 *   compression, timestamps); then SUCCESS.
 * - A shard failed, or a cancel was asked: the operation is flagged so running siblings stop,
 *   siblings not started are removed, and the parent waits (in waiting-children) for the running
 *   ones; then everything under `<id>/` is deleted. A failure leaves `backup_config.json` with
 *   status FAILED and the shard's error (so the status survives Redis); a cancel leaves nothing.
 *
 * Every step can be repeated: a commit that dies half-way is picked up again and ends the same.
 */
import { WaitingChildrenError } from 'bullmq';
import type { Backend } from '../shared/backends/backend.ts';
import {
  backupPrefix,
  FORMAT_VERSION,
  globalManifestKey,
  MANIFEST_VERSION,
  nodeManifestKey,
  writeJson,
  type GlobalManifest,
  type NodeManifest,
} from '../shared/backups/manifest.ts';
import { type CommitResult, type IndexSnapshot, type JobOf, type PayloadOf, type ProcessorOf, type ShardObject } from '../shared/jobs/catalog.ts';
import { PermanentBackendError } from '../shared/errors.ts';
import { readChildren, settleChildren } from '../shared/jobs/children.ts';
import { endedBackup, recordEnded } from '../shared/backups/repair.ts';
import { commitOrAbandon, describeFailure, type JobDeps } from './deps.ts';

type Payload = PayloadOf<'commit-backup'>;

export function commitBackup(deps: JobDeps): ProcessorOf<'commit-backup'> {
  const { ops, catalog } = deps;

  /** Stop the siblings, wait for them, delete what the backup wrote, record the outcome. */
  async function abandon(job: JobOf<'commit-backup'>, token: string | undefined, backend: Backend, error: string | undefined): Promise<CommitResult> {
    const p = job.data;
    if (error) await ops.markFailing(p.op, error);
    await ops.publishCancel(p.op);
    await settleChildren(job, token);
    const state = await ops.get(p.op);
    const cancelled = state?.status === 'CANCELLING';
    const reason = state?.error ?? error ?? 'the backup was abandoned';
    // A backend that is gone for good (bucket deleted, access revoked) cannot be cleaned up or
    // told the outcome: record it in Redis, with the reason, rather than fail the coordinator
    // (whose retries could not help and whose error would hide the reason).
    let unreachable: string | undefined;
    try {
      await backend.deletePrefix(backupPrefix(p.op.id));
    } catch (err) {
      if (!(err instanceof PermanentBackendError)) throw err;
      unreachable = err.message;
      deps.logger.warn({ backup: p.op.id, backend: p.op.backend, error: unreachable }, 'could not delete what the backup wrote');
    }
    if (cancelled) {
      await ops.advance(p.op, 'CANCELED');
      deps.logger.info({ backup: p.op.id, backend: p.op.backend }, unreachable ? 'backup cancelled' : 'backup cancelled; nothing left in the backend');
      return { status: 'CANCELED' };
    }
    if (unreachable) {
      const why = `${reason} (and what it wrote could not be deleted: ${unreachable})`;
      await ops.advance(p.op, 'FAILED', { error: why });
      return { status: 'FAILED', error: why };
    }
    const completedAt = new Date().toISOString();
    const manifest: GlobalManifest = {
      ...baseManifest(p, backend),
      status: 'FAILED',
      error: reason,
      completedAt,
      totals: { shards: 0, docs: 0, bytes: 0 },
      nodeManifests: {},
    };
    await writeJson(backend, globalManifestKey(p.op.id), manifest);
    await ops.advance(p.op, 'FAILED', { error: reason, completedAt });
    deps.logger.warn({ backup: p.op.id, backend: p.op.backend, error: reason }, 'backup failed; its objects were deleted');
    return { status: 'FAILED', error: reason };
  }

  /** The index as it is now, if it is still the one backed up (a schema only ever grows). */
  async function currentSnapshot(snap: IndexSnapshot): Promise<IndexSnapshot> {
    const rec = await catalog.getIndex(snap.name);
    if (!rec || rec.uid !== snap.uid) return snap;
    try {
      return {
        ...snap,
        schema: rec.schema as unknown as Record<string, unknown>,
        effectiveSchema: (await catalog.effectiveSchema(rec)) as Record<string, unknown>,
        metadata: await catalog.listMetadata(rec.name),
      };
    } catch {
      return snap;
    }
  }

  async function commit(job: JobOf<'commit-backup'>, token: string | undefined, signal: AbortSignal): Promise<CommitResult> {
    const p = job.data;
    const backend = deps.backends(p.op.backend, p.overrides);
    // Run again after its manifest was written (Redis lost the end of the first run): the
    // backup has ended; rewriting, or abandoning and deleting it, would change a finished backup.
    const ended = await endedBackup(backend, p.op.id, p.startedAt);
    if (ended) {
      await recordEnded(ops, p.op, ended);
      deps.logger.info({ backup: p.op.id, backend: p.op.backend, status: ended.status }, 'backup already committed; its outcome recorded again');
      return { status: ended.status === 'SUCCESS' ? 'SUCCESS' : 'FAILED', ...(ended.error ? { error: ended.error } : {}) };
    }
    const state = await ops.get(p.op);
    const children = await readChildren(job, 'snapshot-shard');

    if (!state) return abandon(job, token, backend, 'the backup state was lost from Redis while it ran');
    if (state.status === 'CANCELLING' || state.error || children.failures.length > 0) {
      return abandon(job, token, backend, describeFailure(state, children.failures));
    }
    if (children.pending > 0) {
      // Woken while shards are still running (should not happen without a failure): wait for them.
      if (token && (await job.moveToWaitingChildren(token))) throw new WaitingChildrenError();
    }

    const shards = children.results;
    const expected = p.indexes.reduce((n, i) => n + i.shards, 0);
    if (shards.length !== expected) {
      return abandon(job, token, backend, `only ${shards.length} of ${expected} shards were written`);
    }
    await ops.advance(p.op, 'TRANSFERRED');

    const nodeManifests: GlobalManifest['nodeManifests'] = {};
    const indexes = await Promise.all(p.indexes.map(currentSnapshot));
    for (const node of p.nodes) {
      const manifest: NodeManifest = {
        version: MANIFEST_VERSION,
        id: p.op.id,
        node,
        indexes: indexes.filter((i) => i.placement.includes(node)),
        shards: sortShards(shards.filter((s) => s.node === node)),
      };
      const key = nodeManifestKey(p.op.id, node);
      nodeManifests[node] = { key, ...(await writeJson(backend, key, manifest, { signal })) };
    }

    // Last chance for a cancel: once backup_config.json says SUCCESS, the backup exists.
    const before = await ops.get(p.op);
    if (before?.status === 'CANCELLING') return abandon(job, token, backend, undefined);

    const totals = shards.reduce((t, s) => ({ shards: t.shards + 1, docs: t.docs + s.docs, bytes: t.bytes + s.bytes }), { shards: 0, docs: 0, bytes: 0 });
    const preCompressionSizeBytes = shards.reduce((sum, s) => sum + (s.file?.size ?? 0), 0);
    const completedAt = new Date().toISOString();
    const manifest: GlobalManifest = { ...baseManifest(p, backend), status: 'SUCCESS', completedAt, totals, preCompressionSizeBytes, nodeManifests };
    await writeJson(backend, globalManifestKey(p.op.id), manifest, { signal });
    await ops.advance(p.op, 'SUCCESS', { completedAt, preCompressionSizeBytes });
    deps.logger.info({ backup: p.op.id, backend: p.op.backend, ...totals }, 'backup committed');
    return { status: 'SUCCESS' };
  }

  return commitOrAbandon('backup', commit, (job, token, reason) => abandon(job, token, deps.backends(job.data.op.backend, job.data.overrides), reason));
}

function baseManifest(p: Payload, backend: Backend): Omit<GlobalManifest, 'status' | 'totals' | 'nodeManifests'> {
  return {
    version: MANIFEST_VERSION,
    id: p.op.id,
    backend: p.op.backend,
    path: backend.locate(p.op.id),
    nodes: p.nodes,
    classes: p.classes,
    startedAt: p.startedAt,
    formatVersion: FORMAT_VERSION,
    compression: p.compression,
    ...(p.incrementalBase ? { incremental_base_backup_id: p.incrementalBase } : {}),
    ...(p.schedule ? { schedule: p.schedule } : {}),
  };
}

function sortShards(shards: ShardObject[]): ShardObject[] {
  return [...shards].sort((a, b) => (a.index < b.index ? -1 : a.index > b.index ? 1 : a.shard - b.shard));
}
