/**
 * Structured logs: every line a worker logs while a job runs (the processors' own lines too)
 * names the job, its queue and its operation; every line logged while the API handles a
 * request carries the request id it answers in x-request-id; LOG_LEVEL filters.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi } from '../../api/app.ts';
import { LocalCatalog } from '../../shared/cluster/catalog.ts';
import { LocalShardHost } from '../../shared/cluster/shard-host.ts';
import { LocalData } from '../../shared/cluster/data.ts';
import { createLogger } from '../../shared/logger.ts';
import type { RedisServer } from '../../shared/redis-server.ts';
import { createWorker, type ShardvaultWorker } from '../../worker/worker.ts';
import { createTestApi, type TestApi } from '../support/api.ts';
import { makeDoc, waitForStatus } from '../support/backups.ts';
import { startTestRedis } from '../support/redis.ts';

type Line = Record<string, unknown> & { msg: string; level: number };

function memoryLogger(level = 'info') {
  const lines: Line[] = [];
  const raw: string[] = [];
  let partial = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      partial += String(chunk);
      const parts = partial.split('\n');
      partial = parts.pop()!;
      for (const p of parts) {
        if (!p) continue;
        raw.push(p);
        lines.push(JSON.parse(p) as Line);
      }
      cb();
    },
  });
  return { logger: createLogger(level, 'test', stream), lines, raw };
}

let redis: RedisServer;
let t: TestApi;
let worker: ShardvaultWorker;
const workerLog = memoryLogger('debug');
const apiLog = memoryLogger('info');

beforeAll(async () => {
  redis = await startTestRedis();
  t = createTestApi(redis.url);
  worker = createWorker({ config: t.config, logger: workerLog.logger, redisUrl: redis.url, catalog: new LocalCatalog(t.store), shards: new LocalShardHost(t.store) });
  await worker.start();
  await t.store.putDocuments('Logged', Array.from({ length: 50 }, (_, i) => makeDoc('Logged', i)));
});

afterAll(async () => {
  await worker?.stop();
  await t?.close();
  await redis?.stop();
});

describe('logs', () => {
  it('name the job, queue and operation on every line logged while a job runs', async () => {
    const api = createApi({ config: t.config, data: new LocalData(t.store), redis: t.redis, logger: apiLog.logger });
    const call = async (method: string, path: string, body?: unknown) =>
      api.app.request(path, { method, headers: { 'content-type': 'application/json', 'x-request-id': 'req-logs-1' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const res = await call('POST', '/v1/backups/filesystem', { id: 'logged-1' });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('req-logs-1');
    expect((await waitForStatus(call, '/v1/backups/filesystem/logged-1')).status).toBe('SUCCESS');
    await api.stop();

    const operation = 'backup.filesystem.logged-1';
    const jobLines = workerLog.lines.filter((l) => l.operation === operation);
    const committed = jobLines.find((l) => l.msg === 'backup committed');
    expect(committed).toMatchObject({ job: operation, jobName: 'commit-backup', queue: 'backups', operation, backup: 'logged-1' });
    const shards = jobLines.filter((l) => l.msg === 'shard snapshot written');
    expect(shards).toHaveLength(3);
    for (const line of shards) {
      expect(line.job).toMatch(new RegExp(`^${operation.replace(/\./g, '\\.')}\\.node-\\d\\.Logged\\.\\d$`));
      expect(line).toMatchObject({ jobName: 'snapshot-shard', queue: expect.stringMatching(/^node-node-\d$/) });
    }
    for (const msg of ['job started', 'job completed']) {
      const lines = jobLines.filter((l) => l.msg === msg);
      expect(lines.length, msg).toBeGreaterThanOrEqual(4);
      for (const l of lines) expect(l).toMatchObject({ job: expect.any(String), jobName: expect.any(String), queue: expect.any(String), operation });
    }
    // No key twice on one line (JSON.parse would hide it: look at the text).
    for (const text of workerLog.raw) {
      for (const key of ['name', 'job', 'jobName', 'queue', 'operation']) expect(text.split(`"${key}":`).length, text).toBeLessThanOrEqual(2);
    }
    // Lines outside a job carry none of it.
    expect(workerLog.lines.find((l) => l.msg === 'worker ready')).not.toHaveProperty('job');

    // The API's lines while handling the request carry its id.
    expect(apiLog.lines.find((l) => l.msg === 'backup started')).toMatchObject({ reqId: 'req-logs-1', backup: 'logged-1' });
    expect(apiLog.lines.find((l) => l.msg === 'request' && l.path === '/v1/backups/filesystem')).toMatchObject({ reqId: 'req-logs-1', status: 200 });
  });

  it('honours the level', () => {
    const quiet = memoryLogger('warn');
    quiet.logger.info('not shown');
    quiet.logger.warn('shown');
    quiet.logger.flush();
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        expect(quiet.lines.map((l) => l.msg)).toEqual(['shown']);
        resolve();
      }),
    );
  });
});
