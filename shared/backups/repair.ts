/**
 * The repair of operations that can no longer end by themselves. An operation is recorded in
 * Redis a moment before its flow is added; if its coordinator job then never exists (Redis
 * went away in between, or the jobs were removed) or failed without recording it (BullMQ fails
 * a job that stalled too often in its stalled check, which no worker's `failed` handler sees),
 * the operation would stay STARTED (or TRANSFERRING…) for ever and its id could never be used
 * again. Every read of an operation's state on the request path goes through
 * `readRepairingStuck`, which records such an operation FAILED with the reason — so a status
 * request can write; this module is the one place that does.
 */
import type { Logger } from '../logger.ts';
import type { OperationRef } from '../jobs/operation.ts';
import type { Producer } from '../jobs/queues.ts';
import { isTerminal } from './contract.ts';
import type { OperationState, OperationStore } from './state.ts';

/** How long an operation may be recorded without its coordinator job before it counts as lost. */
export const ORPHAN_GRACE_MS = 30_000;

export interface RepairDeps {
  ops: OperationStore;
  producer: Producer;
  logger: Logger;
}

/** The operation's state, after recording it FAILED if it can no longer end by itself. */
export async function readRepairingStuck(deps: RepairDeps, op: OperationRef): Promise<OperationState | undefined> {
  const state = await deps.ops.get(op);
  if (!state || isTerminal(state.status)) return state;
  const job = await deps.producer.coordinatorJob(op);
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
