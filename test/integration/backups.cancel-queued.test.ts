/**
 * A cancel while an operation's shard jobs are still queued (every worker slot busy with other
 * work): the cancel removes them, and the coordinator cleans up and records CANCELED at once,
 * rather than after each queued job has waited for a slot to see the cancel. "Every slot busy"
 * is a worker that serves the coordinators' queues only, so shard jobs stay queued.
 */
import fs from 'node:fs';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCatalog } from '../../shared/cluster/catalog.ts';
import { LocalShardHost } from '../../shared/cluster/shard-host.ts';
import { nodeQueue, PREFIX } from '../../shared/jobs/catalog.ts';
import { createLogger } from '../../shared/logger.ts';
import type { RedisServer } from '../../shared/redis-server.ts';
import { createWorker, type ShardvaultWorker } from '../../worker/worker.ts';
import { createTestApi, type TestApi } from '../support/api.ts';
import { makeDoc, waitForStatus, type StatusBody } from '../support/backups.ts';
import { startTestRedis } from '../support/redis.ts';

let redis: RedisServer;
let t: TestApi;
const final = (b: StatusBody) => ['SUCCESS', 'FAILED', 'CANCELED'].includes(b.status);

function startWorker(nodes?: string[]): Promise<ShardvaultWorker> {
  const worker = createWorker({
    config: t.config,
    logger: createLogger('silent'),
    redisUrl: redis.url,
    catalog: new LocalCatalog(t.store),
    shards: new LocalShardHost(t.store),
    ...(nodes ? { nodes } : {}),
  });
  return worker.start().then(() => worker);
}

/** Jobs of `jobIdPrefix` waiting in every node's queue. */
async function queuedShardJobs(jobIdPrefix: string): Promise<string[]> {
  const ids: string[] = [];
  for (const node of t.config.nodes) {
    const queue = new Queue(nodeQueue(node), { connection: { url: redis.url }, prefix: PREFIX });
    ids.push(...(await queue.getJobs(['wait', 'delayed', 'prioritized'])).map((j) => j.id!).filter((id) => id.startsWith(jobIdPrefix)));
    await queue.close();
  }
  return ids;
}

beforeAll(async () => {
  redis = await startTestRedis();
  t = createTestApi(redis.url);
  const results = await t.store.putDocuments('Queued', Array.from({ length: 200 }, (_, i) => makeDoc('Queued', i)));
  expect(results.every((r) => r.ok)).toBe(true);
  // A backup to restore later, made while every queue is served.
  const full = await startWorker();
  expect((await t.call('POST', '/v1/backups/filesystem', { id: 'base', include: ['Queued'] })).status).toBe(200);
  expect((await waitForStatus(t.call, '/v1/backups/filesystem/base', final, 60_000)).status).toBe('SUCCESS');
  await full.stop();
}, 90_000);

afterAll(async () => {
  await t?.close();
  await redis?.stop();
});

describe('cancel with shard jobs still queued', () => {
  let coordinators: ShardvaultWorker;
  beforeAll(async () => {
    coordinators = await startWorker([]);
  });
  afterAll(async () => {
    await coordinators?.stop();
  });

  it('a backup: its queued shard jobs are removed and it is CANCELED at once, nothing left in the backend', async () => {
    expect((await t.call('POST', '/v1/backups/filesystem', { id: 'queued', include: ['Queued'] })).status).toBe(200);
    expect(await queuedShardJobs('backup.filesystem.queued.')).toHaveLength(t.config.nodes.length);
    expect((await t.call('DELETE', '/v1/backups/filesystem/queued')).status).toBe(204);
    const done = await waitForStatus(t.call, '/v1/backups/filesystem/queued', final, 20_000);
    expect(done.status, JSON.stringify(done)).toBe('CANCELED');
    expect(await queuedShardJobs('backup.filesystem.queued.')).toEqual([]);
    expect(fs.existsSync(`${t.config.backends.filesystem.path}/queued`)).toBe(false);
  }, 30_000);

  it('a restore: its queued shard jobs are removed and it is CANCELED at once, no class created', async () => {
    expect((await t.call('DELETE', '/Queued/')).status).toBe(200);
    expect((await t.call('POST', '/v1/backups/filesystem/base/restore', {})).status).toBe(200);
    expect(await queuedShardJobs('restore.filesystem.base.')).not.toEqual([]);
    expect((await t.call('DELETE', '/v1/backups/filesystem/base/restore')).status).toBe(204);
    const done = await waitForStatus(t.call, '/v1/backups/filesystem/base/restore', final, 20_000);
    expect(done.status, JSON.stringify(done)).toBe('CANCELED');
    expect(await queuedShardJobs('restore.filesystem.base.')).toEqual([]);
    expect(t.store.getIndex('Queued')).toBeUndefined();
  }, 30_000);
});
