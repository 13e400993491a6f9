/**
 * The repair of operations that can no longer end by themselves. An operation is recorded in
 * Redis a moment before its flow is added; if its coordinator job then never exists (Redis
 * went away in between, or the jobs were removed) or failed without recording it (BullMQ fails
 * a job that stalled too often in its stalled check, which no worker's `failed` handler sees),
 * the operation would stay STARTED (or TRANSFERRING…) for ever and its id could never be used
 * again. Every read of an operation's state on the request path goes through
 * `readRepairingStuck`, which records such an operation FAILED with the reason — so a status
 * request can write; this module is the one place that does.
 *
 * A backup whose backup_config.json is written has ended, whatever Redis says: Redis may have
 * lost its last writes (a crash with `appendfsync everysec` loses up to a second: the SUCCESS,
 * the coordinator's completion, even its start), and would then answer TRANSFERRED, or FAILED
 * as lost, for a backup the backend holds as SUCCESS. So a backup whose coordinator is not
 * waiting for its shards (committing, to be run again, failed or missing) is looked up in the
 * backend first, and the manifest's outcome is what is recorded (`recordEnded`).
 */
import type { Backend } from '../backends/backend.ts';
import { NotFoundError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { OperationRef } from '../jobs/operation.ts';
import type { Producer } from '../jobs/queues.ts';
import { isTerminal } from './contract.ts';
import { globalManifestKey, globalManifestSchema, readJson, type GlobalManifest } from './manifest.ts';
import type { OperationState, OperationStore } from './state.ts';

/** How long an operation may be recorded without its coordinator job before it counts as lost. */
export const ORPHAN_GRACE_MS = 30_000;

export interface RepairDeps {
  ops: OperationStore;
  producer: Producer;
  logger: Logger;
  /** Where a running backup writes (its state's overrides); none for restores, which have no manifest. */
  backendOf?: (state: OperationState) => Backend;
}

/**
 * The global manifest of this run of a backup (the one started at `startedAt`), if it is
 * written: the backup has ended then, as the manifest says.
 */
export async function endedBackup(backend: Backend, id: string, startedAt: string): Promise<GlobalManifest | undefined> {
  try {
    const manifest = await readJson(backend, globalManifestKey(id), globalManifestSchema);
    return manifest.startedAt === startedAt && isTerminal(manifest.status) ? manifest : undefined;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** Record in Redis the outcome a backup's manifest holds (the backend's word is final). */
export async function recordEnded(ops: OperationStore, op: OperationRef, m: GlobalManifest): Promise<void> {
  if (m.status === 'STARTED') return;
  await ops.advance(op, m.status, {
    ...(m.completedAt ? { completedAt: m.completedAt } : {}),
    ...(m.error ? { error: m.error } : {}),
    ...(m.preCompressionSizeBytes !== undefined ? { preCompressionSizeBytes: m.preCompressionSizeBytes } : {}),
  });
}

/** The operation's state, after recording it FAILED if it can no longer end by itself. */
export async function readRepairingStuck(deps: RepairDeps, op: OperationRef): Promise<OperationState | undefined> {
  const state = await deps.ops.get(op);
  if (!state || isTerminal(state.status)) return state;
  const job = await deps.producer.coordinatorJob(op);
  if (deps.backendOf && op.kind === 'backup' && !(job && (await job.isWaitingChildren()))) {
    const ended = await endedBackup(deps.backendOf(state), op.id, state.startedAt);
    if (ended) {
      await recordEnded(deps.ops, op, ended);
      deps.logger.warn({ ...op, status: ended.status }, 'backup ended in the backend but not in Redis: recorded as its manifest says');
      return deps.ops.get(op);
    }
  }
  let why: string | undefined;
  if (!job) {
    if (Date.now() - Date.parse(state.startedAt) < ORPHAN_GRACE_MS) return state;
    why = `the ${op.kind} was lost: its jobs do not exist (Redis was unavailable while it started, or they were removed)`;
  } else if (await job.isFailed()) {
    why = `coordinator failed: ${job.failedReason || 'no reason recorded'}`;
  } else {
    return state;
  }
  await deps.ops.advance(op, 'FAILED', { error: why });
  deps.logger.warn({ ...op, error: why }, 'operation could not end by itself: recorded FAILED');
  return deps.ops.get(op);
}
