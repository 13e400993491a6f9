/**
 * `createWorker(deps)` → `{ start, stop }`: BullMQ workers for the `backups` and `restores`
 * queues and the `node-<name>` queue of every node this process serves, each running up to
 * WORKER_CONCURRENCY jobs, with the processors of the job catalog.
 *
 * Cancellation: a DELETE marks the operation CANCELLING in Redis and publishes its key on
 * CANCEL_CHANNEL. Every worker process subscribes and aborts the AbortSignal of its running
 * shard jobs of that operation (`worker.cancelJob`); as a fallback, each running shard job
 * also polls its operation's state every second. Shard jobs still queued are removed by the
 * cancel itself (BackupService). Coordinator jobs are never aborted by a cancel: they are the
 * ones that clean up after it.
 *
 * Shutdown (stop, on SIGTERM): stop taking jobs, let running ones finish for up to
 * WORKER_SHUTDOWN_SECONDS, then abort them with reason `shutdown`; an aborted job is handed
 * back to its queue (not counted as a failed attempt), so another worker runs it.
 *
 * Lost lock: a shard job whose lock expired (Redis away longer than LOCK_DURATION_MS, say) is
 * put back in its queue by BullMQ's stalled check and run again, while BullMQ lets the first run
 * go on. That run is aborted with reason `lockLost` as soon as this process learns of it — its
 * lock failed to renew (`lockRenewalFailed`), or this process was handed the same job again —
 * and ends without a trace: no failure recorded, the job left to the run that holds it.
 */
import { MetricsTime, UnrecoverableError, WaitingChildrenError, WaitingError, Worker, type Job } from 'bullmq';
import { availableParallelism } from 'node:os';
import type { Redis } from 'ioredis';
import { startMemoryTrim } from '../shared/memory-trim.ts';
import { configuredBackends, type BackendFactory } from '../shared/backups/backends.ts';
import { createBackupService, type BackupService } from '../shared/backups/service.ts';
import { CANCEL_CHANNEL, OperationStore } from '../shared/backups/state.ts';
import type { ClusterCatalog } from '../shared/cluster/catalog.ts';
import type { ShardHost } from '../shared/cluster/shard-host.ts';
import type { Config } from '../shared/config.ts';
import { retryCanHelp } from '../shared/errors.ts';
import {
  ABORT,
  assertProcessors,
  CATALOG,
  COORDINATOR_QUEUES,
  LOCK_DURATION_MS,
  MAX_STALLED_COUNT,
  nodeQueue,
  PREFIX,
  SCHEDULES_QUEUE,
  STALLED_INTERVAL_MS,
  type JobName,
  type ProcessorOf,
  type Processors,
} from '../shared/jobs/catalog.ts';
import { describeShard, operationKey, parseJobId, type OperationRef, type ShardRef } from '../shared/jobs/operation.ts';
import { logContext, type Logger } from '../shared/logger.ts';
import { createRedis } from '../shared/redis.ts';
import { ScheduleStore } from '../shared/schedules/store.ts';
import { commitBackup } from './commit-backup.ts';
import { commitRestore } from './commit-restore.ts';
import { StoppedError, TransferSlots, type JobDeps } from './deps.ts';
import { restoreShard } from './restore-shard.ts';
import { runSchedule } from './schedule-run.ts';
import { snapshotShard } from './snapshot-shard.ts';

export interface WorkerDeps {
  config: Config;
  logger: Logger;
  redisUrl: string;
  /** The cluster's metadata (LocalCatalog over this host's Store, or RemoteCatalog). */
  catalog: ClusterCatalog;
  /** The nodes' shards (LocalShardHost over this host's DATA_DIR, or RemoteShardHost). */
  shards: ShardHost;
  /** Nodes whose queues this worker serves; default config.workerNodes (WORKER_NODES). */
  nodes?: string[];
  /** Default: the configured backends (createBackend). */
  backends?: BackendFactory;
  /** Replaces some processors (tests); every catalog job must still have one. */
  processors?: Partial<Processors>;
}

export interface ShardvaultWorker {
  /** Starts serving the queues; resolves once every queue's worker is connected. */
  start(): Promise<void>;
  /** Graceful stop: no new jobs; running ones get WORKER_SHUTDOWN_SECONDS, then are aborted. */
  stop(): Promise<void>;
  /** Queue names served. */
  readonly queues: string[];
}

/**
 * Scheduled runs taken at once by one worker process: a run mostly waits for its backup, and a
 * run due while the previous one of its schedule goes on must be taken to be recorded skipped.
 */
const SCHEDULE_RUN_CONCURRENCY = 32;

/** The processors of the job catalog, one per file in worker/. */
function defaultProcessors(deps: JobDeps): Processors {
  return {
    'commit-backup': commitBackup(deps),
    'snapshot-shard': snapshotShard(deps),
    'commit-restore': commitRestore(deps),
    'restore-shard': restoreShard(deps),
  };
}

export function createWorker(deps: WorkerDeps): ShardvaultWorker {
  const { config } = deps;
  const logger = deps.logger.child({ role: 'worker' });
  const nodes = deps.nodes ?? config.workerNodes;
  const queues = [...COORDINATOR_QUEUES, ...nodes.map(nodeQueue), SCHEDULES_QUEUE];
  const control = createRedis(deps.redisUrl);
  control.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  const ops = new OperationStore(control);
  const jobDeps: JobDeps = {
    config,
    catalog: deps.catalog,
    shards: deps.shards,
    logger,
    ops,
    backends: deps.backends ?? configuredBackends(config, logger),
    transfers: new TransferSlots(availableParallelism()),
  };
  const processors = { ...defaultProcessors(jobDeps), ...deps.processors };
  assertProcessors(processors);

  /** Running shard jobs of this process: job id → its operation key and what aborts the run. */
  const running = new Map<string, { op: string; abort: AbortController }>();
  const workers: Worker[] = [];
  const connections: Redis[] = [control];
  let subscriber: Redis | undefined;
  let backups: BackupService | undefined;
  let stopping: Promise<void> | undefined;
  let stopTrim: (() => void) | undefined;

  const cancelOperation = (op: string) => {
    for (const [jobId, r] of running) {
      if (r.op !== op || r.abort.signal.aborted) continue;
      r.abort.abort(ABORT.cancel);
      logger.info({ job: jobId }, 'cancelling job');
    }
  };

  const lockLost = (jobIds: string[]) => {
    for (const jobId of jobIds) {
      const r = running.get(jobId);
      if (!r || r.abort.signal.aborted) continue;
      r.abort.abort(ABORT.lockLost);
      logger.warn({ job: jobId }, 'job lost its lock: stopping this run, the job runs again');
    }
  };

  function processorFor() {
    // Three declared parameters (no default values, which would not count): BullMQ passes the
    // AbortSignal only to processors declared with three.
    const run = async (job: Job, { op, shard }: { op: OperationRef; shard?: ShardRef }, token?: string, given?: AbortSignal): Promise<unknown> => {
      const name = job.name as JobName;
      const processor = processors[name] as ProcessorOf<JobName> | undefined;
      if (!processor || !(name in CATALOG)) throw new UnrecoverableError(`no processor for job ${job.name}`);
      const jobId = job.id!;
      const log = logger; // job, jobName, queue and operation come from logContext (below)
      // This run's own signal: BullMQ's (shutdown) or a cancel or a lost lock aborts it.
      const abort = new AbortController();
      const signal = abort.signal;
      if (given) {
        if (given.aborted) abort.abort(given.reason);
        else given.addEventListener('abort', () => abort.abort(given.reason), { once: true });
      }
      let poll: NodeJS.Timeout | undefined;
      let keepLock: NodeJS.Timeout | undefined;
      if (CATALOG[name].queue === 'node') {
        if (running.has(jobId) && token) {
          // Handed a job this process is still running: that earlier run's lock has expired.
          lockLost([jobId]);
          // BullMQ tracks a lock by job id, so when the earlier run ends it stops renewing this
          // run's lock too: renew it here for as long as this run goes on.
          keepLock = setInterval(() => void job.extendLock(token, LOCK_DURATION_MS).catch(() => undefined), LOCK_DURATION_MS / 4);
        }
        running.set(jobId, { op: operationKey(op), abort });
        poll = setInterval(() => {
          ops.stopReason(op).then(
            (why) => {
              if (why && !signal.aborted) abort.abort(ABORT.cancel);
            },
            () => undefined,
          );
        }, 1000);
      }
      log.info({ attempt: job.attemptsMade + 1 }, 'job started');
      try {
        const result = await processor(job as never, token, signal);
        if (signal.reason === ABORT.lockLost) throw new WaitingError(); // the result is the other run's to give
        log.info({ result }, 'job completed');
        return result;
      } catch (err) {
        if (signal.aborted && signal.reason === ABORT.lockLost) {
          // The job is no longer this run's: nothing to record, nothing to hand back.
          log.info('job run stopped: its lock was lost');
          throw new WaitingError();
        }
        if (err instanceof WaitingChildrenError) {
          log.info('job waits for its remaining children');
          throw err;
        }
        const message = err instanceof Error ? err.message : String(err);
        if (signal.aborted && signal.reason === ABORT.shutdown) {
          // Hand the job back without spending an attempt; another worker takes it.
          if (token) await job.moveToWait(token);
          log.warn('job aborted by shutdown and returned to its queue');
          throw new WaitingError();
        }
        if (err instanceof StoppedError) {
          log.info({ why: err.why }, 'job stopped');
          throw err;
        }
        if (signal.aborted && signal.reason === ABORT.cancel) {
          log.info('job cancelled');
          throw new StoppedError('cancel', message);
        }
        log.warn({ err: message }, 'job failed');
        const final = err instanceof UnrecoverableError || !retryCanHelp(err) || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
        // The operation's failure is this shard's: recorded before the coordinator hears of it.
        if (final && shard) await recordFailure(op, `${describeShard(shard)} failed: ${message}`);
        if (err instanceof UnrecoverableError || retryCanHelp(err)) throw err;
        throw new UnrecoverableError(message);
      } finally {
        if (poll) clearInterval(poll);
        if (keepLock) clearInterval(keepLock);
        if (running.get(jobId)?.abort === abort) running.delete(jobId);
      }
    };
    // Every line logged while a job runs, by the processors too, names the job and its operation
    // (`jobName`, as `name` is the logger's own).
    return (job: Job, token?: string, given?: AbortSignal): Promise<unknown> => {
      let ids: ReturnType<typeof parseJobId>;
      try {
        ids = parseJobId(job.id ?? '');
      } catch (err) {
        return Promise.reject(new UnrecoverableError((err as Error).message));
      }
      return logContext.run({ job: job.id, jobName: job.name, queue: job.queueName, operation: operationKey(ids.op) }, () => run(job, ids, token, given));
    };
  }

  /** First failure wins; a Redis that is away leaves the coordinator to name the failed shard. */
  async function recordFailure(op: OperationRef, error: string): Promise<void> {
    await ops.markFailing(op, error).catch((err: Error) => logger.warn({ err: err.message }, 'recording a shard failure'));
  }

  /** A coordinator that failed for good never gets to record it; record it here. */
  async function onFailed(job: Job | undefined, err: Error): Promise<void> {
    if (!job?.id || !(job.name === 'commit-backup' || job.name === 'commit-restore')) return;
    if (job.attemptsMade < (job.opts.attempts ?? 1) && !(err instanceof UnrecoverableError)) return;
    await ops.advance(parseJobId(job.id).op, 'FAILED', { error: `coordinator failed: ${err.message}` });
  }

  return {
    queues,
    async start() {
      stopTrim = startMemoryTrim(config.workerMemoryTrimBytes, logger);
      subscriber = createRedis(deps.redisUrl);
      connections.push(subscriber);
      subscriber.on('error', (err) => logger.warn({ err: err.message }, 'redis subscriber error'));
      subscriber.on('message', (_channel: string, op: string) => cancelOperation(op));
      await subscriber.subscribe(CANCEL_CHANNEL);
      backups = createBackupService({ config, catalog: deps.catalog, redis: control, logger, backends: jobDeps.backends });
      const scheduled = runSchedule({ schedules: new ScheduleStore(control), backups, logger });
      for (const queue of queues) {
        const connection = createRedis(deps.redisUrl);
        connections.push(connection);
        const isSchedules = queue === SCHEDULES_QUEUE;
        const processor = isSchedules
          ? (job: Job, token?: string, signal?: AbortSignal) =>
              logContext.run({ job: job.id, jobName: job.name, queue }, () => scheduled(job, token, signal ?? new AbortController().signal))
          : processorFor();
        const worker = new Worker(queue, processor, {
          connection,
          prefix: PREFIX,
          concurrency: isSchedules ? SCHEDULE_RUN_CONCURRENCY : config.workerConcurrency,
          lockDuration: LOCK_DURATION_MS,
          stalledInterval: STALLED_INTERVAL_MS,
          maxStalledCount: MAX_STALLED_COUNT,
          // Per-minute completed/failed counts, a week of them: /metrics' bullmq_job_*_total.
          metrics: { maxDataPoints: MetricsTime.ONE_WEEK },
          autorun: false,
        });
        worker.on('error', (err) => logger.warn({ queue, err: err.message }, 'worker error'));
        worker.on('lockRenewalFailed', lockLost);
        worker.on('failed', (job, err) => void onFailed(job, err).catch((e: Error) => logger.error({ err: e.message }, 'recording a failed coordinator')));
        workers.push(worker);
        void worker.run().catch((err: Error) => logger.error({ queue, err: err.message }, 'worker stopped'));
      }
      await Promise.all(workers.map((w) => w.waitUntilReady()));
      logger.info({ queues, concurrency: config.workerConcurrency }, 'worker ready');
    },
    stop() {
      stopping ??= (async () => {
        logger.info({ running: running.size }, 'worker stopping: no new jobs');
        const timer = setTimeout(() => {
          logger.warn({ running: running.size }, 'shutdown deadline passed: aborting running jobs');
          for (const w of workers) w.cancelAllJobs(ABORT.shutdown);
        }, config.workerShutdownMs);
        await Promise.all(workers.map((w) => w.close().catch((err: Error) => logger.warn({ err: err.message }, 'closing worker'))));
        clearTimeout(timer);
        await backups?.close();
        await Promise.all(connections.map((c) => c.quit().catch(() => c.disconnect())));
        stopTrim?.();
        logger.info('worker stopped');
      })();
      return stopping;
    },
  };
}
