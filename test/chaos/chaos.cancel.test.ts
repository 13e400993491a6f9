/**
 * Repeated cancels (issue 11, item 1). A cluster (API and two workers as processes, the
 * filesystem backend) runs backups and restores of a 6-shard class and cancels each at a
 * random moment (seeded): right after the request, or once bytes have moved. Shown:
 * - every cancelled operation ends CANCELED — or SUCCESS when it finished before the cancel
 *   reached it — within a bound; none stays CANCELLING;
 * - both worker processes are still alive after every round (a cancel never kills a worker);
 * - a cancelled restore leaves no class behind; after all of it a new backup runs to SUCCESS.
 *
 * Short (npm test): 6 backups and 4 restores. Long (npm run test:chaos): 30 and 20.
 * SHARDVAULT_SEED replays the choices of moments.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForStatus, type StatusBody } from '../support/backups.ts';
import { startCluster, type Cluster } from '../support/cluster.ts';
import { byMode, createRng, populate, recordFigures, seedFor, type Rng } from '../support/reliability.ts';
import { tempDir } from '../support/temp.ts';

const NODES = ['node-1', 'node-2', 'node-3'];
const PLAN = byMode({ short: { backups: 6, restores: 4 }, long: { backups: 30, restores: 20 } });
/** Longest a cancelled operation may take to end. */
const BOUND_MS = 60_000;

const final = (b: StatusBody) => ['SUCCESS', 'FAILED', 'CANCELED'].includes(b.status);
const seed = seedFor('repeated-cancels');

const figures = {
  seed,
  backups: {} as Record<string, number>,
  restores: {} as Record<string, number>,
  cancelledEarly: 0,
  cancelledMidTransfer: 0,
  slowestCancelMs: 0,
};

describe('repeated cancels', () => {
  const tmp = tempDir('shardvault-chaos-cancel-');
  let A: Cluster;
  let rng: Rng;

  beforeAll(async () => {
    rng = createRng(seed);
    const dataDir = path.join(tmp.dir, 'data');
    await populate(dataDir, NODES, [{ name: 'Big', shards: 6, docs: 20_000, words: 40 }]);
    A = await startCluster({
      name: 'cancel',
      dataDir,
      nodes: NODES,
      backendEnv: { BACKUP_FILESYSTEM_PATH: path.join(tmp.dir, 'backups') },
      workers: 2,
    });
  }, 180_000);

  afterAll(async () => {
    recordFigures('repeated-cancels', figures);
    await A?.stop();
    tmp.cleanup();
  });

  /** Alive, and never rescued by the process-level guard: an escaped error is a defect even when the process survives it. */
  const workersAlive = () =>
    A.workers.every((w) => w.child.exitCode === null && w.child.signalCode === null && !/uncaught exception|unhandled promise rejection/.test(w.output()));

  /** Cancel the operation at `statusPath` early or once bytes moved (seeded), then wait for its end. */
  async function cancelAtRandom(statusPath: string): Promise<StatusBody> {
    if (rng.next() < 0.5) {
      figures.cancelledEarly++;
    } else {
      figures.cancelledMidTransfer++;
      await waitForStatus(A.call, statusPath, (b) => (b.progress?.bytes ?? 0) > 0 || final(b), BOUND_MS);
    }
    const started = Date.now();
    const res = await A.call('DELETE', statusPath);
    // 204 while running; 422 when it had already ended (then it is SUCCESS).
    expect([204, 422]).toContain(res.status);
    const done = await waitForStatus(A.call, statusPath, final, BOUND_MS);
    figures.slowestCancelMs = Math.max(figures.slowestCancelMs, Date.now() - started);
    return done;
  }

  it('cancelled backups end CANCELED (or SUCCESS if they finished first) and every worker lives on', async () => {
    for (let i = 0; i < PLAN.backups; i++) {
      const id = `cancel-b-${i}`;
      const res = await A.call('POST', '/v1/backups/filesystem', { id, include: ['Big'] });
      expect(res.status, JSON.stringify(await res.json())).toBe(200);
      const done = await cancelAtRandom(`/v1/backups/filesystem/${id}`);
      figures.backups[done.status] = (figures.backups[done.status] ?? 0) + 1;
      expect(['CANCELED', 'SUCCESS'], `backup ${id}: ${JSON.stringify(done)}`).toContain(done.status);
      expect(workersAlive(), `a worker died during the cancel of ${id}`).toBe(true);
    }
  }, 600_000);

  it('cancelled restores end CANCELED (or SUCCESS) leaving no class behind, and every worker lives on', async () => {
    const base = 'cancel-base';
    expect((await A.call('POST', '/v1/backups/filesystem', { id: base, include: ['Big'] })).status).toBe(200);
    expect((await waitForStatus(A.call, `/v1/backups/filesystem/${base}`, final, BOUND_MS)).status).toBe('SUCCESS');
    expect((await A.call('DELETE', '/v1/schema/Big')).status).toBe(200);
    for (let i = 0; i < PLAN.restores; i++) {
      const res = await A.call('POST', `/v1/backups/filesystem/${base}/restore`, {});
      expect(res.status, JSON.stringify(await res.json())).toBe(200);
      const done = await cancelAtRandom(`/v1/backups/filesystem/${base}/restore`);
      figures.restores[done.status] = (figures.restores[done.status] ?? 0) + 1;
      expect(['CANCELED', 'SUCCESS'], `restore ${i}: ${JSON.stringify(done)}`).toContain(done.status);
      expect(workersAlive(), `a worker died during the cancel of restore ${i}`).toBe(true);
      const cls = await A.call('GET', '/v1/schema/Big');
      if (done.status === 'CANCELED') expect(cls.status, 'a cancelled restore leaves no class').toBe(404);
      else expect((await A.call('DELETE', '/v1/schema/Big')).status).toBe(200);
    }
  }, 600_000);

  it('after all the cancels, a new backup runs to SUCCESS', async () => {
    expect((await A.call('POST', '/v1/backups/filesystem/cancel-base/restore', {})).status).toBe(200);
    expect((await waitForStatus(A.call, '/v1/backups/filesystem/cancel-base/restore', final, BOUND_MS)).status).toBe('SUCCESS');
    expect((await A.call('POST', '/v1/backups/filesystem', { id: 'after-cancels', include: ['Big'] })).status).toBe(200);
    const done = await waitForStatus(A.call, '/v1/backups/filesystem/after-cancels', final, BOUND_MS);
    expect(done.status, JSON.stringify(done)).toBe('SUCCESS');
    expect(workersAlive()).toBe(true);
  }, 180_000);
});
