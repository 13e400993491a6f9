/**
 * Redis restart mid-operation (issue 8, item 2). A cluster (API and two workers as processes)
 * over a redis-server with an append-only file; while a backup, then a restore, is
 * transferring, Redis is stopped (SIGTERM), left away for a while and started again on the
 * same port and directory. Shown:
 * - while Redis is away the API answers 503 in the error envelope, within a bounded time, on
 *   every endpoint that needs Redis (never 500, never a hang); liveness still answers 200,
 *   readiness 503; endpoints that need only the store keep answering;
 * - the workers reconnect by themselves and the operation ends SUCCESS, or FAILED with a
 *   reason, within a bounded time; a SUCCESS backup verifies OK and restores document for
 *   document; a SUCCESS restore is identical to its source.
 *
 * A frozen Redis (SIGSTOP: connections stay open, nothing answers) is shown the same way: the
 * API answers 503 once API_COMMAND_TIMEOUT_MS has passed.
 *
 * Short: a restart (3 s away) and a freeze (6 s), each during a backup and during a restore.
 * Long (SHARDVAULT_CHAOS=long): two more restarts, the last longer than the job lock
 * (LOCK_DURATION_MS), so jobs also go through BullMQ's stalled-job recovery.
 */
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_DURATION_MS } from '../../shared/jobs/catalog.ts';
import { readIndex, waitForStatus, type StatusBody } from '../support/backups.ts';
import { startCluster, type Cluster } from '../support/cluster.ts';
import { byMode, populate, recordFigures } from '../support/reliability.ts';
import { tempDir } from '../support/temp.ts';

const NODES = ['node-1', 'node-2', 'node-3'];
const BULK_DOCS = byMode({ short: 15_000, long: 30_000 });
/** The transfer rate of a shard job in this test (WORKER_MAX_BYTES_PER_SECOND). */
const BULK_BYTES_PER_SECOND = 512 * 1024;
/**
 * One round each (a backup and a restore per round): `restart` stops redis-server and starts
 * it again after `ms`; `freeze` stops it with SIGSTOP (connections stay open, nothing answers)
 * and resumes it with SIGCONT after `ms`.
 */
const OUTAGES = byMode<{ kind: 'restart' | 'freeze'; ms: number }[]>({
  short: [{ kind: 'restart', ms: 3000 }, { kind: 'freeze', ms: 6000 }],
  long: [
    { kind: 'restart', ms: 3000 },
    { kind: 'freeze', ms: 6000 },
    { kind: 'restart', ms: 6000 },
    { kind: 'restart', ms: LOCK_DURATION_MS + 6000 },
  ],
});
/** Longest any call may take while Redis is away. */
const ANSWER_WITHIN_MS = 8000;
/** Longest an operation may take to end once Redis is back. */
const SETTLE_MS = 120_000;

const final = (b: StatusBody) => ['SUCCESS', 'FAILED', 'CANCELED'].includes(b.status);

interface Probe {
  method: string;
  path: string;
  body?: unknown;
  /** What the endpoint must answer while Redis is away. */
  expect: number;
}

const figures = {
  outages: 0,
  outageMs: [] as number[],
  callsWhileAway: 0,
  answers503: 0,
  slowestAnswerMs: 0,
  backups: { SUCCESS: 0, FAILED: 0 } as Record<string, number>,
  restores: { SUCCESS: 0, FAILED: 0 } as Record<string, number>,
  failureReasons: [] as string[],
  documentsCompared: 0,
};

describe('Redis restart mid-operation', () => {
  const tmp = tempDir('shardvault-chaos-redis-');
  let A: Cluster;
  let reference: Map<string, string>;

  beforeAll(async () => {
    const dataDir = path.join(tmp.dir, 'data');
    await populate(dataDir, NODES, [{ name: 'Bulk', shards: 1, docs: BULK_DOCS, words: 80 }, { name: 'Small', shards: 3, docs: 600 }]);
    A = await startCluster({
      name: 'redis-restart',
      dataDir,
      nodes: NODES,
      backendEnv: { BACKUP_FILESYSTEM_PATH: path.join(tmp.dir, 'backups') },
      workers: 2,
      redisAppendonly: true,
      // Every outage must fall while the Bulk shard moves: held to a rate, its transfer lasts
      // seconds whatever the machine's speed (unthrottled it could end before the outage).
      env: { WORKER_MAX_BYTES_PER_SECOND: String(BULK_BYTES_PER_SECOND) },
    });
    reference = await readIndex(dataDir, NODES, 'Bulk');
  }, 180_000);

  afterAll(async () => {
    recordFigures('redis-restart', figures);
    await A?.stop();
    tmp.cleanup();
  });

  /** Stop (or freeze) Redis, check every endpoint while it is away, start (or resume) it after outageMs. */
  async function outage(kind: 'restart' | 'freeze', outageMs: number, probes: Probe[]): Promise<void> {
    let pid = 0;
    if (kind === 'freeze') {
      const client = new Redis(A.redis.url, { maxRetriesPerRequest: 1 });
      client.on('error', () => undefined);
      try {
        pid = Number(/process_id:(\d+)/.exec(await client.info('server'))?.[1]);
      } finally {
        client.disconnect();
      }
      expect(pid).toBeGreaterThan(0);
    }
    const started = Date.now();
    if (kind === 'freeze') process.kill(pid, 'SIGSTOP');
    else await A.redis.halt();
    figures.outages++;
    try {
      const answers = await Promise.all(
        probes.map(async (p) => {
          const t0 = Date.now();
          const res = await A.call(p.method, p.path, p.body, { timeoutMs: ANSWER_WITHIN_MS + 5000 }).catch((err: Error) => ({ status: 0, json: async () => err.message }));
          const ms = Date.now() - t0;
          return { ...p, status: res.status, ms, body: await res.json().catch(() => undefined) };
        }),
      );
      for (const a of answers) {
        figures.callsWhileAway++;
        figures.slowestAnswerMs = Math.max(figures.slowestAnswerMs, a.ms);
        if (a.status === 503) figures.answers503++;
        expect({ call: `${a.method} ${a.path}`, status: a.status }, JSON.stringify(a.body)).toEqual({ call: `${a.method} ${a.path}`, status: a.expect });
        expect(a.ms, `${a.method} ${a.path} answered within ${ANSWER_WITHIN_MS} ms`).toBeLessThan(ANSWER_WITHIN_MS);
        if (a.status === 503 && a.path.startsWith('/admin/queues')) {
          // bull-board's own error shape, saying why.
          expect(JSON.stringify(a.body), `${a.method} ${a.path}`).toMatch(/redis is unavailable/i);
        } else if (a.status === 503 && a.path !== '/v1/.well-known/ready') {
          expect(a.body, `${a.method} ${a.path}: the error envelope`).toEqual({ error: [{ message: expect.stringMatching(/redis/i) }] });
        }
      }
      expect(A.api.child.exitCode, 'the API is still running').toBeNull();
    } finally {
      const left = outageMs - (Date.now() - started);
      if (left > 0) await new Promise((r) => setTimeout(r, left));
      figures.outageMs.push(Date.now() - started);
      if (kind === 'freeze') process.kill(pid, 'SIGCONT');
      else await A.redis.restart();
    }
  }

  const probesFor = (id: string): Probe[] => [
    { method: 'GET', path: `/v1/backups/filesystem/${id}`, expect: 503 },
    { method: 'GET', path: `/v1/backups/filesystem/${id}/restore`, expect: 503 },
    { method: 'GET', path: '/v1/backups/filesystem', expect: 503 },
    { method: 'POST', path: '/v1/backups/filesystem', body: { id: `${id}-during-outage` }, expect: 503 },
    { method: 'POST', path: `/v1/backups/filesystem/${id}/restore`, body: {}, expect: 503 },
    { method: 'DELETE', path: `/v1/backups/filesystem/${id}-unknown`, expect: 503 },
    { method: 'GET', path: `/v1/backups/filesystem/${id}/verify`, expect: 503 },
    { method: 'GET', path: '/v1/.well-known/ready', expect: 503 },
    { method: 'GET', path: '/metrics', expect: 503 },
    { method: 'GET', path: '/admin/queues/api/queues', expect: 503 },
    // Liveness and the store's own endpoints do not need Redis.
    { method: 'GET', path: '/v1/.well-known/live', expect: 200 },
    { method: 'GET', path: '/v1/schema', expect: 200 },
    { method: 'GET', path: '/Small/:info', expect: 200 },
  ];

  it.each(OUTAGES.map((o, round) => ({ ...o, round })))(
    'round $round: Redis $kind, away for $ms ms mid-backup and mid-restore; the API answers 503, the operations end and restore exactly',
    async ({ kind, ms, round }) => {
      const id = `redis-${round}`;
      // Backup: Redis goes away while the Bulk shard is being written.
      const res = await A.call('POST', '/v1/backups/filesystem', { id, include: ['Bulk'] });
      expect(res.status, JSON.stringify(await res.json())).toBe(200);
      const mid = await waitForStatus(A.call, `/v1/backups/filesystem/${id}`, (b) => (b.progress?.docs ?? 0) > 0 || final(b), 60_000);
      expect(mid.status, 'the backup was still running when Redis went away').toBe('TRANSFERRING');
      await outage(kind, ms, probesFor(id));
      // The refused create started nothing, not even a half-recorded operation.
      expect((await A.call('GET', `/v1/backups/filesystem/${id}-during-outage`, undefined, { timeoutMs: 30_000 })).status).toBe(404);
      const done = await waitForStatus(A.call, `/v1/backups/filesystem/${id}`, final, SETTLE_MS);
      figures.backups[done.status] = (figures.backups[done.status] ?? 0) + 1;
      if (done.status !== 'SUCCESS') {
        expect(done.status).toBe('FAILED');
        expect(done.error, 'a FAILED backup says why').toBeTruthy();
        figures.failureReasons.push(done.error!);
        return;
      }
      const verified = (await (await A.call('GET', `/v1/backups/filesystem/${id}/verify`)).json()) as { status: string };
      expect(verified.status).toBe('OK');

      // Restore: Redis goes away while the Bulk shard is being staged.
      expect((await A.call('DELETE', '/v1/schema/Bulk')).status).toBe(200);
      const restore = await A.call('POST', `/v1/backups/filesystem/${id}/restore`, {});
      expect(restore.status, JSON.stringify(await restore.json())).toBe(200);
      await waitForStatus(A.call, `/v1/backups/filesystem/${id}/restore`, (b) => (b.progress?.docs ?? 0) > 0 || final(b), 60_000);
      await outage(kind, ms, probesFor(id));
      const restored = await waitForStatus(A.call, `/v1/backups/filesystem/${id}/restore`, final, SETTLE_MS);
      figures.restores[restored.status] = (figures.restores[restored.status] ?? 0) + 1;
      if (restored.status !== 'SUCCESS') {
        expect(restored.status).toBe('FAILED');
        expect(restored.error, 'a FAILED restore says why').toBeTruthy();
        figures.failureReasons.push(restored.error!);
        expect((await A.call('GET', '/v1/schema/Bulk')).status, 'a failed restore leaves no class').toBe(404);
        // Put the source back for the next round.
        const again = await A.call('POST', `/v1/backups/filesystem/${id}/restore`, {});
        expect(again.status).toBe(200);
        expect((await waitForStatus(A.call, `/v1/backups/filesystem/${id}/restore`, final, SETTLE_MS)).status).toBe('SUCCESS');
      }
      const now = await readIndex(A.dataDir, NODES, 'Bulk');
      expect(now.size).toBe(BULK_DOCS);
      expect(now).toEqual(reference);
      figures.documentsCompared += now.size;
    },
    360_000,
  );
});
