/**
 * Operations that can no longer end by themselves (issue 8, item 1: "never stuck in a
 * non-terminal state"): the two ways the chaos tests cannot provoke on demand, made directly.
 * - Redis went away between recording a backup and adding its jobs: the operation is STARTED
 *   with no coordinator job. Once ORPHAN_GRACE_MS has passed it reads FAILED, saying so, and
 *   its id can be used again; before that it is left alone (its jobs may be on their way).
 * - A coordinator that BullMQ failed without any shardvault worker seeing it (the stalled
 *   check fails a job that stalled too often and emits no `failed` event to the worker that ran
 *   it): the operation reads FAILED with the job's reason.
 */
import path from 'node:path';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ORPHAN_GRACE_MS } from '../../shared/backups/repair.ts';
import { OperationStore } from '../../shared/backups/state.ts';
import { PREFIX } from '../../shared/jobs/catalog.ts';
import { operationKey } from '../../shared/jobs/operation.ts';
import { createRedis } from '../../shared/redis.ts';
import type { RedisServer } from '../../shared/redis-server.ts';
import { createTestApi, type TestApi } from '../support/api.ts';
import { makeDoc } from '../support/backups.ts';
import { startTestRedis } from '../support/redis.ts';
import { recordFigures, until } from '../support/reliability.ts';

let redis: RedisServer;
let t: TestApi;
let ops: OperationStore;
const figures = { orphansFailed: 0, orphansLeftInGrace: 0, failedCoordinatorsRecorded: 0 };

/** What begin records for operation `id` started that long ago, where the API would have put it. */
const info = (id: string, startedAgoMs: number) => ({
  path: path.join(t.config.backends.filesystem.path, id),
  classes: ['Stuck'],
  startedAt: new Date(Date.now() - startedAgoMs).toISOString(),
  shardsTotal: 1,
  overrides: {},
});

beforeAll(async () => {
  redis = await startTestRedis();
  t = createTestApi(redis.url);
  ops = new OperationStore(t.redis);
  await t.store.putDocuments('Stuck', [makeDoc('Stuck', 1)]);
});

afterAll(async () => {
  recordFigures('stuck-operations', figures);
  await t?.api.stop();
  await t?.close();
  await redis?.stop();
});

describe('an operation that cannot end by itself', () => {
  it('with no coordinator job: left alone during the grace period, then FAILED saying why; the id is free again', async () => {
    expect(await ops.begin({ kind: 'backup', backend: 'filesystem', id: 'orphan-new' }, info('orphan-new', 0))).toBeUndefined();
    expect(await ops.begin({ kind: 'backup', backend: 'filesystem', id: 'orphan-old' }, info('orphan-old', ORPHAN_GRACE_MS + 1000))).toBeUndefined();

    const young = (await (await t.call('GET', '/v1/backups/filesystem/orphan-new')).json()) as { status: string };
    expect(young.status).toBe('STARTED');
    figures.orphansLeftInGrace++;

    const old = (await (await t.call('GET', '/v1/backups/filesystem/orphan-old')).json()) as { status: string; error?: string };
    expect(old).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/the backup was lost: its jobs do not exist/) });
    figures.orphansFailed++;
    const listed = (await (await t.call('GET', '/v1/backups/filesystem')).json()) as { id: string; status: string }[];
    expect(listed.find((b) => b.id === 'orphan-old')?.status).toBe('FAILED');
    // Nothing was written under that id, so it can be used again.
    expect((await t.call('POST', '/v1/backups/filesystem', { id: 'orphan-old' })).status).toBe(200);
  });

  it('whose coordinator BullMQ failed unseen: FAILED with the job\'s reason', async () => {
    const id = 'dead-coordinator';
    expect(await ops.begin({ kind: 'restore', backend: 'filesystem', id }, info(id, 0))).toBeUndefined();
    // A bare BullMQ worker, not shardvault's: it fails the coordinator job and records nothing.
    const connection = createRedis(redis.url);
    const queue = new Queue('restores', { connection, prefix: PREFIX });
    const worker = new Worker('restores', async () => {
      throw new UnrecoverableError('job stalled more than allowable limit');
    }, { connection: createRedis(redis.url), prefix: PREFIX });
    try {
      const job = await queue.add('commit-restore', {}, { jobId: operationKey({ kind: 'restore', backend: 'filesystem', id }), attempts: 1 });
      await until('the coordinator failed', async () => (await job.getState()) === 'failed', 30_000);
    } finally {
      await worker.close();
      await queue.close();
      connection.disconnect();
    }
    const status = (await (await t.call('GET', `/v1/backups/filesystem/${id}/restore`)).json()) as { status: string; error?: string };
    expect(status).toMatchObject({ status: 'FAILED', error: 'coordinator failed: job stalled more than allowable limit' });
    figures.failedCoordinatorsRecorded++;
  });
});
