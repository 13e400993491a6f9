/**
 * Backup schedules end to end, with real processes (issue 16): an API and two workers over
 * their own Redis and a filesystem backend; a second API replica for the duplicate check.
 *
 * - a schedule every 2 s with keepLast 3 runs at least six times while documents are written;
 *   exactly three backups remain, each restores to the documents as they were (in every
 *   shard a prefix of what was written to it, growing from one backup to the next), and nothing is left for the
 *   collector: the deleted backups' bytes went with them;
 * - two API replicas setting the same schedule make one scheduler and no duplicate run;
 * - a run due while the previous one still goes (a slow backup) is skipped and recorded so,
 *   and no two backups of the schedule overlap;
 * - a worker SIGKILLed while it runs a scheduled run: another worker takes the run over, it
 *   ends as its backup did (SUCCESS, the killed shard retried), one backup is made, and the
 *   schedule runs again afterwards.
 */
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectGarbage } from '../../shared/repository/collect.ts';
import { PREFIX, SCHEDULES_QUEUE } from '../../shared/jobs/catalog.ts';
import { freePort } from '../../shared/redis-server.ts';
import { shardFor } from '../../shared/store/hash.ts';
import { Store } from '../../shared/store/store.ts';
import { BACKEND_FIXTURES, type BackendFixture } from '../support/backend-fixtures.ts';
import { waitForStatus } from '../support/backups.ts';
import { startCluster, type Cluster } from '../support/cluster.ts';
import { spawnNode, type NodeProcess } from '../support/process.ts';
import { tempDir } from '../support/temp.ts';

const NODES = ['node-1', 'node-2', 'node-3'];
/** The slow index's one shard is read at this rate, so its backups take seconds. */
const BYTES_PER_SECOND = 2 * 1024 * 1024;

interface ScheduleBody {
  name: string;
  nextRunAt?: string;
  running?: string;
  lastRun?: { id: string; status: string; durationSeconds?: number };
  lastSuccess?: { id: string };
  lastSkip?: { id: string; status: string; error?: string };
  kept?: string[];
  runs: { SUCCESS: number; FAILED: number; CANCELED: number; SKIPPED: number };
}
interface ListItem {
  id: string;
  status: string;
  startedAt: string;
  completedAt?: string;
  schedule?: string;
}

const tmp = tempDir();
let fixture: BackendFixture;
let cluster: Cluster;
let schedules: Queue;
const extra: NodeProcess[] = [];

const docText = (n: number) => `entry ${n} `.repeat(20);

beforeAll(async () => {
  fixture = await BACKEND_FIXTURES.filesystem(tmp.dir);
  const dataDir = `${tmp.dir}/data`;
  const store = new Store({ dataDir, nodes: NODES });
  try {
    // About 8 MB in one shard: at BYTES_PER_SECOND a backup of it takes ~4 s.
    await store.createIndex('slow', { shards: 1 });
    for (let i = 0; i < 8000; i += 1000) {
      await store.putDocuments('slow', Array.from({ length: 1000 }, (_, j) => ({ _id: i + j, text: `${i + j} `.repeat(250) })));
    }
  } finally {
    await store.close();
  }
  cluster = await startCluster({ name: 'schedules', dataDir, nodes: NODES, backendEnv: fixture.env, workers: 2, env: { WORKER_MAX_BYTES_PER_SECOND: String(BYTES_PER_SECOND) } });
  schedules = new Queue(SCHEDULES_QUEUE, { connection: cluster.redisClient(), prefix: PREFIX });
}, 120_000);

afterAll(async () => {
  await schedules?.close();
  await Promise.all(extra.map((p) => p.kill('SIGTERM')));
  await cluster?.stop();
  await fixture?.stop();
  tmp.cleanup();
});

const get = async <T>(path: string): Promise<T> => (await cluster.call('GET', path)).json() as Promise<T>;
const schedule = (name: string) => get<ScheduleBody>(`/v1/backup-schedules/${name}`);
const mine = async (name: string) => (await get<ListItem[]>('/v1/backups/filesystem')).filter((b) => b.schedule === name);

async function until<T>(what: string, read: () => Promise<T>, done: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Stop a schedule's runs (a cron that is due once a year) and wait until none goes on; answers its state. */
async function pause(name: string, body: Record<string, unknown>): Promise<ScheduleBody> {
  expect((await cluster.call('PUT', `/v1/backup-schedules/${name}`, { ...body, every: undefined, cron: '0 0 1 1 *' })).status).toBe(200);
  await until('the scheduled runs to end', () => schedules.getActiveCount(), (n) => n === 0, 60_000);
  return schedule(name);
}

async function remove(name: string): Promise<void> {
  expect((await cluster.call('DELETE', `/v1/backup-schedules/${name}`)).status).toBe(204);
  expect((await cluster.call('GET', `/v1/backup-schedules/${name}`)).status).toBe(404);
}

describe('backup schedules with real processes', () => {
  it('runs every 2 s keeping the last 3: each kept backup restores as the source was, the others are collected', async () => {
    // Documents are written all along, so every backup sees a different prefix of the sequence.
    let written = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        const res = await cluster.call('PUT', `/ledger/${written}`, { n: written, text: docText(written) });
        expect([200, 201]).toContain(res.status);
        written++;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await until('the first document', async () => written, (n) => n > 0, 10_000);

    const often = { every: '2s', backend: 'filesystem', include: ['ledger'], config: { CompressionLevel: 'BestSpeed' }, retention: { keepLast: 3 } };
    const set = await cluster.call('PUT', '/v1/backup-schedules/often', often);
    expect(set.status).toBe(200);
    expect(await set.json()).toMatchObject({ name: 'often', every: '2s', timezone: 'UTC', idPrefix: 'often', retention: { keepLast: 3 } });

    const after = await until('six successful runs', () => schedule('often'), (s) => s.runs.SUCCESS >= 6, 90_000);
    expect(after.lastRun).toMatchObject({ status: 'SUCCESS', id: expect.stringMatching(/^often-\d{8}-\d{6}$/) });
    expect(after.lastRun!.durationSeconds).toBeGreaterThanOrEqual(0);
    expect(after.lastSuccess).toBeDefined();
    expect(Date.parse(after.nextRunAt!)).toBeGreaterThan(Date.now() - 2000);
    expect(after.kept).toHaveLength(3);
    expect((await cluster.call('GET', '/v1/backup-schedules')).status).toBe(200);
    writing = false;
    await writer;
    const final = await pause('often', often);

    const kept = await mine('often');
    expect(kept.map((b) => b.id).sort()).toEqual([...final.kept!].sort());
    expect(kept.map((b) => b.status)).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS']);
    // The deleted backups' chunks were collected by their deletes: nothing is left to collect.
    const leftover = await collectGarbage(fixture.backend, { owner: 'schedules test' });
    expect(leftover.packs).toBe(0);

    // Each kept backup restores what was written before its shards were copied, more with each
    // backup. Shards are copied by their own jobs, each under its own read transaction: every
    // shard holds a prefix of the documents written to it, but one shard may be copied a moment
    // after another and hold documents written after a missing one of its neighbour.
    expect((await cluster.call('DELETE', '/ledger')).status).toBe(200);
    let previous = -1;
    for (const b of kept.sort((x, y) => (x.startedAt < y.startedAt ? -1 : 1))) {
      expect((await cluster.call('POST', `/v1/backups/filesystem/${b.id}/restore`, { include: ['ledger'] })).status).toBe(200);
      expect((await waitForStatus(cluster.call, `/v1/backups/filesystem/${b.id}/restore`)).status).toBe('SUCCESS');
      const store = new Store({ dataDir: cluster.dataDir, nodes: NODES });
      let count: number;
      try {
        const { docs, shards } = store.info('ledger');
        count = docs;
        const ended = new Set<number>();
        let found = 0;
        for (let n = 0; n < written; n++) {
          const shard = shardFor(n, shards);
          if (!store.hasDocument('ledger', n)) {
            ended.add(shard);
            continue;
          }
          expect(ended.has(shard), `backup ${b.id}: document ${n} of shard ${shard} is there, an earlier one of that shard is not`).toBe(false);
          expect(store.getDocument('ledger', n)).toEqual({ _id: n, n, text: docText(n) });
          found++;
        }
        expect(found).toBe(count);
      } finally {
        await store.close();
      }
      expect(count).toBeGreaterThan(previous);
      previous = count;
      expect((await cluster.call('DELETE', '/ledger')).status).toBe(200);
    }
    await remove('often');
  }, 240_000);

  it('makes one scheduler and no duplicate run when two API replicas set the same schedule', async () => {
    const port = await freePort();
    const replica = spawnNode('api/main.ts', [], {
      REDIS_URL: cluster.redis.url, DATA_DIR: cluster.dataDir, CLUSTER_NODES: NODES.join(','), PORT: String(port), GRPC_PORT: '0', HOST: '127.0.0.1', ...fixture.env,
    });
    extra.push(replica);
    await replica.waitFor(/api listening/, 60_000);
    const body = { every: '1s', backend: 'filesystem', include: ['ledger'], idPrefix: 'twin' };
    const put = (base: string) => fetch(`${base}/v1/backup-schedules/twin`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await cluster.call('PUT', '/ledger/1', { n: 1, text: docText(1) });
    const before = await schedules.getJobSchedulersCount();
    const answers = await Promise.all([put(cluster.url), put(`http://127.0.0.1:${port}`), put(cluster.url)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(await schedules.getJobSchedulersCount()).toBe(before + 1);
    await until('four runs', () => schedule('twin'), (s) => s.runs.SUCCESS + s.runs.SKIPPED >= 4, 60_000);
    const state = await pause('twin', body);
    await remove('twin');
    // Each due time made one backup, counted once: a duplicate run (two jobs for one due time)
    // would run the same backup twice and count it twice.
    const success = (await mine('twin')).filter((b) => b.status === 'SUCCESS');
    expect(success.length).toBeGreaterThanOrEqual(2);
    expect(state.runs.SUCCESS).toBe(success.length);
    // One job per due time, each making the backup of its own second.
    const jobs = (await schedules.getJobs(['completed'])).filter((j) => j.data.schedule === 'twin' && (j.returnvalue as { status?: string }).status === 'SUCCESS');
    expect(jobs.map((j) => (j.returnvalue as { id: string }).id).sort()).toEqual(success.map((b) => b.id).sort());
  }, 120_000);

  it('skips a run due while the previous one still goes, and records it', async () => {
    const slow = { every: '1s', backend: 'filesystem', include: ['slow'] };
    const set = await cluster.call('PUT', '/v1/backup-schedules/slowpoke', slow);
    expect(set.status).toBe(200);
    const s = await until('a skipped run', () => schedule('slowpoke'), (b) => b.runs.SKIPPED >= 1 && b.runs.SUCCESS >= 1, 90_000);
    expect(s.lastSkip).toMatchObject({ status: 'SKIPPED', error: expect.stringMatching(/^the previous run \(backup slowpoke-\d{8}-\d{6}\) is still going$/) });
    const final = await pause('slowpoke', slow);
    expect(final.runs.SKIPPED).toBeGreaterThanOrEqual(1);
    const runs = (await mine('slowpoke')).sort((a, b) => (a.startedAt < b.startedAt ? -1 : 1));
    expect(runs.length).toBeGreaterThanOrEqual(1);
    for (let i = 1; i < runs.length; i++) expect(runs[i]!.startedAt >= runs[i - 1]!.completedAt!).toBe(true);
    await remove('slowpoke');
  }, 150_000);

  it('ends a run whose worker is SIGKILLed as its backup ended, with one backup, and runs again', async () => {
    const body = { cron: '0 0 1 1 *', backend: 'filesystem', include: ['slow'], idPrefix: 'killed' };
    expect((await cluster.call('PUT', '/v1/backup-schedules/killed', body)).status).toBe(200);
    const run = await cluster.call('POST', '/v1/backup-schedules/killed/run');
    expect(run.status).toBe(202);
    const { id } = (await run.json()) as { id: string };
    const runs = (w: NodeProcess) => cluster.jobLines(w).some((l) => l.msg === 'scheduled backup started' && l.job.startsWith('run:killed:'));
    const victim = await until('a worker to start the scheduled backup', async () => cluster.workers.find(runs), Boolean, 30_000);
    expect((await schedule('killed')).running).toBe(id);
    await victim!.kill('SIGKILL');
    cluster.workers.splice(cluster.workers.indexOf(victim!), 1);
    await cluster.startWorker();

    const s = await until('the run to be recorded', () => schedule('killed'), (b) => b.lastRun?.id === id && !b.running, 120_000);
    const backup = (await get<{ status: string }>(`/v1/backups/filesystem/${id}`)).status;
    expect(s.lastRun!.status).toBe(backup);
    expect(backup).toBe('SUCCESS');
    expect(s.runs).toMatchObject({ SUCCESS: 1, FAILED: 0, SKIPPED: 0 });
    expect((await mine('killed')).map((b) => b.id)).toEqual([id]);

    // Nothing is left claimed: the next run starts and succeeds.
    await new Promise((r) => setTimeout(r, 1000)); // backup ids are per second
    const again = (await (await cluster.call('POST', '/v1/backup-schedules/killed/run')).json()) as { id: string };
    expect(again.id).not.toBe(id);
    const next = await until('the second run', () => schedule('killed'), (b) => b.lastRun?.id === again.id && !b.running, 90_000);
    expect(next.lastRun!.status).toBe('SUCCESS');
    await remove('killed');
  }, 240_000);
});
