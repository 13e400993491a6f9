/**
 * Backups and restores end to end, with real processes (issue 3, "How it is shown"): one
 * cluster of an API and two workers over its own Redis, a second cluster with other node
 * names, and a 2-node cluster, all sharing one backup backend.
 *
 * The backend is a parameter: SHARDVAULT_E2E_BACKENDS (default: all three) picks fixtures from
 * test/support/backend-fixtures.ts; S3 and GCS run the same scenarios on their own servers.
 *
 * "Mid-job" moments come from data size and rate, not sleeps: `Bulk` is one shard of BULK_DOCS
 * documents (~20 MB), which cluster A's workers snapshot and cluster B's worker restores at
 * BULK_BYTES_PER_SECOND (WORKER_MAX_BYTES_PER_SECOND) — a repository stores an unchanged shard
 * again at almost no cost, and restores one of this size in a fraction of a second, so size
 * alone would keep neither running long enough to be caught mid-shard.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, BackendName } from '../../shared/backends/index.ts';
import { Store } from '../../shared/store/store.ts';
import { selectedBackends, type BackendFixture } from '../support/backend-fixtures.ts';
import { isConsistent, makeDoc, readIndex, waitForStatus, type StatusBody } from '../support/backups.ts';
import { filesUnder, startCluster, type Cluster } from '../support/cluster.ts';
import { tempDir } from '../support/temp.ts';

const CLASSES = ['Apple', 'Banana', 'Cherry'];
const DOCS_PER_CLASS = 1500;
const BULK_DOCS = 25_000;
const BULK_BYTES_PER_SECOND = 4 * 1024 * 1024;
const NODES_A = ['node-1', 'node-2', 'node-3'];
const NODES_B = ['alpha', 'beta', 'gamma'];

const BACKENDS = selectedBackends();

const WORDS = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua'.split(' ');

/** Classes of DOCS_PER_CLASS documents over three shards, and Bulk: one big shard (on node-1). */
async function populate(dataDir: string, nodes: string[]): Promise<void> {
  const store = new Store({ dataDir, nodes });
  try {
    for (const cls of CLASSES) {
      for (let i = 0; i < DOCS_PER_CLASS; i += 500) {
        const results = await store.putDocuments(cls, Array.from({ length: 500 }, (_, j) => makeDoc(cls, i + j)));
        expect(results.every((r) => r.ok)).toBe(true);
      }
    }
    await store.putMetadata('Cherry', 'color', 'red');
    await store.createIndex('Bulk', { shards: 1 });
    let seed = 7;
    const word = () => WORDS[(seed = (seed * 1103515245 + 12345) & 0x7fffffff) % WORDS.length]!;
    for (let i = 0; i < BULK_DOCS; i += 1000) {
      const docs = Array.from({ length: 1000 }, (_, j) => ({ _id: `bulk-${String(i + j).padStart(7, '0')}`, n: i + j, text: Array.from({ length: 100 }, word).join(' ') }));
      const results = await store.putDocuments('Bulk', docs);
      expect(results.every((r) => r.ok)).toBe(true);
    }
  } finally {
    await store.close();
  }
}

async function objectKeys(backend: Backend, prefix: string): Promise<string[]> {
  return (await backend.list(prefix)).map((o) => o.key);
}

async function readObject(backend: Backend, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await backend.read(key)) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

const json = async <T = StatusBody>(res: { json(): Promise<unknown> }) => (await res.json()) as T;
const final = (b: StatusBody) => ['SUCCESS', 'FAILED', 'CANCELED'].includes(b.status);

/** Resolves once `check` holds, polling; fails after timeoutMs with `what`. */
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe.each(BACKENDS)('backups end to end on $name', ({ make }) => {
  const tmp = tempDir('shardvault-e2e-');
  let fixture: BackendFixture;
  let A: Cluster;
  let B: Cluster;
  const started: Cluster[] = [];
  let backendName: BackendName;
  /** What the main backup holds of each class: cluster A's documents after the first restore. */
  const reference = new Map<string, Map<string, string>>();

  beforeAll(async () => {
    fixture = await make(tmp.dir);
    backendName = fixture.name;
    const dataA = path.join(tmp.dir, 'data-a');
    await populate(dataA, NODES_A);
    // A short shutdown deadline, so a SIGTERMed worker hands its running job back quickly.
    A = await startCluster({ name: 'A', dataDir: dataA, nodes: NODES_A, backendEnv: fixture.env, workers: 2, env: { WORKER_SHUTDOWN_SECONDS: '1', WORKER_MAX_BYTES_PER_SECOND: String(BULK_BYTES_PER_SECOND) } });
    started.push(A);
  }, 180_000);

  afterAll(async () => {
    await Promise.all(started.map((c) => c.stop()));
    await fixture?.stop();
    tmp.cleanup();
  });

  it('backs up three classes while writes continue, and restores every document exactly', async () => {
    // A writer keeps adding documents through the API for the whole backup.
    const written = new Map<string, { cls: string; before: boolean }>();
    let backupSent = false;
    let writing = true;
    const writer = (async () => {
      for (let n = 0; writing; n++) {
        const cls = CLASSES[n % 3]!;
        const doc = makeDoc(cls, 100_000 + n);
        const { _id, ...body } = doc;
        const before = !backupSent;
        const res = await A.call('PUT', `/${cls}/${String(_id)}`, body);
        expect(res.status).toBeLessThan(300);
        written.set(String(_id), { cls, before });
      }
    })();
    await until('the writer has written', () => written.size >= 20);

    backupSent = true;
    const res = await A.call('POST', `/v1/backups/${backendName}`, { id: 'e2e-main', include: CLASSES });
    const startedBody = await json<Record<string, unknown>>(res);
    expect(res.status, JSON.stringify(startedBody)).toBe(200);
    expect(startedBody).toMatchObject({ id: 'e2e-main', backend: backendName, classes: CLASSES, status: 'STARTED' });
    const done = await waitForStatus(A.call, `/v1/backups/${backendName}/e2e-main`, final, 90_000);
    const writtenDuring = [...written.values()].filter((w) => !w.before).length;
    writing = false;
    await writer;
    expect(done.status, JSON.stringify(done)).toBe('SUCCESS');
    expect(writtenDuring, 'documents written while the backup ran').toBeGreaterThan(0);
    expect(done.progress).toMatchObject({ shardsDone: 9, shardsTotal: 9 });

    const before = new Map<string, Map<string, string>>();
    for (const cls of CLASSES) before.set(cls, await readIndex(A.dataDir, NODES_A, cls));
    for (const cls of CLASSES) expect((await A.call('DELETE', `/v1/schema/${cls}`)).status).toBe(200);
    expect((await A.call('GET', '/v1/schema/Apple')).status).toBe(404);

    const restore = await A.call('POST', `/v1/backups/${backendName}/e2e-main/restore`, {});
    expect(restore.status, JSON.stringify(await json(restore))).toBe(200);
    const restored = await waitForStatus(A.call, `/v1/backups/${backendName}/e2e-main/restore`, final, 90_000);
    expect(restored.status, JSON.stringify(restored)).toBe('SUCCESS');

    for (const cls of CLASSES) {
      const now = await readIndex(A.dataDir, NODES_A, cls);
      const ref = before.get(cls)!;
      reference.set(cls, now);
      // Every document written before the backup started comes back identical…
      for (let i = 0; i < DOCS_PER_CLASS; i++) {
        const id = String(makeDoc(cls, i)._id);
        expect(now.get(id), `${cls} ${id}`).toBe(ref.get(id));
      }
      for (const [id, w] of written) if (w.cls === cls && w.before) expect(now.get(id), `${cls} ${id}`).toBe(ref.get(id));
      // …and anything else that came back is exactly what was written, never a torn document.
      for (const [id, text] of now) {
        expect(text, `${cls} ${id}`).toBe(ref.get(id));
        expect(isConsistent(JSON.parse(text)), `${cls} ${id} consistent`).toBe(true);
      }
    }
    const meta = await A.call('GET', '/Cherry/:metadata/color');
    expect(await meta.json()).toBe('red');
  }, 180_000);

  it('restores into a second cluster with other node names and a node_mapping', async () => {
    B = await startCluster({ name: 'B', dataDir: path.join(tmp.dir, 'data-b'), nodes: NODES_B, backendEnv: fixture.env, workers: 1, env: { WORKER_MAX_BYTES_PER_SECOND: String(BULK_BYTES_PER_SECOND) } });
    started.push(B);
    const res = await B.call('POST', `/v1/backups/${backendName}/e2e-main/restore`, {
      node_mapping: { 'node-1': 'gamma', 'node-2': 'alpha' },
    });
    expect(res.status, JSON.stringify(await json(res))).toBe(200);
    const done = await waitForStatus(B.call, `/v1/backups/${backendName}/e2e-main/restore`, final, 90_000);
    expect(done.status, JSON.stringify(done)).toBe('SUCCESS');

    const store = new Store({ dataDir: B.dataDir, nodes: NODES_B });
    try {
      // node-1 → gamma, node-2 → alpha (named), node-3 → beta (the one left).
      for (const cls of CLASSES) expect(store.requireIndex(cls).placement).toEqual(['gamma', 'alpha', 'beta']);
    } finally {
      await store.close();
    }
    for (const cls of CLASSES) expect(await readIndex(B.dataDir, NODES_B, cls)).toEqual(reference.get(cls));
  }, 120_000);

  it('refuses a restore into a 2-node cluster before anything is written', async () => {
    const dataC = path.join(tmp.dir, 'data-c');
    const C = await startCluster({ name: 'C', dataDir: dataC, nodes: ['x', 'y'], backendEnv: fixture.env, workers: 0 });
    started.push(C);
    const res = await C.call('POST', `/v1/backups/${backendName}/e2e-main/restore`, {});
    const body = await json<{ error: { message: string }[] }>(res);
    expect(res.status).toBe(422);
    expect(body.error[0]!.message).toMatch(/taken on 3 nodes .* this cluster has 2/);
    expect((await json<{ classes: unknown[] }>(await C.call('GET', '/v1/schema'))).classes).toEqual([]);
    expect(fs.readdirSync(dataC).filter((d) => d !== '_cluster')).toEqual([]);
    expect((await C.call('GET', `/v1/backups/${backendName}/e2e-main/restore`)).status).toBe(404);
    await C.stop();
  }, 120_000);

  it('answers 422 while a class exists, for bad include/exclude/id/backend, and 404 for an unknown backup', async () => {
    const expect422 = async (p: string, body: unknown, message: RegExp) => {
      const res = await A.call('POST', p, body);
      expect(res.status).toBe(422);
      expect((await json<{ error: { message: string }[] }>(res)).error[0]!.message).toMatch(message);
    };
    await expect422(`/v1/backups/${backendName}/e2e-main/restore`, {}, /"Apple", "Banana", "Cherry" already exist/);
    await expect422(`/v1/backups/${backendName}/e2e-main/restore`, { include: ['Bulk'] }, /class "Bulk" does not exist in backup "e2e-main"/);
    await expect422(`/v1/backups/${backendName}/e2e-main/restore`, { include: ['Apple'], exclude: ['Banana'] }, /mutually exclusive/);
    await expect422(`/v1/backups/${backendName}/E2E/restore`, {}, /invalid backup id "E2E"/);
    await expect422('/v1/backups/tape/e2e-main/restore', {}, /unknown backend "tape"/);
    await expect422(`/v1/backups/${backendName}`, { id: 'e2e-main' }, /already exists/);
    const missing = await A.call('POST', `/v1/backups/${backendName}/no-such-backup/restore`, {});
    expect(missing.status).toBe(404);
    expect((await A.call('GET', `/v1/backups/${backendName}/no-such-backup`)).status).toBe(404);
  });

  it('finishes a backup whose worker is killed with SIGKILL mid-shard, and restores it exactly', async () => {
    const jobId = `backup.${backendName}.e2e-kill.node-1.Bulk.0`;
    const res = await A.call('POST', `/v1/backups/${backendName}`, { id: 'e2e-kill', include: ['Bulk'] });
    expect(res.status, JSON.stringify(await json(res))).toBe(200);
    const startedBy = (w: (typeof A.workers)[number], msg: string) => A.jobLines(w).some((l) => l.job === jobId && l.msg === msg);
    await until('a worker runs the Bulk snapshot', () => A.workers.some((w) => startedBy(w, 'job started')));
    await waitForStatus(A.call, `/v1/backups/${backendName}/e2e-kill`, (b) => (b.progress?.docs ?? 0) > 0 || final(b));
    const victim = A.workers.find((w) => startedBy(w, 'job started') && !startedBy(w, 'job completed'));
    expect(victim, `the Bulk snapshot finished before it could be killed; raise BULK_DOCS`).toBeDefined();
    await victim!.kill('SIGKILL');
    const survivor = A.workers.find((w) => w !== victim && w.child.exitCode === null)!;

    const done = await waitForStatus(A.call, `/v1/backups/${backendName}/e2e-kill`, final, 120_000);
    expect(done.status, JSON.stringify(done)).toBe('SUCCESS');
    expect(startedBy(survivor, 'job completed'), 'the other worker finished the killed shard').toBe(true);
    expect(done.progress).toMatchObject({ shardsDone: 1, shardsTotal: 1, docs: BULK_DOCS });
    A.workers.splice(A.workers.indexOf(victim!), 1);
    await A.startWorker();

    const restore = await B.call('POST', `/v1/backups/${backendName}/e2e-kill/restore`, {});
    expect(restore.status, JSON.stringify(await json(restore))).toBe(200);
    const restored = await waitForStatus(B.call, `/v1/backups/${backendName}/e2e-kill/restore`, final, 90_000);
    expect(restored.status, JSON.stringify(restored)).toBe('SUCCESS');
    const a = await readIndex(A.dataDir, NODES_A, 'Bulk');
    const b = await readIndex(B.dataDir, NODES_B, 'Bulk');
    expect(b.size).toBe(BULK_DOCS);
    expect(b).toEqual(a);
  }, 240_000);

  it('hands a running shard back on SIGTERM after WORKER_SHUTDOWN_SECONDS; another worker finishes it', async () => {
    const jobId = `backup.${backendName}.e2e-term.node-1.Bulk.0`;
    const res = await A.call('POST', `/v1/backups/${backendName}`, { id: 'e2e-term', include: ['Bulk'], config: { CompressionLevel: 'BestCompression' } });
    expect(res.status, JSON.stringify(await json(res))).toBe(200);
    const logged = (w: (typeof A.workers)[number], msg: string) => A.jobLines(w).some((l) => l.job === jobId && l.msg === msg);
    await until('a worker runs the Bulk snapshot', () => A.workers.some((w) => logged(w, 'job started')));
    await waitForStatus(A.call, `/v1/backups/${backendName}/e2e-term`, (b) => (b.progress?.docs ?? 0) > 0 || final(b));
    const stopping = A.workers.find((w) => logged(w, 'job started') && !logged(w, 'job completed'));
    expect(stopping, 'the Bulk snapshot finished before the worker could be stopped; raise BULK_DOCS').toBeDefined();
    expect(await stopping!.kill('SIGTERM'), 'a SIGTERMed worker exits cleanly').toBe(0);
    expect(logged(stopping!, 'job aborted by shutdown and returned to its queue')).toBe(true);
    A.workers.splice(A.workers.indexOf(stopping!), 1);

    const done = await waitForStatus(A.call, `/v1/backups/${backendName}/e2e-term`, final, 120_000);
    expect(done.status, JSON.stringify(done)).toBe('SUCCESS');
    const finisher = A.workers.find((w) => logged(w, 'job completed'));
    expect(finisher, 'another worker finished the shard').toBeDefined();
    // Handed back, not failed: the second run is still the first attempt.
    expect(A.jobLines(finisher!).find((l) => l.job === jobId && l.msg === 'job started')).toMatchObject({ attempt: 1 });
    await A.startWorker();
  }, 120_000);

  it('cancels a backup mid-shard: CANCELED, nothing left in the backend', async () => {
    const res = await A.call('POST', `/v1/backups/${backendName}`, {
      id: 'e2e-cancel',
      include: ['Bulk'],
      config: { CompressionLevel: 'BestCompression' },
    });
    expect(res.status, JSON.stringify(await json(res))).toBe(200);
    const mid = await waitForStatus(A.call, `/v1/backups/${backendName}/e2e-cancel`, (b) => (b.progress?.docs ?? 0) > 0 || final(b));
    expect(mid.status).toBe('TRANSFERRING');
    expect((await A.call('DELETE', `/v1/backups/${backendName}/e2e-cancel`)).status).toBe(204);
    const done = await waitForStatus(A.call, `/v1/backups/${backendName}/e2e-cancel`, final, 60_000);
    expect(done.status, JSON.stringify(done)).toBe('CANCELED');
    expect(await objectKeys(fixture.backend, 'e2e-cancel/')).toEqual([]);
    if (backendName === 'filesystem') expect(filesUnder(fixture.backend.locate('e2e-cancel'))).toEqual([]);
    const listed = await json<{ id: string; status: string }[]>(await A.call('GET', `/v1/backups/${backendName}`));
    expect(listed.find((b) => b.id === 'e2e-cancel')?.status).toBe('CANCELED');
    // The id is free again: nothing of it is left.
    expect((await A.call('DELETE', `/v1/backups/${backendName}/e2e-cancel`)).status).toBe(422);
  }, 120_000);

  it('cancels a restore mid-shard: CANCELED, no class and no staging left', async () => {
    expect((await B.call('DELETE', '/v1/schema/Bulk')).status).toBe(200);
    const res = await B.call('POST', `/v1/backups/${backendName}/e2e-kill/restore`, {});
    expect(res.status, JSON.stringify(await json(res))).toBe(200);
    const mid = await waitForStatus(B.call, `/v1/backups/${backendName}/e2e-kill/restore`, (b) => (b.progress?.docs ?? 0) > 0 || final(b));
    expect(mid.status).toBe('TRANSFERRING');
    expect((await B.call('DELETE', `/v1/backups/${backendName}/e2e-kill/restore`)).status).toBe(204);
    const done = await waitForStatus(B.call, `/v1/backups/${backendName}/e2e-kill/restore`, final, 60_000);
    expect(done.status, JSON.stringify(done)).toBe('CANCELED');
    // Stopped in the shard, not after it: its progress never reached the end.
    expect(done.progress?.docs, JSON.stringify(done)).toBeLessThan(BULK_DOCS);
    expect((await B.call('GET', '/v1/schema/Bulk')).status).toBe(404);
    for (const node of NODES_B) {
      expect(fs.existsSync(path.join(B.dataDir, node, '.staging')), `${node} staging`).toBe(false);
      expect(fs.existsSync(path.join(B.dataDir, node, 'Bulk')), `${node} Bulk`).toBe(false);
    }
  }, 120_000);

  it('fails a restore from a shard object with a flipped byte, naming the checksum, and creates no class', async () => {
    const manifest = JSON.parse((await readObject(fixture.backend, 'e2e-main/node-2/backup.json')).toString()) as {
      shards: { index: string; shard: number; key: string }[];
    };
    const { key } = manifest.shards.find((s) => s.index === 'Cherry')!;
    const original = await readObject(fixture.backend, key);
    const flipped = Buffer.from(original);
    const at = Math.floor(flipped.length / 2);
    flipped[at] = flipped[at]! ^ 0x20;
    await fixture.backend.write(key, Readable.from([flipped]));
    try {
      expect((await A.call('DELETE', '/v1/schema/Cherry')).status).toBe(200);
      const res = await A.call('POST', `/v1/backups/${backendName}/e2e-main/restore`, { include: ['Cherry'] });
      expect(res.status, JSON.stringify(await json(res))).toBe(200);
      const done = await waitForStatus(A.call, `/v1/backups/${backendName}/e2e-main/restore`, final, 60_000);
      expect(done.status).toBe('FAILED');
      expect(done.error).toMatch(new RegExp(`checksum mismatch for .*${key.replace(/\//g, '.')}.*expected sha256 [0-9a-f]{64}, got [0-9a-f]{64}`));
      expect((await A.call('GET', '/v1/schema/Cherry')).status).toBe(404);
      for (const node of NODES_A) expect(fs.existsSync(path.join(A.dataDir, node, '.staging'))).toBe(false);
    } finally {
      await fixture.backend.write(key, Readable.from([original]));
    }
    // With the byte put back, the same restore succeeds: the failed one left nothing in the way.
    expect((await A.call('POST', `/v1/backups/${backendName}/e2e-main/restore`, { include: ['Cherry'] })).status).toBe(200);
    expect((await waitForStatus(A.call, `/v1/backups/${backendName}/e2e-main/restore`, final, 60_000)).status).toBe('SUCCESS');
    expect(await readIndex(A.dataDir, NODES_A, 'Cherry')).toEqual(reference.get('Cherry'));
  }, 120_000);

  it('answers the status of finished backups from the backend after Redis is flushed', async () => {
    const redis = A.redisClient();
    await redis.flushall();
    const res = await A.call('GET', `/v1/backups/${backendName}/e2e-main`);
    const body = await json(res);
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body).toMatchObject({ id: 'e2e-main', backend: backendName, status: 'SUCCESS', classes: CLASSES, progress: { shardsDone: 9, shardsTotal: 9 } });
    expect(body.completedAt).toBeTruthy();
    // Newest first, as Weaviate lists (from the manifests alone now).
    const listed = await json<{ id: string; status: string }[]>(await A.call('GET', `/v1/backups/${backendName}`));
    expect(listed.map((b) => [b.id, b.status])).toEqual([
      ['e2e-term', 'SUCCESS'],
      ['e2e-kill', 'SUCCESS'],
      ['e2e-main', 'SUCCESS'],
    ]);
    // Another cluster sharing the backend sees the same.
    expect(await json(await B.call('GET', `/v1/backups/${backendName}/e2e-kill`))).toMatchObject({ status: 'SUCCESS', progress: { docs: BULK_DOCS } });
  });

  it("logs JSON lines only, from the API and every worker, Node's own warnings too", () => {
    for (const cluster of started) {
      for (const p of [cluster.api, ...cluster.workers]) {
        // The last piece may be a line a SIGKILL cut short.
        const lines = p.output().split('\n').slice(0, -1);
        expect(lines.filter((l) => !l.startsWith('{')), p.output().slice(-3000)).toEqual([]);
      }
    }
    // The AWS SDK warns, once per process that makes an S3 client, on a Node older than 22.
    if (backendName === 's3' && Number(process.versions.node.split('.')[0]) < 22) {
      const warned = A.api.output().split('\n').filter((l) => l.includes('"msg":"process warning"') && l.includes('NodeVersionSupportWarning'));
      expect(warned).toHaveLength(1);
    }
  });
});
