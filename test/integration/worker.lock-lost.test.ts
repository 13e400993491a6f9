/**
 * A shard job whose lock in Redis is lost while it runs (Redis away longer than the lock lasts,
 * or the worker stalled) is run again by BullMQ, which lets the first run go on. The first run
 * must stop — it would hold a transfer slot and bandwidth while the second does the same work —
 * and must not record a failure: the backup ends SUCCESS through the second run.
 *
 * The lock is lost two ways: it is taken over (its key holds another token), so this worker's
 * renewal fails (`lockRenewalFailed`); or it is deleted and BullMQ's stalled check hands the job
 * back to this same worker, whose renewal then succeeds under the new run's token.
 *
 * A restore's shard run that is stopped so must not touch what the run that took the job over
 * stages (a Redis kill of 16 s once failed a restore so, with ENOENT on the staged file, reported
 * as a corrupt chunk): each run stages on its own and removes only its own.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Worker, type Job } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { configuredBackends } from '../../shared/backups/backends.ts';
import { OperationStore } from '../../shared/backups/state.ts';
import { LocalCatalog } from '../../shared/cluster/catalog.ts';
import { LocalShardHost } from '../../shared/cluster/shard-host.ts';
import { stagedShardDir } from '../../shared/store/shard-files.ts';
import { CancelledError } from '../../shared/errors.ts';
import { ABORT, PREFIX, type ProcessorOf } from '../../shared/jobs/catalog.ts';
import { createLogger } from '../../shared/logger.ts';
import type { RedisServer } from '../../shared/redis-server.ts';
import { TransferSlots, type JobDeps } from '../../worker/deps.ts';
import { restoreShard } from '../../worker/restore-shard.ts';
import { snapshotShard } from '../../worker/snapshot-shard.ts';
import { createWorker, type ShardvaultWorker } from '../../worker/worker.ts';
import { createTestApi, type TestApi } from '../support/api.ts';
import { makeDoc, waitForStatus, type StatusBody } from '../support/backups.ts';
import { startTestRedis } from '../support/redis.ts';

let redis: RedisServer;
let t: TestApi;
let worker: ShardvaultWorker | undefined;
const final = (b: StatusBody) => ['SUCCESS', 'FAILED', 'CANCELED'].includes(b.status);

interface Run {
  job: Job;
  /** Why the run's signal was aborted, once it was. */
  reason?: unknown;
  /** Later runs of the same job started before this one was aborted. */
  rerunsWhenAborted?: number;
}

/**
 * A worker whose first run of the first shard job holds until its signal is aborted, and whose
 * second run of that job waits for `release` (when given); every other run is the real snapshot.
 */
async function startWorker(runs: Run[], release?: Promise<unknown>): Promise<ShardvaultWorker> {
  const real = snapshotShard(jobDeps());
  const snapshot: ProcessorOf<'snapshot-shard'> = async (job, token, signal) => {
    const run: Run = { job };
    runs.push(run);
    const held = runs[0]!.job.id === job.id;
    if (held && runs[0] !== run) await release;
    if (!held || runs[0] !== run) return real(job, token, signal);
    await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    run.reason = signal.reason;
    run.rerunsWhenAborted = runs.filter((r) => r.job.id === job.id).length - 1;
    throw new CancelledError('held run stopped');
  };
  return startWith({ 'snapshot-shard': snapshot });
}

const logger = createLogger('silent');

/** What a shard job's processor is given, as a worker gives it (over this test's store and Redis). */
function jobDeps(config = t.config, transfers = new TransferSlots(2)): JobDeps {
  return {
    config,
    catalog: new LocalCatalog(t.store),
    shards: new LocalShardHost(t.store),
    logger,
    ops: new OperationStore(t.redis),
    backends: configuredBackends(config, logger),
    transfers,
  };
}

async function startWith(processors: Parameters<typeof createWorker>[0]['processors']): Promise<ShardvaultWorker> {
  const w = createWorker({ config: t.config, logger, redisUrl: redis.url, catalog: new LocalCatalog(t.store), shards: new LocalShardHost(t.store), processors });
  await w.start();
  return w;
}

const lockKey = (job: Job) => `${PREFIX}:${job.queueName}:${job.id}:lock`;
const until = (check: () => void) => vi.waitFor(check, { timeout: 20_000, interval: 50 });

beforeAll(async () => {
  redis = await startTestRedis();
  t = createTestApi(redis.url);
  const results = await t.store.putDocuments('Locked', Array.from({ length: 300 }, (_, i) => makeDoc('Locked', i)));
  expect(results.every((r) => r.ok)).toBe(true);
}, 60_000);

afterEach(async () => {
  await worker?.stop();
  worker = undefined;
});

afterAll(async () => {
  await t?.close();
  await redis?.stop();
});

describe('a shard job that loses its lock', () => {
  it('taken over: the renewal fails, the run stops without a failure, the job runs again and the backup succeeds', async () => {
    const runs: Run[] = [];
    worker = await startWorker(runs);
    expect((await t.call('POST', '/v1/backups/filesystem', { id: 'taken', include: ['Locked'] })).status).toBe(200);
    await until(() => expect(runs.length).toBeGreaterThan(0));
    const held = runs[0]!;
    // Another holder's lock, which lapses on its own: until then the stalled check leaves the job
    // alone, so only the failed renewal can stop the held run.
    await t.redis.set(lockKey(held.job), 'another-worker', 'PX', 4_000);
    const done = await waitForStatus(t.call, '/v1/backups/filesystem/taken', final, 60_000);
    expect(held.reason).toBe(ABORT.lockLost);
    expect(held.rerunsWhenAborted, 'stopped by its failed renewal, before the job ran again').toBe(0);
    expect(runs.filter((r) => r.job.id === held.job.id)).toHaveLength(2);
    expect(done.status, JSON.stringify(done)).toBe('SUCCESS');
  }, 90_000);

  it('handed back to the same worker: the earlier run stops, the later one keeps its lock and completes the backup', async () => {
    const runs: Run[] = [];
    let releaseRerun = () => {};
    worker = await startWorker(runs, new Promise<void>((resolve) => (releaseRerun = resolve)));
    expect((await t.call('POST', '/v1/backups/filesystem', { id: 'again', include: ['Locked'] })).status).toBe(200);
    await until(() => expect(runs.length).toBeGreaterThan(0));
    const held = runs[0]!;
    // The lock gone and the job marked as seen stalled: one stalled check puts it back in its
    // queue at once (another process's check, as any worker's could be).
    const queue = held.job.queueName;
    await t.redis.del(lockKey(held.job), `${PREFIX}:${queue}:stalled-check`);
    await t.redis.sadd(`${PREFIX}:${queue}:stalled`, held.job.id!);
    const checker = new Worker(queue, null, { connection: { url: redis.url }, prefix: PREFIX, autorun: false });
    try {
      await checker['moveStalledJobsToWait'](); // what every worker runs each stalled interval
    } finally {
      await checker.close();
    }
    await until(() => expect(held.reason).toBe(ABORT.lockLost));
    expect(held.rerunsWhenAborted, 'stopped once the job was handed to it again').toBe(1);
    // The earlier run's end must not end the renewal of the later run's lock (10 s long).
    await new Promise((resolve) => setTimeout(resolve, 7_000));
    expect(await t.redis.pttl(lockKey(held.job)), 'the later run\'s lock is still renewed').toBeGreaterThan(4_000);
    releaseRerun();
    const done = await waitForStatus(t.call, '/v1/backups/filesystem/again', final, 60_000);
    expect(done.status, JSON.stringify(done)).toBe('SUCCESS');
    expect(runs.filter((r) => r.job.id === held.job.id)).toHaveLength(2);
  }, 90_000);

  // Shutdown too: a run stopped so is handed back to its queue, and another worker may have
  // taken the job up and staged it before the stopped run has finished failing.
  it.each([ABORT.lockLost, ABORT.shutdown])('a restore shard run stopped (%s) while the run that took the job over stages it leaves that staging whole', async (reason) => {
    const id = `to-restore-${reason}`;
    worker = await startWith({});
    expect((await t.call('POST', '/v1/backups/filesystem', { id, include: ['Locked'] })).status).toBe(200);
    expect((await waitForStatus(t.call, `/v1/backups/filesystem/${id}`, final, 60_000)).status).toBe('SUCCESS');
    await worker.stop();
    // The first run of the first shard job is the real one, slowed down so that it is still
    // writing when it is stopped; meanwhile the run that took the job over staged the shard whole.
    const transfers = new TransferSlots(2);
    const slow = restoreShard(jobDeps({ ...t.config, workerMaxBytesPerSecond: 16 * 1024 }, transfers));
    const fast = restoreShard(jobDeps(t.config, transfers));
    let first = true;
    let stopped: unknown;
    let staged: { whole: boolean; attemptsLeft: string[] } | undefined;
    worker = await startWith({
      'restore-shard': async (job, token, signal) => {
        if (!first) return fast(job, token, signal);
        first = false;
        const stop = new AbortController();
        const run = slow(job, token, stop.signal);
        run.catch(() => undefined);
        const dir = stagedShardDir(t.store.dataDir, job.data.op, job.data.node, job.data.index, job.data.shard);
        const attempts = () => (fs.existsSync(path.dirname(dir)) ? fs.readdirSync(path.dirname(dir)).filter((name) => name.startsWith(`${path.basename(dir)}.`)) : []);
        await until(() => expect(attempts().some((a) => fs.readdirSync(path.join(path.dirname(dir), a)).length > 0)).toBe(true));
        const result = await fast(job, token, signal);
        stop.abort(reason);
        stopped = await run.then(() => 'completed', (err: unknown) => err);
        staged = { whole: fs.existsSync(path.join(dir, 'data.mdb')), attemptsLeft: attempts() };
        return result;
      },
    });
    expect((await t.call('DELETE', '/v1/schema/Locked')).status).toBe(200);
    expect((await t.call('POST', `/v1/backups/filesystem/${id}/restore`, { include: ['Locked'] })).status).toBe(200);
    const done = await waitForStatus(t.call, `/v1/backups/filesystem/${id}/restore`, final, 60_000);
    expect(stopped, 'the slowed run was stopped, not completed').toBeInstanceOf(CancelledError);
    expect(staged, "the stopped run left the other run's staged shard, and nothing of its own").toEqual({ whole: true, attemptsLeft: [] });
    expect(done.status, JSON.stringify(done)).toBe('SUCCESS');
    expect(t.store.info('Locked').docs).toBe(300);
  }, 90_000);
});
