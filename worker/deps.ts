/**
 * What the job processors are given, and the few helpers they share: checking that their
 * operation still wants them, reporting progress, and naming why a job stopped.
 */
import { UnrecoverableError, WaitingChildrenError, type Job } from 'bullmq';
import type { BackendFactory } from '../shared/backups/backends.ts';
import type { OperationStore } from '../shared/backups/state.ts';
import type { Config } from '../shared/config.ts';
import { retryCanHelp } from '../shared/errors.ts';
import { ABORT, type CommitResult, type OperationKind } from '../shared/jobs/catalog.ts';
import type { Logger } from '../shared/logger.ts';
import type { Store } from '../shared/store/store.ts';

export interface JobDeps {
  config: Config;
  store: Store;
  logger: Logger;
  ops: OperationStore;
  backends: BackendFactory;
}

/**
 * Failure reasons of shard jobs that only echo a decision made elsewhere (a cancel, or a
 * sibling's failure); a coordinator reports the first failure without one of these prefixes.
 */
export const CANCELLED_PREFIX = 'cancelled:';
export const STOPPED_PREFIX = 'stopped:';

export function isEchoedFailure(reason: string): boolean {
  return reason.startsWith(CANCELLED_PREFIX) || reason.startsWith(STOPPED_PREFIX);
}

/** Throws (without retries) when the operation was cancelled, has failed, or is over. */
export async function assertWanted(ops: OperationStore, kind: OperationKind, backend: string, id: string): Promise<void> {
  const why = await ops.stopReason(kind, backend, id);
  if (why === 'cancel') throw new UnrecoverableError(`${CANCELLED_PREFIX} the ${kind} ${id} was cancelled`);
  if (why === 'fail') throw new UnrecoverableError(`${STOPPED_PREFIX} the ${kind} ${id} failed on another shard`);
  if (why === 'gone') throw new UnrecoverableError(`${STOPPED_PREFIX} the ${kind} ${id} is not running any more`);
}

/** A shard job's progress, to the job (bull-board) and to the operation's progress hash, at most twice a second. */
export class ShardProgress {
  private last = 0;
  private pending: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly job: { updateProgress(p: object): Promise<void> },
    private readonly ops: OperationStore,
    private readonly kind: OperationKind,
    private readonly backend: string,
    private readonly id: string,
    private readonly shard: string,
  ) {}

  update(docs: number, bytes: number): void {
    const now = Date.now();
    if (now - this.last < 500) return;
    this.last = now;
    this.pending = Promise.all([
      this.job.updateProgress({ docs, bytes }),
      this.ops.progress(this.kind, this.backend, this.id, this.shard, { docs, bytes, done: false }),
    ]).catch(() => undefined);
  }

  async done(docs: number, bytes: number): Promise<void> {
    await this.pending;
    await this.job.updateProgress({ docs, bytes, done: true });
    await this.ops.progress(this.kind, this.backend, this.id, this.shard, { docs, bytes, done: true });
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
