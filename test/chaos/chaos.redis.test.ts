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
 * A killed Redis (SIGKILL, `appendfsync everysec`) loses up to a second of writes. A killed
 * process alone loses less (what it wrote is the kernel's), so the test makes the loss certain:
 * it cuts the append-only file back (TestRedis.crash). Just before the kill a small backup ends
 * SUCCESS and the lost writes start at its SUCCESS (its coordinator's completion and all after
 * go too; when it took less than the second, all of it goes), and another backup starts, so
 * Redis loses its start. Shown besides: every operation still ends, or is not known at all (its
 * start lost: 404, nothing of it goes on, its id is free again); the backup SUCCESS before the
 * kill is listed SUCCESS, answers SUCCESS and verifies at once (the backend knows it); a failed
 * restore leaves no class and no staging. The kill mid-operation falls more than the lost second
 * after the operation started, so that it is known after.
 *
 * Short: a restart (3 s away), a freeze (6 s) and a kill (3 s), each during a backup and during
 * a restore. Long (SHARDVAULT_CHAOS=long): two more restarts, the last longer than the job lock
 * (LOCK_DURATION_MS), so jobs also go through BullMQ's stalled-job recovery, and a longer kill.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_DURATION_MS } from '../../shared/jobs/catalog.ts';
import { readIndex, waitForStatus, type StatusBody } from '../support/backups.ts';
import { startCluster, type Cluster } from '../support/cluster.ts';
import { respFragment } from '../support/redis.ts';
import { OperationStore } from '../../shared/backups/state.ts';
import { operationRef } from '../../shared/jobs/operation.ts';
import { byMode, populate, recordFigures } from '../support/reliability.ts';
import { tempDir } from '../support/temp.ts';

const NODES = ['node-1', 'node-2', 'node-3'];
const BULK_DOCS = byMode({ short: 15_000, long: 30_000 });
/** The transfer rate of a shard job in this test (WORKER_MAX_BYTES_PER_SECOND). */
const BULK_BYTES_PER_SECOND = 512 * 1024;
type OutageKind = 'restart' | 'freeze' | 'kill';
/**
 * One round each (a backup and a restore per round): `restart` stops redis-server and starts
 * it again after `ms`; `freeze` stops it with SIGSTOP (connections stay open, nothing answers)
 * and resumes it with SIGCONT after `ms`; `kill` kills it with SIGKILL, loses its last
 * LOST_WRITES_MS of writes, and starts it again on its append-only file after `ms`.
 */
const OUTAGES = byMode<{ kind: OutageKind; ms: number }[]>({
  short: [{ kind: 'restart', ms: 3000 }, { kind: 'freeze', ms: 6000 }, { kind: 'kill', ms: 3000 }],
  long: [
    { kind: 'restart', ms: 3000 },
    { kind: 'freeze', ms: 6000 },
    { kind: 'kill', ms: 3000 },
    { kind: 'restart', ms: 6000 },
    { kind: 'restart', ms: LOCK_DURATION_MS + 6000 },
    { kind: 'kill', ms: LOCK_DURATION_MS + 6000 },
  ],
});
/** What `appendfsync everysec` may lose: the writes of the last second before the kill. */
const LOST_WRITES_MS = 1000;
/** Longest any call may take while Redis is away. */
const ANSWER_WITHIN_MS = 8000;
/** Longest an operation may take to end once Redis is back. */
const SETTLE_MS = 120_000;

/** The Redis hash of a backup's state (shared/backups/state.ts). */
const stateKey = (id: string) => new OperationStore(undefined as never).key(operationRef('backup', 'filesystem', id));

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
  /** Kills: AOF bytes cut (the last second), and the backups SUCCESS just before, checked after. */
  aofBytesLost: [] as number[],
  /** What Redis still held, after the kill, of the backup that ended SUCCESS just before it. */
  successBeforeKill: { checked: 0, lostFromItsSuccess: 0, SUCCESS: 0, verifiedOK: 0, redisHeld: [] as string[] },
  /** Backups started just before the kill: how each ended (`unknown`: Redis lost its start). */
  startedBeforeKill: [] as string[],
};

describe('Redis restart mid-operation', () => {
  const tmp = tempDir('shardvault-chaos-redis-');
  let A: Cluster;
  let reference: Map<string, string>;
  let redis: Redis;

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
    // What the kill rounds assume: a second of writes is all a crash may lose.
    redis = A.redisClient();
    redis.on('error', () => undefined);
    expect(await redis.config('GET', 'appendfsync')).toEqual(['appendfsync', 'everysec']);
  }, 180_000);

  afterAll(async () => {
    recordFigures('redis-restart', figures);
    await A?.stop();
    tmp.cleanup();
  });

  /**
   * Stop (freeze, or kill) Redis, check every endpoint while it is away, start (or resume) it
   * after outageMs. A kill loses the last LOST_WRITES_MS of writes, from `loseFrom` on when a
   * write of that second holds it (TestRedis.crash).
   */
  async function outage(kind: OutageKind, outageMs: number, probes: Probe[], loseFrom?: Buffer): Promise<void> {
    let pid = 0;
    if (kind === 'freeze') {
      pid = await A.redis.pid();
      expect(pid).toBeGreaterThan(0);
    }
    const started = Date.now();
    if (kind === 'freeze') process.kill(pid, 'SIGSTOP');
    else if (kind === 'kill') {
      const { bytesLost, fromFound } = await A.redis.crash(LOST_WRITES_MS, loseFrom);
      figures.aofBytesLost.push(bytesLost);
      if (fromFound) figures.successBeforeKill.lostFromItsSuccess++;
    } else await A.redis.halt();
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

  /**
   * A backup that ended SUCCESS just before Redis was killed is known by the backend, whatever
   * Redis lost of it: once Redis is back it is listed SUCCESS, answers SUCCESS, and verifies.
   */
  async function checkSuccessBeforeKill(id: string): Promise<void> {
    figures.successBeforeKill.checked++;
    figures.successBeforeKill.redisHeld.push((await redis.hget(stateKey(id), 'status')) ?? 'nothing');
    const listed = (await (await A.call('GET', '/v1/backups/filesystem', undefined, { timeoutMs: 30_000 })).json()) as { id: string; status: string }[];
    expect(listed.find((b) => b.id === id)?.status, `${id} in the list`).toBe('SUCCESS');
    const status = (await (await A.call('GET', `/v1/backups/filesystem/${id}`, undefined, { timeoutMs: 30_000 })).json()) as StatusBody;
    expect(status.status, JSON.stringify(status)).toBe('SUCCESS');
    figures.successBeforeKill.SUCCESS++;
    const verified = (await (await A.call('GET', `/v1/backups/filesystem/${id}/verify`, undefined, { timeoutMs: 30_000 })).json()) as { status: string };
    expect(verified.status, JSON.stringify(verified)).toBe('OK');
    figures.successBeforeKill.verifiedOK++;
  }

  /** Let the operation just started get older than the writes a kill loses, so it is known after. */
  const pastLostWrites = () => new Promise((r) => setTimeout(r, LOST_WRITES_MS + 500));

  /**
   * A backup started just before the kill: whatever Redis lost of it, it ends (SUCCESS, which
   * verifies, or FAILED with a reason) or, when Redis lost its start, is not known (404) and
   * nothing of it goes on: its id is free, and a backup under it succeeds.
   */
  async function checkStartedBeforeKill(id: string): Promise<void> {
    const deadline = Date.now() + SETTLE_MS;
    // A run Redis forgot is stopped by its workers within a second or two; 404 is final after that.
    const unknownAfter = Date.now() + 10_000;
    let body: StatusBody | undefined;
    for (;;) {
      const res = await A.call('GET', `/v1/backups/filesystem/${id}`, undefined, { timeoutMs: 30_000 });
      expect([200, 404], `GET ${id}`).toContain(res.status);
      body = (await res.json()) as StatusBody;
      if (res.status === 404 && Date.now() > unknownAfter) break;
      if (res.status === 200 && final(body)) break;
      expect(Date.now(), `${id} ends within ${SETTLE_MS} ms: ${JSON.stringify(body)}`).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 200));
    }
    const outcome = final(body) ? body.status : 'unknown';
    figures.startedBeforeKill.push(outcome);
    if (outcome === 'SUCCESS') {
      const verified = (await (await A.call('GET', `/v1/backups/filesystem/${id}/verify`)).json()) as { status: string };
      expect(verified.status, JSON.stringify(verified)).toBe('OK');
    } else if (outcome === 'FAILED') {
      expect(body.error, 'a FAILED backup says why').toBeTruthy();
    } else {
      const listed = (await (await A.call('GET', '/v1/backups/filesystem')).json()) as { id: string }[];
      expect(listed.map((b) => b.id), 'a backup Redis forgot is not listed').not.toContain(id);
      const again = await A.call('POST', '/v1/backups/filesystem', { id, include: ['Small'] });
      expect(again.status, JSON.stringify(await again.json())).toBe(200);
      expect((await waitForStatus(A.call, `/v1/backups/filesystem/${id}`, final, SETTLE_MS)).status).toBe('SUCCESS');
      const verified = (await (await A.call('GET', `/v1/backups/filesystem/${id}/verify`)).json()) as { status: string };
      expect(verified.status, JSON.stringify(verified)).toBe('OK');
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
      if (kind === 'kill') await pastLostWrites();
      expect(mid.status, 'the backup was still running when Redis went away').toBe('TRANSFERRING');
      // Before a kill, a small backup ends SUCCESS: the second the kill loses holds its end.
      const before = `${id}-before-kill`;
      if (kind === 'kill') {
        const small = await A.call('POST', '/v1/backups/filesystem', { id: before, include: ['Small'] });
        expect(small.status, JSON.stringify(await small.json())).toBe(200);
        expect((await waitForStatus(A.call, `/v1/backups/filesystem/${before}`, final, 60_000)).status).toBe('SUCCESS');
        // And one starts: the kill falls in its first second, so Redis may lose any part of it.
        const lost = await A.call('POST', '/v1/backups/filesystem', { id: `${id}-started`, include: ['Small'] });
        expect(lost.status, JSON.stringify(await lost.json())).toBe(200);
      }
      // The second lost starts at that backup's SUCCESS (when it was recorded in that second).
      await outage(kind, ms, probesFor(id), respFragment(stateKey(before), 'status', 'SUCCESS'));
      if (kind === 'kill') {
        await checkSuccessBeforeKill(before);
        await checkStartedBeforeKill(`${id}-started`);
      }
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
      if (kind === 'kill') await pastLostWrites();
      await outage(kind, ms, probesFor(id));
      const restored = await waitForStatus(A.call, `/v1/backups/filesystem/${id}/restore`, final, SETTLE_MS);
      figures.restores[restored.status] = (figures.restores[restored.status] ?? 0) + 1;
      if (restored.status !== 'SUCCESS') {
        expect(restored.status).toBe('FAILED');
        expect(restored.error, 'a FAILED restore says why').toBeTruthy();
        figures.failureReasons.push(restored.error!);
        expect((await A.call('GET', '/v1/schema/Bulk')).status, 'a failed restore leaves no class').toBe(404);
        for (const node of NODES) expect(fs.existsSync(path.join(A.dataDir, node, '.staging')), `${node}/.staging left behind`).toBe(false);
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
