/**
 * One run of a backup schedule (`run-schedule` on the `schedules` queue):
 *
 * 1. claim the schedule for this run's backup id (store.ts); if an earlier run's backup is still
 *    going, this run is skipped and recorded SKIPPED — runs never overlap;
 * 2. start the backup through the backup service, as a client would, incremental on the
 *    schedule's last SUCCESS backup and marked with the schedule's name. The id comes from the
 *    due time, so a retried job (its worker was killed) finds its own backup and waits for it
 *    instead of starting a second one;
 * 3. wait for the backup to end (a worker killed meanwhile ends it as any backup), record the
 *    run (status, duration, error) and, after a SUCCESS, apply the retention: the schedule's
 *    SUCCESS backups it does not keep, and its failed ones older than the newest SUCCESS, are
 *    deleted through the backup service (deleteBackups: each backup, then one collection of
 *    the chunks none names any more, however many were deleted). Backups of other schedules
 *    and backups made by hand are never touched.
 */
import { WaitingError, type Job } from 'bullmq';
import { isTerminal, type OperationStatus } from '../shared/backups/contract.ts';
import type { BackupService } from '../shared/backups/service.ts';
import { overridesFromQuery } from '../shared/backups/validate.ts';
import { ConflictError, NotFoundError, ValidationError } from '../shared/errors.ts';
import type { ScheduleRunPayload } from '../shared/jobs/catalog.ts';
import type { Logger } from '../shared/logger.ts';
import { backupIdFor, type ScheduleDefinition } from '../shared/schedules/definition.ts';
import { keptBackups } from '../shared/schedules/retention.ts';
import type { RunRecord } from '../shared/schedules/contract.ts';
import type { ScheduleStore } from '../shared/schedules/store.ts';

export interface ScheduleRunDeps {
  schedules: ScheduleStore;
  backups: BackupService;
  logger: Logger;
  /** How often the run polls its backup's status. */
  pollMs?: number;
}

export type ScheduleRunResult = { id: string; status: RunRecord['status'] } | { skipped: string };

/** A job scheduler's job is `repeat:<scheduler>:<due ms>`: the time it was due, whenever it runs. */
function dueFromJobId(id: string | undefined): number | undefined {
  const m = /^repeat:.+:(\d+)$/.exec(id ?? '');
  return m ? Number(m[1]) : undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Weaviate's `config.Bucket`/`config.Path` of a schedule, as status, list and delete take them. */
function overridesOf(def: ScheduleDefinition) {
  const c = (def.config ?? {}) as Record<string, unknown>;
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return overridesFromQuery({ bucket: text(c.Bucket ?? c.bucket), path: text(c.Path ?? c.path) });
}

/**
 * The processor. Declared with three parameters so BullMQ hands it the signal a worker's
 * shutdown aborts: a run waiting for its backup is then handed back to the queue (keeping its
 * claim), and the worker that takes it goes on waiting.
 */
export function runSchedule(deps: ScheduleRunDeps): (job: Job<ScheduleRunPayload>, token: string | undefined, signal: AbortSignal) => Promise<ScheduleRunResult> {
  const { schedules, backups, logger } = deps;
  const pollMs = deps.pollMs ?? 500;

  async function statusOf(def: ScheduleDefinition, id: string): Promise<OperationStatus | undefined> {
    try {
      return await backups.status(def.backend, id, overridesOf(def));
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  /** Start the backup, or find that this run already started it (a retried job). */
  async function start(def: ScheduleDefinition, id: string, base: string | undefined): Promise<void> {
    const body = {
      id,
      ...(def.include ? { include: def.include } : {}),
      ...(def.exclude ? { exclude: def.exclude } : {}),
      ...(def.config ? { config: def.config } : {}),
      ...(base ? { incremental_base_backup_id: base } : {}),
    };
    try {
      await backups.create(def.backend, body, { schedule: def.name });
    } catch (err) {
      if (err instanceof ConflictError && (await statusOf(def, id))) return; // ours, from an earlier attempt
      if (base && err instanceof ValidationError && err.message.includes('incremental_base_backup_id')) {
        logger.warn({ schedule: def.name, base, err: err.message }, 'the base of the scheduled backup is gone: backing up without naming one');
        return start(def, id, undefined);
      }
      throw err;
    }
  }

  async function applyRetention(def: ScheduleDefinition, now: Date): Promise<void> {
    if (!def.retention) return;
    const overrides = overridesOf(def);
    const mine = (await backups.list(def.backend, overrides)).filter((b) => b.schedule === def.name);
    const success = mine.filter((b) => b.status === 'SUCCESS');
    const keep = keptBackups(success, def.retention, def.timezone, now);
    const newest = success.reduce<string>((max, b) => (b.startedAt > max ? b.startedAt : max), '');
    const doomed = [
      ...success.filter((b) => !keep.includes(b.id)),
      ...mine.filter((b) => b.status === 'FAILED' && b.startedAt < newest),
    ];
    if (doomed.length > 0) {
      try {
        const { outcomes } = await backups.deleteBackups(def.backend, doomed.map((b) => b.id), overrides);
        for (const o of outcomes) {
          if ('error' in o) logger.warn({ schedule: def.name, backup: o.id, err: o.error }, 'retention could not delete a backup; the next run tries again');
          else logger.info({ schedule: def.name, backup: o.id }, 'retention deleted a backup');
        }
      } catch (err) {
        // The location could not be reached, or the collection after the deletes failed: what
        // is not deleted the next run tries again, and chunks left are collected by the next delete.
        logger.warn({ schedule: def.name, err: (err as Error).message }, 'retention could not finish; the next run tries again');
      }
    }
    await schedules.setKept(def.name, keep);
  }

  return async (job, token, signal) => {
    const name = job.data.schedule;
    const def = await schedules.get(name);
    if (!def) return { skipped: `schedule ${name} no longer exists` };
    const due = new Date(job.data.dueAt ?? dueFromJobId(job.id) ?? job.timestamp);
    const id = backupIdFor(def, due);
    const log = logger.child({ schedule: name, backup: id });

    let holder = await schedules.claim(name, id);
    if (holder !== id) {
      const earlier = await statusOf(def, holder);
      if (!earlier || isTerminal(earlier.status)) holder = await schedules.claim(name, id, holder);
    }
    if (holder !== id) {
      const reason = `the previous run (backup ${holder}) is still going`;
      await schedules.record(name, { id, status: 'SKIPPED', dueAt: due.toISOString(), error: reason });
      log.info({ running: holder }, 'scheduled run skipped: the previous one is still going');
      return { skipped: reason };
    }

    let handedBack = false;
    try {
      const state = await schedules.state(name);
      const base = state.lastSuccess?.id !== id ? state.lastSuccess?.id : undefined;
      try {
        await start(def, id, base);
      } catch (err) {
        if (!(err instanceof ValidationError || err instanceof NotFoundError || err instanceof ConflictError)) throw err; // transient: tried again
        // The request itself is refused (no class matches, the id is taken): the run failed.
        await schedules.record(name, { id, status: 'FAILED', dueAt: due.toISOString(), error: (err as Error).message });
        log.warn({ err: (err as Error).message }, 'scheduled backup could not start');
        return { id, status: 'FAILED' };
      }
      log.info('scheduled backup started');
      let status = await statusOf(def, id);
      while (!status || !isTerminal(status.status)) {
        if (signal.aborted) {
          if (token) await job.moveToWait(token);
          handedBack = true;
          log.info('worker stopping: the scheduled run goes back to its queue');
          throw new WaitingError();
        }
        await sleep(pollMs);
        status = await statusOf(def, id);
        if (status) await job.updateProgress(status.progress).catch(() => undefined);
      }
      const outcome = status.status as RunRecord['status'];
      const seconds = status.completedAt ? (Date.parse(status.completedAt) - Date.parse(status.startedAt)) / 1000 : undefined;
      await schedules.record(name, {
        id,
        status: outcome,
        dueAt: due.toISOString(),
        startedAt: status.startedAt,
        ...(status.completedAt ? { completedAt: status.completedAt } : {}),
        ...(seconds !== undefined ? { durationSeconds: seconds } : {}),
        ...(status.error ? { error: status.error } : {}),
      });
      log.info({ status: outcome, seconds }, 'scheduled backup ended');
      if (outcome === 'SUCCESS') await applyRetention(def, new Date());
      return { id, status: outcome };
    } finally {
      if (!handedBack) await schedules.release(name, id);
    }
  };
}
