/**
 * Backend faults (issue 8, item 3). A cluster (API and two workers as processes) backs up to a
 * real S3 server (s3rver), then to a real GCS server (the firebase-tools emulator), each through
 * a fault-injecting proxy (test/support/fault-proxy.ts) that answers 5% of requests with 500,
 * resets some connections before or after the server applied them, cuts some answers part-way
 * through their body, and holds some for 30 s before dropping them. That is ten times the
 * clients' request timeout (BACKUP_S3_REQUEST_TIMEOUT_SECONDS=3, BACKUP_GCS_REQUEST_TIMEOUT_SECONDS=3),
 * so a held request is abandoned after 3 s of silence and retried rather than waited on (every
 * one is: the proxy counts those whose client closed the connection before it dropped them).
 * Shown, on both backends (describe.each over BACKENDS):
 * - backups and restores still complete through retries; every backup verifies OK through
 *   the same faults, every restore is identical to its source. A request the API answers itself
 *   (create, restore, verify) makes its reads with a few retries; at these rates one of them
 *   now and then meets a fault on every try, and the API answers 503 saying which read failed
 *   — then the test asks again, as a client would, and counts it (`unavailable`);
 * - a burst of resets during a create's checks is ridden out (200, not 503).
 * - a bucket deleted while a backup, then a restore, is writing or reading fails the job with a
 *   reason naming the bucket, within a bounded time and without retrying for ever; the failed
 *   restore leaves no class and no staging behind.
 *
 * The "while writing/reading" moments are made with the proxy's hold(): the shard requests of
 * that operation are parked, the bucket is deleted (directly on s3rver, emptied first; on the
 * GCS emulator's front, test/support/gcs-emulator.ts), then they go on.
 * Figures are recorded per backend (`backend-faults.json`, keys `s3` and `gcs`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND_FIXTURES, type BackendFixture } from '../support/backend-fixtures.ts';
import { readIndex, waitForStatus, type StatusBody } from '../support/backups.ts';
import { startCluster, type Cluster } from '../support/cluster.ts';
import { startFaultProxy, NO_FAULTS, type FaultProxy, type FaultRates } from '../support/fault-proxy.ts';
import { byMode, populate, recordFigures, seedFor, until } from '../support/reliability.ts';
import { tempDir } from '../support/temp.ts';

const NODES = ['node-1', 'node-2', 'node-3'];
const CLASSES = ['Apple', 'Banana', 'Cherry'];
const DOCS = 1200;
const BACKUPS = byMode({ short: 3, long: 10 });
const RESTORES = byMode({ short: 2, long: 6 });
const RATES: FaultRates = { error500: 0.05, reset: 0.02, delay: 0.01, lostAnswer: 0.01, cutBody: 0.02 };
const SETTLE_MS = 180_000;

const final = (b: StatusBody) => ['SUCCESS', 'FAILED', 'CANCELED'].includes(b.status);
const seed = seedFor('backend-faults');

/** What differs between the backends: where the proxy sends requests, how the cluster is pointed at the proxy. */
interface FaultyBackend {
  name: 's3' | 'gcs';
  /** The real server's URL, for the proxy. */
  target(fx: BackendFixture): string;
  /** The cluster's variables that send every request through the proxy, with a 3 s request timeout. */
  throughProxy(proxy: FaultProxy): Record<string, string>;
  /** The request that uploads the bytes of object `key`, and the one that downloads them. */
  isUpload(r: { method: string; url: string }, key: RegExp): boolean;
  isDownload(r: { method: string; url: string }, key: RegExp): boolean;
}

const BACKENDS: FaultyBackend[] = [
  {
    name: 's3',
    target: (fx) => `http://${fx.env.BACKUP_S3_ENDPOINT}`,
    throughProxy: (proxy) => ({ BACKUP_S3_ENDPOINT: proxy.host, BACKUP_S3_REQUEST_TIMEOUT_SECONDS: '3' }),
    isUpload: (r, key) => r.method === 'PUT' && key.test(r.url.split('?')[0]!),
    isDownload: (r, key) => r.method === 'GET' && key.test(r.url.split('?')[0]!),
  },
  {
    name: 'gcs',
    target: (fx) => fx.env.STORAGE_EMULATOR_HOST!,
    throughProxy: (proxy) => ({ STORAGE_EMULATOR_HOST: proxy.url, BACKUP_GCS_REQUEST_TIMEOUT_SECONDS: '3' }),
    // The resumable upload's PUT carries the bytes, the object named in its query (`name=`).
    isUpload: (r, key) => r.method === 'PUT' && r.url.startsWith('/upload/') && key.test(new URLSearchParams(r.url.split('?')[1]).get('name') ?? ''),
    isDownload: (r, key) => r.method === 'GET' && r.url.includes('alt=media') && key.test(decodeURIComponent(r.url.split('?')[0]!)),
  },
];

describe.each(BACKENDS.map((b) => [b.name.toUpperCase(), b] as const))('backups and restores through a faulty %s', (_, { name: backend, target, throughProxy, isUpload, isDownload }) => {
  const tmp = tempDir(`shardvault-chaos-${backend}-`);
  const figures = {
    seed,
    rates: RATES,
    backups: {} as Record<string, number>,
    restores: {} as Record<string, number>,
    verified: 0,
    /** 503s the API answered a create, restore or verify (a read that failed on every try), each asked again. */
    unavailable: 0,
    documentsCompared: 0,
    proxy: {} as Record<string, unknown>,
    bucketGone: [] as { operation: string; status: string; error?: string; failedAfterMs: number }[],
  };
  let fx: BackendFixture;
  let proxy: FaultProxy;
  let direct: S3Client | undefined;
  let bucket: string;
  let A: Cluster;
  const reference = new Map<string, Map<string, string>>();
  const api = `/v1/backups/${backend}`;

  beforeAll(async () => {
    fx = await BACKEND_FIXTURES[backend](tmp.dir);
    bucket = backend === 's3' ? fx.env.BACKUP_S3_BUCKET! : fx.env.BACKUP_GCS_BUCKET!;
    if (backend === 's3') {
      direct = new S3Client({
        endpoint: `http://${fx.env.BACKUP_S3_ENDPOINT}`,
        forcePathStyle: true,
        region: fx.env.AWS_REGION!,
        credentials: { accessKeyId: fx.env.AWS_ACCESS_KEY_ID!, secretAccessKey: fx.env.AWS_SECRET_ACCESS_KEY! },
      });
    }
    // Held far longer than the request timeout: only the client's timeout ends a held request in time.
    proxy = await startFaultProxy({ target: target(fx), seed, delayMs: 30_000 });
    const dataDir = path.join(tmp.dir, 'data');
    await populate(dataDir, NODES, CLASSES.map((name) => ({ name, shards: 3, docs: DOCS, words: 20 })));
    for (const cls of CLASSES) reference.set(cls, await readIndex(dataDir, NODES, cls));
    A = await startCluster({
      name: `faulty-${backend}`,
      dataDir,
      nodes: NODES,
      backendEnv: { ...fx.env, ...throughProxy(proxy) },
      workers: 2,
    });
  }, 180_000);

  afterAll(async () => {
    figures.proxy = {
      requests: proxy?.counts.requests,
      forwarded: proxy?.counts.forwarded,
      injected: proxy?.counts.byFault,
      heldAbandonedByClient: proxy?.counts.abandoned,
      byKind: proxy?.counts.byKind,
    };
    recordFigures('backend-faults', { [backend]: figures });
    await A?.stop();
    await proxy?.close();
    direct?.destroy();
    await fx?.stop();
    tmp.cleanup();
  });

  /** A call the API answers from the backend, asked again (as a client would) while it answers 503. */
  async function callAgain(method: string, url: string, body?: unknown): ReturnType<Cluster['call']> {
    for (let tries = 1; ; tries++) {
      const res = await A.call(method, url, body);
      if (res.status !== 503 || tries === 5) return res;
      figures.unavailable++;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  /** The bucket deleted behind the cluster's back, with everything in it. */
  async function deleteBucket(): Promise<void> {
    if (!direct) {
      const res = await fetch(`${fx.env.STORAGE_EMULATOR_HOST}/storage/v1/b/${bucket}`, { method: 'DELETE' });
      if (res.status !== 204) throw new Error(`deleting bucket ${bucket} answered ${res.status}`);
      return;
    }
    for (let i = 0; i < 20; i++) {
      const listed = await direct!.send(new ListObjectsV2Command({ Bucket: bucket }));
      const keys = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length) await direct!.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
      try {
        await direct!.send(new DeleteBucketCommand({ Bucket: bucket }));
        return;
      } catch (err) {
        if ((err as Error).name !== 'BucketNotEmpty') throw err;
      }
    }
    throw new Error(`could not delete bucket ${bucket}: it kept getting objects`);
  }

  async function createBucket(): Promise<void> {
    if (direct) {
      await direct.send(new CreateBucketCommand({ Bucket: bucket }));
      return;
    }
    const res = await fetch(`${fx.env.STORAGE_EMULATOR_HOST}/storage/v1/b?project=shardvault`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: bucket }) });
    if (!res.ok) throw new Error(`creating bucket ${bucket} answered ${res.status}`);
  }

  it(`${BACKUPS} backups and ${RESTORES} restores complete through injected 500s, resets, cut bodies and timeouts`, async () => {
    proxy.setRates(RATES);
    const ids = Array.from({ length: BACKUPS }, (_, i) => `faulty-${i}`);
    for (const id of ids) {
      const res = await callAgain('POST', api, { id, include: CLASSES });
      expect(res.status, `${id}: ${JSON.stringify(await res.json())}`).toBe(200);
    }
    for (const id of ids) {
      const done = await waitForStatus(A.call, `${api}/${id}`, final, SETTLE_MS);
      figures.backups[done.status] = (figures.backups[done.status] ?? 0) + 1;
      expect(done.status, `${id}: ${JSON.stringify(done)}`).toBe('SUCCESS');
      const verified = await callAgain('GET', `${api}/${id}/verify`);
      const report = (await verified.json()) as { status: string; objects: number };
      expect(verified.status, JSON.stringify(report)).toBe(200);
      expect(report).toMatchObject({ status: 'OK', objects: 1 + NODES.length + CLASSES.length * 3 });
      figures.verified++;
    }

    // Restores, a few classes at a time (a class can be restored only where it does not exist).
    for (let r = 0; r < RESTORES; r += CLASSES.length) {
      const batch = Array.from({ length: Math.min(CLASSES.length, RESTORES - r) }, (_, i) => ({ cls: CLASSES[i]!, id: ids[(r + i) % ids.length]! }));
      for (const { cls } of batch) expect((await A.call('DELETE', `/v1/schema/${cls}`)).status).toBe(200);
      // Restores of one backup run one at a time: a restore's id is its backup's.
      const byId = new Map<string, string[]>();
      for (const { cls, id } of batch) byId.set(id, [...(byId.get(id) ?? []), cls]);
      await Promise.all(
        [...byId].map(async ([id, include]) => {
          const res = await callAgain('POST', `${api}/${id}/restore`, { include });
          expect(res.status, JSON.stringify(await res.json())).toBe(200);
          const done = await waitForStatus(A.call, `${api}/${id}/restore`, final, SETTLE_MS);
          figures.restores[done.status] = (figures.restores[done.status] ?? 0) + 1;
          expect(done.status, `${id}: ${JSON.stringify(done)}`).toBe('SUCCESS');
        }),
      );
      for (const { cls } of batch) {
        const now = await readIndex(A.dataDir, NODES, cls);
        expect(now.size).toBe(DOCS);
        expect(now).toEqual(reference.get(cls));
        figures.documentsCompared += now.size;
      }
    }
    const injected = Object.values(proxy.counts.byFault).reduce((a, b) => a + b, 0);
    expect(proxy.counts.byFault.error500, 'some 500s were injected').toBeGreaterThan(0);
    expect(injected).toBeGreaterThan(3);
    // Every held request was given up by the client (its request timeout), none waited out.
    expect(proxy.counts.abandoned, 'held requests the client abandoned').toBe(proxy.counts.byFault.delay);
  }, 600_000);

  it("a burst of resets during create's checks is ridden out like a transfer's: the create answers 200, not 503", async () => {
    // Every request is reset until the API has tried one check more often than a single backend
    // call retries by itself (4 tries): only the request path's outer retries get it through.
    proxy.setRates({ ...NO_FAULTS, reset: 1 });
    const before = proxy.counts.byFault.reset;
    try {
      const answer = A.call('POST', api, { id: 'reset-burst', include: ['Cherry'] }, { timeoutMs: 60_000 });
      await until('the checks were reset more often than one call retries', () => proxy.counts.byFault.reset - before >= 6, 30_000);
      proxy.setRates(NO_FAULTS);
      const res = await answer;
      expect(res.status, JSON.stringify(await res.json())).toBe(200);
    } finally {
      proxy.setRates(NO_FAULTS);
    }
    expect((await waitForStatus(A.call, `${api}/reset-burst`, final, SETTLE_MS)).status).toBe('SUCCESS');
  }, 120_000);

  it('a bucket deleted while a backup writes fails it with a reason naming the bucket', async () => {
    proxy.setRates(NO_FAULTS);
    const hold = proxy.hold((r) => isUpload(r, /gone-backup\/node-[^/]+\/Apple\/\d+$/));
    try {
      const res = await A.call('POST', api, { id: 'gone-backup', include: ['Apple'] });
      expect(res.status, JSON.stringify(await res.json())).toBe(200);
      await until('a shard upload is in flight', () => hold.held() > 0, 60_000);
      await deleteBucket();
    } finally {
      hold.release();
    }
    const t0 = Date.now();
    const done = await waitForStatus(A.call, `${api}/gone-backup`, final, 90_000);
    figures.bucketGone.push({ operation: 'backup', status: done.status, error: done.error, failedAfterMs: Date.now() - t0 });
    expect(done.status, JSON.stringify(done)).toBe('FAILED');
    // The shard's failure, then why nothing could be cleaned up.
    expect(done.error).toMatch(new RegExp(`^shard Apple/\\d on node-\\d failed: ${backend} bucket "${bucket}" does not exist.*could not be deleted`));
    await createBucket();
  }, 180_000);

  it('a bucket deleted while a restore reads fails it with a reason naming the bucket, and leaves nothing', async () => {
    proxy.setRates(NO_FAULTS);
    expect((await A.call('POST', api, { id: 'gone-restore', include: ['Banana'] })).status).toBe(200);
    expect((await waitForStatus(A.call, `${api}/gone-restore`, final, SETTLE_MS)).status).toBe('SUCCESS');
    expect((await A.call('DELETE', '/v1/schema/Banana')).status).toBe(200);
    const hold = proxy.hold((r) => isDownload(r, /gone-restore\/node-[^/]+\/Banana\/\d+$/));
    try {
      const res = await A.call('POST', `${api}/gone-restore/restore`, {});
      expect(res.status, JSON.stringify(await res.json())).toBe(200);
      await until('a shard download is in flight', () => hold.held() > 0, 60_000);
      await deleteBucket();
    } finally {
      hold.release();
    }
    const t0 = Date.now();
    const done = await waitForStatus(A.call, `${api}/gone-restore/restore`, final, 90_000);
    figures.bucketGone.push({ operation: 'restore', status: done.status, error: done.error, failedAfterMs: Date.now() - t0 });
    expect(done.status, JSON.stringify(done)).toBe('FAILED');
    expect(done.error).toMatch(new RegExp(`^shard Banana/\\d on node-\\d failed: ${backend} bucket "${bucket}" does not exist`));
    expect((await A.call('GET', '/v1/schema/Banana')).status).toBe(404);
    for (const node of NODES) {
      expect(fs.existsSync(path.join(A.dataDir, node, 'Banana')), `${node}/Banana`).toBe(false);
      expect(fs.existsSync(path.join(A.dataDir, node, '.staging')), `${node}/.staging`).toBe(false);
    }
    await createBucket();
  }, 240_000);
});
