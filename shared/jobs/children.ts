/**
 * What a flow's parent needs to know about its children. Children run with
 * `continueParentOnFailure`, so a parent may be started by the first failed child while its
 * siblings are still waiting or running; `settleChildren` removes the ones not started yet and,
 * while some are still running, parks the parent in waiting-children (BullMQ wakes it again when
 * the last one finishes or another one fails).
 */
import { WaitingChildrenError } from 'bullmq';
import { parseResult, type JobName, type JobOf, type ResultOf } from './catalog.ts';

export interface ChildFailure {
  /** BullMQ's child key, `<prefix>:<queue>:<job id>`. */
  key: string;
  jobId: string;
  reason: string;
}

export interface ChildrenOutcome<R> {
  results: R[];
  failures: ChildFailure[];
  /** Children not finished yet (waiting, delayed or running). */
  pending: number;
}

/** The parsed results of the finished children, the failures, and how many are still pending. */
export async function readChildren<C extends JobName>(job: JobOf<JobName>, childName: C): Promise<ChildrenOutcome<ResultOf<C>>> {
  const [values, failed, counts] = await Promise.all([
    job.getChildrenValues(),
    job.getIgnoredChildrenFailures(),
    job.getDependenciesCount({ unprocessed: true }),
  ]);
  return {
    results: Object.values(values ?? {}).map((v) => parseResult(childName, v)),
    failures: Object.entries(failed ?? {}).map(([key, reason]) => ({ key, jobId: key.split(':').at(-1) ?? key, reason })),
    pending: counts.unprocessed ?? 0,
  };
}

/**
 * Remove the children that have not started and, if some are still running, move the parent
 * to waiting-children and throw WaitingChildrenError (BullMQ then releases the parent without
 * counting an attempt). Returns only when no child is pending any more. Running children are
 * expected to stop soon: the caller has already flagged the operation as cancelled or failed.
 */
export async function settleChildren(job: JobOf<JobName>, token: string | undefined): Promise<void> {
  await job.removeUnprocessedChildren();
  const { unprocessed = 0 } = await job.getDependenciesCount({ unprocessed: true });
  if (unprocessed === 0) return;
  if (!token) throw new Error(`job ${job.id} has no lock token: cannot wait for its children`);
  if (await job.moveToWaitingChildren(token)) throw new WaitingChildrenError();
}
