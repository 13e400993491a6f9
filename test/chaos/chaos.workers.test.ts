/**
 * Worker crashes (issue 8, item 1). A cluster (API and three workers as processes, one
 * Redis, the filesystem backend) runs backups, then restores, while a chaos loop SIGKILLs a
 * random worker at random moments (seeded) and starts a replacement. Shown:
 * - every operation ends SUCCESS, or FAILED with a reason, within a bounded time after its
 *   phase started; none stays STARTED/TRANSFERRING/…;
 * - every SUCCESS backup verifies OK (every object matches its manifest);
 * - every SUCCESS restore is document for document identical to its source;
 * - nothing is left staged, and no class is left half-restored.
 *
 * Short (npm test): 4 backups and 2 restores, 4 kills. Long (npm run test:chaos): 20 backups
 * and 10 restores, 16 kills. SHARDVAULT_SEED replays the kill schedule (timings on a shared
 * machine still vary).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FilesystemBackend } from '../../shared/backends/filesystem.ts';
import { verifyBackup } from '../../shared/backups/verify.ts';
import { collectGarbage } from '../../shared/repository/collect.ts';
import { readIndex, waitForStatus, type StatusBody } from '../support/backups.ts';
import { filesUnder, startCluster, type Cluster } from '../support/cluster.ts';
import type { NodeProcess } from '../support/process.ts';
import { byMode, createRng, populate, recordFigures, seedFor, type Rng } from '../support/reliability.ts';
import { tempDir } from '../support/temp.ts';

const NODES = ['node-1', 'node-2', 'node-3'];
const CLASSES = ['Ant', 'Bee', 'Cat', 'Dog'];
const DOCS = 4000;
const PLAN = byMode({ short: { backups: 4, restores: 2, kills: 4 }, long: { backups: 20, restores: 10, kills: 16 } });
/** Longest an operation may take, counted from the start of its phase. */
const BOUND_MS = byMode({ short: 150_000, long: 600_000 });

const final = (b: StatusBody) => ['SUCCESS', 'FAILED', 'CANCELED'].includes(b.status);
const seed = seedFor('worker-crashes');

const figures = {
  seed,
  workers: 3,
  kills: 0,
  killsMidJob: 0,
  jobsInterrupted: 0,
  backups: {} as Record<string, number>,
  restores: {} as Record<string, number>,
  repairs: 0,
  failureReasons: [] as string[],
  verified: 0,
  documentsCompared: 0,
  leftoverTmpFiles: 0,
  slowestOperationMs: 0,
};

describe('worker crashes', () => {
  const tmp = tempDir('shardvault-chaos-workers-');
  let A: Cluster;
  let rng: Rng;
  const reference = new Map<string, Map<string, string>>();

  beforeAll(async () => {
    rng = createRng(seed);
    const dataDir = path.join(tmp.dir, 'data');
    await populate(dataDir, NODES, CLASSES.map((name) => ({ name, shards: 3, docs: DOCS, words: 40 })));
    for (const cls of CLASSES) reference.set(cls, await readIndex(dataDir, NODES, cls));
    A = await startCluster({
      name: 'chaos',
      dataDir,
      nodes: NODES,
      backendEnv: { BACKUP_FILESYSTEM_PATH: path.join(tmp.dir, 'backups') },
      workers: figures.workers,
    });
  }, 180_000);

  afterAll(async () => {
    recordFigures('worker-crashes', figures);
    await A?.stop();
    tmp.cleanup();
  });

  const alive = () => A.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
  /** Live workers that finished starting (a victim is one of these). */
  const ready = () => alive().filter((w) => w.output().includes('"msg":"worker ready"'));

  /** Job ids a worker has started and not yet finished, from its log. */
  function runningJobs(w: NodeProcess): string[] {
    const last = new Map<string, string>();
    for (const line of A.jobLines(w)) last.set(line.job, line.msg);
    return [...last].filter(([, msg]) => msg === 'job started').map(([job]) => job);
  }

  /**
   * Until `done()` or `budget` kills: at a random moment 0.2-1.5 s after the last kill, once
   * some worker is running a job (or after 10 s regardless), SIGKILL a random live worker —
   * three times in four one that is running a job at that moment — and start a replacement in
   * the background (waiting for it only when no other worker is ready). Answers when it stops.
   */
  async function chaos(budget: number, done: () => boolean): Promise<void> {
    const replacements: Promise<unknown>[] = [];
    for (let k = 0; k < budget && !done(); k++) {
      const earliest = Date.now() + rng.int(200, 1500);
      const latest = earliest + 10_000;
      const someoneBusy = () => ready().some((w) => runningJobs(w).length > 0);
      while (!done() && (Date.now() < earliest || (!someoneBusy() && Date.now() < latest))) await new Promise((r) => setTimeout(r, 25));
      if (done()) break;
      if (ready().length === 0) await Promise.all(replacements);
      const busy = ready().filter((w) => runningJobs(w).length > 0);
      const victim = busy.length > 0 && rng.chance(0.75) ? rng.pick(busy) : rng.pick(ready());
      const interrupted = runningJobs(victim);
      await victim.kill('SIGKILL');
      figures.kills++;
      if (interrupted.length > 0) figures.killsMidJob++;
      figures.jobsInterrupted += interrupted.length;
      const replacement = A.startWorker();
      replacements.push(replacement);
      if (ready().length === 0) await replacement;
    }
    await Promise.all(replacements);
  }

  /** Wait for an operation to end; it must within BOUND_MS of `since`. */
  async function settle(statusPath: string, since: number): Promise<StatusBody> {
    const done = await waitForStatus(A.call, statusPath, final, Math.max(1000, BOUND_MS - (Date.now() - since)));
    figures.slowestOperationMs = Math.max(figures.slowestOperationMs, Date.now() - since);
    if (done.status !== 'SUCCESS') {
      expect(done.status, `${statusPath}: ${JSON.stringify(done)}`).toBe('FAILED');
      expect(done.error, `${statusPath}: a FAILED operation says why`).toBeTruthy();
      figures.failureReasons.push(done.error!);
    }
    return done;
  }

  const succeeded: string[] = [];

  it(`${PLAN.backups} backups while workers are killed: each ends SUCCESS or FAILED with a reason, and each SUCCESS verifies`, async () => {
    const since = Date.now();
    const ids = Array.from({ length: PLAN.backups }, (_, i) => `chaos-${i}`);
    const finished = new Set<string>();
    const running = (async () => {
      await Promise.all(
        ids.map(async (id, i) => {
          // Staggered starts, so kills land at every stage of some backup.
          await new Promise((r) => setTimeout(r, i * rng.int(300, 1500)));
          const res = await A.call('POST', '/v1/backups/filesystem', { id, include: CLASSES });
          expect(res.status, `${id}: ${JSON.stringify(await res.json())}`).toBe(200);
          const done = await settle(`/v1/backups/filesystem/${id}`, since);
          figures.backups[done.status] = (figures.backups[done.status] ?? 0) + 1;
          if (done.status === 'SUCCESS') succeeded.push(id);
          finished.add(id);
        }),
      );
    })();
    await Promise.all([running, chaos(Math.ceil(PLAN.kills * 0.6), () => finished.size === ids.length)]);

    for (const id of succeeded) {
      const res = await A.call('GET', `/v1/backups/filesystem/${id}/verify`);
      const report = (await res.json()) as { status: string; objects: number; problems: unknown[] };
      expect(res.status, JSON.stringify(report)).toBe(200);
      expect(report, id).toMatchObject({ status: 'OK', objects: 1 + NODES.length + CLASSES.length * 3, problems: [] });
      figures.verified++;
    }
    expect(succeeded.length, 'at least one backup survived the chaos').toBeGreaterThan(0);
  }, BOUND_MS + 120_000);

  it(`${PLAN.restores} restores while workers are killed: each ends SUCCESS (identical to its source) or FAILED leaving nothing`, async () => {
    expect(succeeded.length).toBeGreaterThan(0);
    const since = Date.now();
    let finished = 0;

    /** Restore every class from one backup; a FAILED restore must leave nothing, and is repaired for the next one. */
    async function restore(id: string, repair = false): Promise<void> {
      for (const cls of CLASSES) expect((await A.call('DELETE', `/v1/schema/${cls}`)).status).toBe(200);
      const res = await A.call('POST', `/v1/backups/filesystem/${id}/restore`, {});
      expect(res.status, `${id}: ${JSON.stringify(await res.json())}`).toBe(200);
      const done = await settle(`/v1/backups/filesystem/${id}/restore`, since);
      if (repair) figures.repairs++;
      else figures.restores[done.status] = (figures.restores[done.status] ?? 0) + 1;
      if (done.status === 'SUCCESS') {
        for (const cls of CLASSES) {
          const now = await readIndex(A.dataDir, NODES, cls);
          expect(now.size, `${cls} from ${id}`).toBe(DOCS);
          expect(now, `${cls} from ${id}`).toEqual(reference.get(cls));
          figures.documentsCompared += now.size;
        }
        return;
      }
      for (const cls of CLASSES) expect((await A.call('GET', `/v1/schema/${cls}`)).status, `a FAILED restore leaves no ${cls}`).toBe(404);
      if (repair) throw new Error(`repairing from ${id} failed too: ${done.error}`);
      await restore(id, true);
    }

    const running = (async () => {
      // One at a time: each restore brings back every class.
      for (let j = 0; j < PLAN.restores; j++) {
        await restore(succeeded[j % succeeded.length]!);
        finished++;
      }
    })();
    await Promise.all([running, chaos(PLAN.kills - figures.kills, () => finished === PLAN.restores)]);

    for (const node of NODES) expect(fs.existsSync(path.join(A.dataDir, node, '.staging')), `${node}/.staging left behind`).toBe(false);
    // A write killed mid-way leaves its temporary file. A manifest's is removed by the retried
    // job's write of the same key; a pack's key is never written again, so garbage collection
    // sweeps it once it is stale (not written to for 5 s) — and keeps every backup whole.
    const backups = path.join(tmp.dir, 'backups');
    const temporaries = () => filesUnder(backups).filter((f) => f.endsWith('.tmp'));
    figures.leftoverTmpFiles = temporaries().length;
    const newest = Math.max(0, ...temporaries().map((f) => fs.statSync(path.join(backups, f)).mtimeMs));
    await new Promise((r) => setTimeout(r, Math.max(0, newest + 5_500 - Date.now())));
    const backend = new FilesystemBackend({ root: backups });
    await collectGarbage(backend, { owner: 'chaos test', staleMs: 0 });
    expect(temporaries(), 'temporaries of killed writes left after a garbage collection').toEqual([]);
    for (const id of succeeded) {
      expect(await verifyBackup(backend, 'filesystem', id), `${id} after the collection`).toMatchObject({ status: 'OK' });
    }
  }, BOUND_MS + 120_000);

  it('a key written again after its writer died removes the dead write\'s temporary file, not a live one', async () => {
    const root = path.join(tmp.dir, 'fs-unit');
    const backend = new FilesystemBackend({ root });
    const dir = path.join(root, 'b', 'node-1', 'Ant');
    fs.mkdirSync(dir, { recursive: true });
    const dead = path.join(dir, '0.0123456789ab.tmp');
    const live = path.join(dir, '0.ba9876543210.tmp');
    const other = path.join(dir, '1.0123456789ab.tmp');
    for (const f of [dead, live, other]) fs.writeFileSync(f, 'partial');
    const past = new Date(Date.now() - 60_000);
    fs.utimesSync(dead, past, past);
    fs.utimesSync(other, past, past);
    await backend.write('b/node-1/Ant/0', Readable.from([Buffer.from('whole')]));
    expect(fs.readFileSync(path.join(dir, '0'), 'utf8')).toBe('whole');
    expect(fs.existsSync(dead), 'the dead write of this key').toBe(false);
    expect(fs.existsSync(live), 'a write of this key still going on').toBe(true);
    expect(fs.existsSync(other), 'another key\'s').toBe(true);
  });
});
