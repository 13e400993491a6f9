/**
 * /v1/backups request validation, in-process over a real Redis and no worker: every refusal
 * (422, 404) comes before anything is written or enqueued.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MANIFEST_VERSION } from '../../shared/backups/manifest.ts';
import { MAX_BACKUP_ID_LENGTH } from '../../shared/backups/contract.ts';
import { PREFIX } from '../../shared/jobs/catalog.ts';
import type { RedisServer } from '../../shared/redis-server.ts';
import { createTestApi, type TestApi } from '../support/api.ts';
import { startTestRedis } from '../support/redis.ts';

let redis: RedisServer;
let t: TestApi;

beforeAll(async () => {
  redis = await startTestRedis();
  t = createTestApi(redis.url);
  for (const cls of ['Alpha', 'Apple', 'Beta']) await t.store.putDocuments(cls, [{ _id: `${cls}-1`, n: 1 }]);
});
afterAll(async () => {
  await t?.api.stop();
  await t?.close();
  await redis?.stop();
});

async function refused(method: string, url: string, body: unknown, status: number, message: RegExp): Promise<void> {
  const res = await t.call(method, url, body);
  const json = (await res.json()) as { error?: { message: string }[] };
  expect(res.status, JSON.stringify(json)).toBe(status);
  expect(json.error?.[0]?.message).toMatch(message);
}

/** A finished backup written straight into the filesystem backend, as another cluster would leave it. */
function writeBackup(id: string, options: { status?: string; nodes?: string[]; classes?: string[]; error?: string } = {}): string {
  const nodes = options.nodes ?? t.config.nodes;
  const classes = options.classes ?? ['Gamma'];
  const root = path.join(t.config.backends.filesystem.path, id);
  fs.mkdirSync(root, { recursive: true });
  const manifest = {
    version: MANIFEST_VERSION,
    id,
    backend: 'filesystem',
    path: root,
    status: options.status ?? 'SUCCESS',
    ...(options.error ? { error: options.error } : {}),
    nodes,
    classes,
    startedAt: '2026-01-01T00:00:00.000Z',
    completedAt: '2026-01-01T00:00:05.000Z',
    formatVersion: 1,
    compression: 'DefaultCompression',
    totals: { shards: 3, docs: 30, bytes: 999 },
    nodeManifests: {},
  };
  fs.writeFileSync(path.join(root, 'backup_config.json'), JSON.stringify(manifest));
  return root;
}

describe('POST /v1/backups/{backend}', () => {
  it('refuses ids that are not ^[a-z0-9_-]+$ or too long, and a missing id', async () => {
    await refused('POST', '/v1/backups/filesystem', { id: 'Has-Upper' }, 422, /invalid backup id "Has-Upper".*\^\[a-z0-9_-\]\+\$/);
    await refused('POST', '/v1/backups/filesystem', { id: 'a.b' }, 422, /invalid backup id "a\.b"/);
    await refused('POST', '/v1/backups/filesystem', { id: 'x'.repeat(MAX_BACKUP_ID_LENGTH + 1) }, 422, /longer than 128 characters/);
    await refused('POST', '/v1/backups/filesystem', {}, 422, /backup id is required/);
    await refused('POST', '/v1/backups/filesystem', { id: 7 }, 422, /backup id is required/);
  });

  it('refuses include with exclude, unknown classes, wildcards matching nothing and empty selections', async () => {
    await refused('POST', '/v1/backups/filesystem', { id: 'v1', include: ['Alpha'], exclude: ['Beta'] }, 422, /include and exclude are mutually exclusive/);
    await refused('POST', '/v1/backups/filesystem', { id: 'v1', include: ['Nope'] }, 422, /class "Nope" does not exist in this cluster/);
    await refused('POST', '/v1/backups/filesystem', { id: 'v1', exclude: ['Nope'] }, 422, /class "Nope" does not exist/);
    await refused('POST', '/v1/backups/filesystem', { id: 'v1', include: ['Z*'] }, 422, /no class matches "Z\*"/);
    await refused('POST', '/v1/backups/filesystem', { id: 'v1', exclude: ['*'] }, 422, /nothing to select: every class of this cluster is excluded/);
    await refused('POST', '/v1/backups/filesystem', { id: 'v1', include: 'Alpha' }, 422, /invalid backup request: include/);
  });

  it('refuses unknown and disabled backends, bad overrides and compression levels', async () => {
    await refused('POST', '/v1/backups/azure', { id: 'v1' }, 422, /unknown backend "azure"; use filesystem, s3 or gcs/);
    await refused('POST', '/v1/backups/s3', { id: 'v1' }, 422, /backend "s3" is not enabled: set BACKUP_S3_BUCKET/);
    await refused('POST', '/v1/backups/gcp', { id: 'v1' }, 422, /backend "gcs" is not enabled: set BACKUP_GCS_BUCKET/);
    await refused('POST', '/v1/backups/filesystem', { id: 'v1', config: { Bucket: 'b' } }, 422, /^config\.Bucket: the filesystem backend has no buckets; use config\.Path/);
    await refused('POST', '/v1/backups/filesystem', { id: 'v1', config: { Path: '../out' } }, 422, /^config\.Path/);
    // On status, list and cancel the overrides are query parameters, and named so.
    for (const [method, path] of [['GET', '/v1/backups/filesystem/v1'], ['GET', '/v1/backups/filesystem'], ['DELETE', '/v1/backups/filesystem/v1']] as const) {
      await refused(method, `${path}?bucket=b`, undefined, 422, /^\?bucket=: the filesystem backend has no buckets; use \?path= for a subdirectory/);
      await refused(method, `${path}?path=../out`, undefined, 422, /^\?path= "\.\.\/out"/);
    }
    await refused('POST', '/v1/backups/filesystem', { id: 'v1', config: { CompressionLevel: 'Zstd' } }, 422, /CompressionLevel "Zstd": use one of BestSpeed/);
    await refused('POST', '/v1/backups/filesystem', { id: 'v1', config: { CPUPercentage: 95 } }, 422, /CPUPercentage/);
    await refused('POST', '/v1/backups/filesystem', [1], 422, /backup request must be a JSON object/);
  });

  it('refuses an id already used in the backend, and one that is running', async () => {
    const root = writeBackup('used-id');
    await refused('POST', '/v1/backups/filesystem', { id: 'used-id' }, 422, new RegExp(`backup "used-id" already exists at ${root}`));

    // No worker runs here: the backup stays STARTED, so the same id is "in progress".
    const res = await t.call('POST', '/v1/backups/filesystem', { id: 'pending', include: ['A*', '?eta'] });
    const started = await res.json();
    expect(res.status, JSON.stringify(started)).toBe(200);
    expect(started).toEqual({
      id: 'pending',
      backend: 'filesystem',
      classes: ['Alpha', 'Apple', 'Beta'],
      path: path.join(t.config.backends.filesystem.path, 'pending'),
      status: 'STARTED',
    });
    await refused('POST', '/v1/backups/filesystem', { id: 'pending' }, 422, /backup "pending" is already in progress \(STARTED\)/);

    const queue = new Queue('backups', { connection: t.redis, prefix: PREFIX });
    const job = await queue.getJob('backup.filesystem.pending');
    expect(job?.name).toBe('commit-backup');
    expect(await job?.getDependenciesCount({ unprocessed: true })).toEqual({ unprocessed: 9 });
    await queue.close();

    const status = await (await t.call('GET', '/v1/backups/filesystem/pending')).json();
    expect(status).toMatchObject({ id: 'pending', status: 'STARTED', progress: { shardsDone: 0, shardsTotal: 9, docs: 0, bytes: 0 } });

    const cancel = await t.call('DELETE', '/v1/backups/filesystem/pending');
    expect(cancel.status).toBe(204);
    expect((await (await t.call('GET', '/v1/backups/filesystem/pending')).json()).status).toBe('CANCELLING');
    // Weaviate's list: newest first by starting time, `?order=asc` oldest first.
    const listed = (await (await t.call('GET', '/v1/backups/filesystem')).json()) as { id: string; status: string }[];
    expect(listed.map((b) => [b.id, b.status])).toEqual([
      ['pending', 'CANCELLING'],
      ['used-id', 'SUCCESS'],
    ]);
    const ascending = (await (await t.call('GET', '/v1/backups/filesystem?order=asc')).json()) as { id: string }[];
    expect(ascending.map((b) => b.id)).toEqual(['used-id', 'pending']);
    expect((await (await t.call('GET', '/v1/backups/filesystem?order=desc')).json()) as unknown).toEqual(listed);
    for (const [query, named] of [
      ['order=newest', /order must be asc or desc/],
      ['order=asc&limit=10', /order cannot be given with limit or after/],
    ] as const) {
      const refused = await t.call('GET', `/v1/backups/filesystem?${query}`);
      expect(refused.status, query).toBe(422);
      expect(JSON.stringify(await refused.json())).toMatch(named);
    }
  });
});

describe('status, cancel and list', () => {
  it('checks the id on every endpoint', async () => {
    for (const [method, url] of [
      ['GET', '/v1/backups/filesystem/BAD'],
      ['DELETE', '/v1/backups/filesystem/BAD'],
      ['POST', '/v1/backups/filesystem/BAD/restore'],
      ['GET', '/v1/backups/filesystem/BAD/restore'],
      ['DELETE', '/v1/backups/filesystem/BAD/restore'],
      ['GET', `/v1/backups/filesystem/${'y'.repeat(MAX_BACKUP_ID_LENGTH + 1)}`],
    ] as const) {
      await refused(method, url, method === 'POST' ? {} : undefined, 422, /invalid backup id/);
    }
  });

  it('answers 404 for unknown backups and restores, and the status of a finished one from backup_config.json', async () => {
    await refused('GET', '/v1/backups/filesystem/nobody', undefined, 404, /backup "nobody" not found in backend filesystem/);
    await refused('DELETE', '/v1/backups/filesystem/nobody', undefined, 404, /backup "nobody" not found/);
    await refused('GET', '/v1/backups/filesystem/nobody/restore', undefined, 404, /no restore of backup "nobody"/);
    await refused('DELETE', '/v1/backups/filesystem/nobody/restore', undefined, 404, /restore "nobody" not found/);

    writeBackup('from-elsewhere', { status: 'FAILED', error: 'shard Gamma/1 on node-2 failed: disk on fire' });
    const res = await t.call('GET', '/v1/backups/filesystem/from-elsewhere');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      id: 'from-elsewhere',
      backend: 'filesystem',
      path: path.join(t.config.backends.filesystem.path, 'from-elsewhere'),
      status: 'FAILED',
      error: 'shard Gamma/1 on node-2 failed: disk on fire',
      classes: ['Gamma'],
      startedAt: '2026-01-01T00:00:00.000Z',
      completedAt: '2026-01-01T00:00:05.000Z',
      progress: { shardsDone: 3, shardsTotal: 3, docs: 30, bytes: 999 },
    });
    await refused('DELETE', '/v1/backups/filesystem/from-elsewhere', undefined, 422, /has already finished \(FAILED\)/);
  });
});

describe('POST /v1/backups/{backend}/{id}/restore', () => {
  it('refuses unknown, unfinished and unsuccessful backups', async () => {
    await refused('POST', '/v1/backups/filesystem/nobody/restore', {}, 404, /backup "nobody" not found in backend filesystem/);
    writeBackup('broken', { status: 'FAILED', error: 'x' });
    await refused('POST', '/v1/backups/filesystem/broken/restore', {}, 422, /backup "broken" has status FAILED; only a SUCCESS backup can be restored/);
    await refused('POST', '/v1/backups/filesystem/pending/restore', {}, 422, /backup "pending" is not finished \(CANCELLING\)/);
  });

  it('refuses a different node count, giving both numbers', async () => {
    writeBackup('two-nodes', { nodes: ['a', 'b'] });
    await refused('POST', '/v1/backups/filesystem/two-nodes/restore', {}, 422, /taken on 2 nodes \(a, b\) and this cluster has 3/);
  });

  it('refuses classes that exist, classes not in the backup and bad node mappings', async () => {
    writeBackup('three', { classes: ['Alpha', 'Gamma'] });
    await refused('POST', '/v1/backups/filesystem/three/restore', {}, 422, /class "Alpha" already exists/);
    await refused('POST', '/v1/backups/filesystem/three/restore', { include: ['Delta'] }, 422, /class "Delta" does not exist in backup "three"/);
    await refused('POST', '/v1/backups/filesystem/three/restore', { exclude: ['Delta'] }, 422, /class "Delta" does not exist in backup "three"/);
    await refused('POST', '/v1/backups/filesystem/three/restore', { include: ['Gamma'], exclude: ['Alpha'] }, 422, /mutually exclusive/);
    await refused('POST', '/v1/backups/filesystem/three/restore', { include: ['Gamma'], node_mapping: { 'node-9': 'node-1' } }, 422, /"node-9" is not a node of the backup/);
    await refused('POST', '/v1/backups/filesystem/three/restore', { include: ['Gamma'], node_mapping: { 'node-1': 'elsewhere' } }, 422, /"elsewhere" is not a node of this cluster/);
    await refused(
      'POST',
      '/v1/backups/filesystem/three/restore',
      { include: ['Gamma'], node_mapping: { 'node-1': 'node-2', 'node-2': 'node-2' } },
      422,
      /two backup nodes are mapped to "node-2"/,
    );
    expect(t.store.getIndex('Gamma')).toBeUndefined();
    for (const node of t.config.nodes) expect(fs.existsSync(path.join(t.config.dataDir, node, '.staging'))).toBe(false);
  });
});
