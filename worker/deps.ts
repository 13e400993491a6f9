/**
 * What the job processors are given, and the few helpers they share: checking that their
 * operation still wants them, reporting progress, and naming why a job stopped.
 */
import { UnrecoverableError, WaitingChildrenError, type Job } from 'bullmq';
import type { BackendFactory } from '../shared/backups/backends.ts';
import type { OperationState, OperationStore, StopReason } from '../shared/backups/state.ts';
import type { Config } from '../shared/config.ts';
import { retryCanHelp } from '../shared/errors.ts';
import { ABORT, type CommitResult } from '../shared/jobs/catalog.ts';
import type { ChildFailure } from '../shared/jobs/children.ts';
import { describeShard, parseJobId, type OperationKind, type OperationRef } from '../shared/jobs/operation.ts';
import type { Logger } from '../shared/logger.ts';
import type { ClusterCatalog } from '../shared/cluster/catalog.ts';
import type { ShardHost } from '../shared/cluster/shard-host.ts';

export interface JobDeps {
  config: Config;
  /** Index records and metadata: what a backup snapshots, what a restore publishes. */
  catalog: ClusterCatalog;
  /** The nodes' shards as files; a worker has no data directory of its own. */
  shards: ShardHost;
  logger: Logger;
  ops: OperationStore;
  backends: BackendFactory;
  /** Shard transfers running at once in this process (see TransferSlots). */
  transfers: TransferSlots;
}

/**
 * How many shard transfers (snapshots and restores) run at once in one worker process: one per
 * core. One transfer already keeps every core busy (its hashing, compression and checking run
 * in the blob pool's threads and libuv's pool, shared/repository/blob-pool.ts), and its reads
 * overlap that work. A worker takes WORKER_CONCURRENCY jobs from each node queue it serves; more
 * transfers would only share the cores and add each one's buffers to the worker's memory, so
 * the others wait here (their BullMQ locks are renewed meanwhile).
 */
export class TransferSlots {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly size: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}

/**
 * A shard job that stops because of a decision made elsewhere — a cancel, a sibling's failure,
 * the operation being over — rather than failing itself. It is never retried, and it is not
 * the operation's failure: a shard job that fails for its own reason records that reason in
 * the operation's state (worker.ts), which is what the coordinator reports.
 */
export class StoppedError extends UnrecoverableError {
  constructor(
    readonly why: StopReason,
    message: string,
  ) {
    super(message);
  }
}

const STOP_MESSAGE: Record<StopReason, (kind: OperationKind, id: string) => string> = {
  cancel: (kind, id) => `the ${kind} ${id} was cancelled`,
  fail: (kind, id) => `the ${kind} ${id} failed on another shard`,
  gone: (kind, id) => `the ${kind} ${id} is not running any more`,
};

/** Throws StoppedError when the operation was cancelled, has failed, or is over. */
export async function assertWanted(ops: OperationStore, op: OperationRef): Promise<void> {
  const why = await ops.stopReason(op);
  if (why) throw new StoppedError(why, STOP_MESSAGE[why](op.kind, op.id));
}

/** A shard job's progress, to the job (bull-board) and to the operation's progress hash, at most twice a second. */
export class ShardProgress {
  private last = 0;
  private pending: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly job: { updateProgress(p: object): Promise<void> },
    private readonly ops: OperationStore,
    private readonly op: OperationRef,
    private readonly shard: string,
  ) {}

  update(docs: number, bytes: number): void {
    const now = Date.now();
    if (now - this.last < 500) return;
    this.last = now;
    this.pending = Promise.all([
      this.job.updateProgress({ docs, bytes }),
      this.ops.progress(this.op, this.shard, { docs, bytes, done: false }),
    ]).catch(() => undefined);
  }

  async done(docs: number, bytes: number): Promise<void> {
    await this.pending;
    await this.job.updateProgress({ docs, bytes, done: true });
    await this.ops.progress(this.op, this.shard, { docs, bytes, done: true });
  }
}

/**
 * A coordinator's processor: commit, and when the commit throws, let BullMQ retry it while a
 * retry can help (a transient error with attempts left); otherwise abandon the operation with
 * the reason, so that it always ends. Waiting for children and a worker's shutdown are handed
 * back to BullMQ as they are.
 */
export function commitOrAbandon<J extends Job>(
  kind: OperationKind,
  commit: (job: J, token: string | undefined, signal: AbortSignal) => Promise<CommitResult>,
  abandon: (job: J, token: string | undefined, reason: string) => Promise<CommitResult>,
): (job: J, token: string | undefined, signal: AbortSignal) => Promise<CommitResult> {
  return async (job, token, signal) => {
    try {
      return await commit(job, token, signal);
    } catch (err) {
      if (err instanceof WaitingChildrenError || signal.reason === ABORT.shutdown) throw err;
      const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (retryCanHelp(err) && !lastAttempt) throw err;
      return abandon(job, token, `committing the ${kind} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
}

/**
 * Why an operation failed, for its coordinator: the failure a shard job recorded in the
 * operation's state (worker.ts), else — a shard job that could not record it (killed too often,
 * Redis away) — the first failed child, named by its shard; undefined for a cancel.
 */
export function describeFailure(state: OperationState, failures: ChildFailure[]): string | undefined {
  if (state.error) return state.error;
  if (state.status === 'CANCELLING') return undefined;
  const first = failures[0];
  if (!first) return undefined;
  const { shard } = parseJobId(first.jobId);
  return `${shard ? describeShard(shard) : first.jobId} failed: ${first.reason}`;
}
