/**
 * Backup and restore flows in one process: the API in-process, a real worker (BullMQ over a
 * private Redis), the filesystem backend in a temp directory. The multi-process cases (kill,
 * cancel, second cluster) are in backups.e2e.test.ts.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../shared/backends/backend.ts';
import { configuredBackends } from '../../shared/backups/backends.ts';
import { LocalCatalog } from '../../shared/cluster/catalog.ts';
import { LocalShardHost } from '../../shared/cluster/shard-host.ts';
import { PermanentBackendError, UnavailableError } from '../../shared/errors.ts';
import type { RedisServer } from '../../shared/redis-server.ts';
import { createLogger } from '../../shared/logger.ts';
import { createWorker, type ShardvaultWorker } from '../../worker/worker.ts';
import { createTestApi, type TestApi } from '../support/api.ts';
import { makeDoc, readIndex, waitForStatus } from '../support/backups.ts';
import { startTestRedis } from '../support/redis.ts';

let redis: RedisServer;
let t: TestApi;
let worker: ShardvaultWorker;
/** Object keys whose next writes fail in the worker (the test's fault injection), with how often. */
const faults = new Map<string, { error: () => Error; times: number }>();

/** The configured backends, with writes of keys in `faults` failing. */
function faultyBackends(inner: ReturnType<typeof configuredBackends>): ReturnType<typeof configuredBackends> {
  return (name, overrides) => {
    const backend = inner(name, overrides);
    return new Proxy(backend, {
      get(target, prop, receiver) {
        if (prop !== 'write') return Reflect.get(target, prop, receiver);
        const write: Backend['write'] = async (key, body, options) => {
          const fault = faults.get(key);
          if (fault && fault.times > 0) {
            fault.times--;
            body.destroy();
            throw fault.error();
          }
          return target.write(key, body, options);
        };
        return write;
      },
    });
  };
}

beforeAll(async () => {
  redis = await startTestRedis();
  t = createTestApi(redis.url);
  worker = createWorker({
    config: t.config,
    logger: createLogger('silent'),
    redisUrl: redis.url,
    catalog: new LocalCatalog(t.store), shards: new LocalShardHost(t.store),
    backends: faultyBackends(configuredBackends(t.config)),
  });
  await worker.start();
  for (const cls of ['Alpha', 'Beta']) {
    const docs = Array.from({ length: 300 }, (_, i) => makeDoc(cls, i));
    const results = await t.store.putDocuments(cls, docs);
    expect(results.every((r) => r.ok)).toBe(true);
  }
  await t.store.putMetadata('Alpha', 'owner', { team: 'search' });
});

afterAll(async () => {
  await worker?.stop();
  await t?.close();
  await redis?.stop();
});

describe('backup and restore in one process', () => {
  it('backs up every class, writes the layout of docs/formats.md, and restores it exactly', async () => {
    const before = {
      Alpha: await readIndex(t.config.dataDir, t.config.nodes, 'Alpha'),
      Beta: await readIndex(t.config.dataDir, t.config.nodes, 'Beta'),
    };
    const res = await t.call('POST', '/v1/backups/filesystem', { id: 'flow-1' });
    expect(res.status).toBe(200);
    const started = await res.json();
    expect(started).toMatchObject({ id: 'flow-1', backend: 'filesystem', classes: ['Alpha', 'Beta'], status: 'STARTED' });
    expect(started.path).toBe(path.join(t.config.backends.filesystem.path, 'flow-1'));

    const done = await waitForStatus(t.call, '/v1/backups/filesystem/flow-1');
    expect(done.status, JSON.stringify(done)).toBe('SUCCESS');
    expect(done.progress).toMatchObject({ shardsDone: 6, shardsTotal: 6, docs: 600 });
    expect(done.completedAt).toBeTruthy();

    const root = path.join(t.config.backends.filesystem.path, 'flow-1');
    const config = JSON.parse(fs.readFileSync(path.join(root, 'backup_config.json'), 'utf8'));
    expect(config).toMatchObject({ id: 'flow-1', status: 'SUCCESS', nodes: t.config.nodes, classes: ['Alpha', 'Beta'], totals: { shards: 6, docs: 600 } });
    let fileBytes = 0;
    for (const node of t.config.nodes) {
      const manifest = JSON.parse(fs.readFileSync(path.join(root, node, 'backup.json'), 'utf8'));
      expect(manifest.node).toBe(node);
      for (const shard of manifest.shards) {
        // Format 2: the shard's object is a repository snapshot of its environment file.
        const snapshot = fs.readFileSync(path.join(t.config.backends.filesystem.path, shard.key));
        expect(createHash('sha256').update(snapshot).digest('hex')).toBe(shard.sha256);
        expect(shard.file).toMatchObject({ size: expect.any(Number), chunks: expect.any(Number), sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
        fileBytes += shard.file.size;
      }
    }
    // Weaviate's size: the shard files before compression, recorded in bytes, answered in GiB.
    expect(config.preCompressionSizeBytes).toBe(fileBytes);
    expect(fileBytes).toBeGreaterThan(0);
    expect(done.size).toBe(fileBytes / 2 ** 30);
    expect(config.formatVersion).toBe(2);
    expect(fs.readdirSync(path.join(t.config.backends.filesystem.path, '.repository'))).toEqual(expect.arrayContaining(['index', 'packs']));

    const list = await (await t.call('GET', '/v1/backups/filesystem')).json();
    expect(list).toEqual([expect.objectContaining({ id: 'flow-1', status: 'SUCCESS', classes: ['Alpha', 'Beta'], size: fileBytes / 2 ** 30 })]);

    await t.store.deleteIndex('Alpha');
    await t.store.deleteIndex('Beta');
    const restore = await t.call('POST', '/v1/backups/filesystem/flow-1/restore', {});
    expect(restore.status).toBe(200);
    expect(await restore.json()).toMatchObject({ id: 'flow-1', backend: 'filesystem', classes: ['Alpha', 'Beta'], status: 'STARTED' });
    const restored = await waitForStatus(t.call, '/v1/backups/filesystem/flow-1/restore');
    expect(restored.status, JSON.stringify(restored)).toBe('SUCCESS');

    expect(await readIndex(t.config.dataDir, t.config.nodes, 'Alpha')).toEqual(before.Alpha);
    expect(await readIndex(t.config.dataDir, t.config.nodes, 'Beta')).toEqual(before.Beta);
    expect(t.store.getMetadata('Alpha', 'owner')).toEqual({ team: 'search' });
    for (const node of t.config.nodes) expect(fs.existsSync(path.join(t.config.dataDir, node, '.staging', 'filesystem.flow-1'))).toBe(false);
  });

  it('restores one class with include, and then refuses to restore it again while it exists', async () => {
    await t.store.deleteIndex('Beta');
    const res = await t.call('POST', '/v1/backups/filesystem/flow-1/restore', { include: ['Beta'] });
    expect(res.status).toBe(200);
    expect((await waitForStatus(t.call, '/v1/backups/filesystem/flow-1/restore')).status).toBe('SUCCESS');
    expect(t.store.info('Beta').docs).toBe(300);
    const again = await t.call('POST', '/v1/backups/filesystem/flow-1/restore', { include: ['Beta'] });
    expect(again.status).toBe(422);
    expect((await again.json()).error[0].message).toMatch(/"Beta" already exists/);
  });

  it('records FAILED with the error of the shard and deletes everything else when a shard fails for good', async () => {
    faults.set('fail-1/node-2/Alpha/1', { error: () => new PermanentBackendError('disk on fire'), times: 1 });
    expect((await t.call('POST', '/v1/backups/filesystem', { id: 'fail-1' })).status).toBe(200);
    const done = await waitForStatus(t.call, '/v1/backups/filesystem/fail-1');
    expect(done.status).toBe('FAILED');
    expect(done.error).toMatch(/^shard Alpha\/1 on node-2 failed: disk on fire/);
    const root = path.join(t.config.backends.filesystem.path, 'fail-1');
    expect(fs.readdirSync(root)).toEqual(['backup_config.json']);
    const config = JSON.parse(fs.readFileSync(path.join(root, 'backup_config.json'), 'utf8'));
    expect(config).toMatchObject({ status: 'FAILED', error: done.error });
    const again = await t.call('POST', '/v1/backups/filesystem', { id: 'fail-1' });
    expect(again.status).toBe(422);
    const restore = await t.call('POST', '/v1/backups/filesystem/fail-1/restore', {});
    expect((await restore.json()).error[0].message).toMatch(/has status FAILED/);
  });

  it('retries a shard after a transient backend error and succeeds', async () => {
    faults.set('retry-1/node-1/Beta/0', { error: () => new UnavailableError('backend briefly away'), times: 1 });
    expect((await t.call('POST', '/v1/backups/filesystem', { id: 'retry-1', include: ['Beta'] })).status).toBe(200);
    const done = await waitForStatus(t.call, '/v1/backups/filesystem/retry-1');
    expect(done.status, JSON.stringify(done)).toBe('SUCCESS');
    expect(faults.get('retry-1/node-1/Beta/0')?.times).toBe(0);
  });

  it('runs several backups with different ids at the same time', async () => {
    const ids = ['many-1', 'many-2', 'many-3'];
    const answers = await Promise.all(ids.map((id) => t.call('POST', '/v1/backups/filesystem', { id, config: { CompressionLevel: 'BestSpeed' } })));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    const done = await Promise.all(ids.map((id) => waitForStatus(t.call, `/v1/backups/filesystem/${id}`)));
    expect(done.map((d) => [d.id, d.status]), JSON.stringify(done.map((d) => d.error))).toEqual(ids.map((id) => [id, 'SUCCESS']));
    for (const d of done) expect(d.progress?.docs).toBe(600);
  });

  it('keeps one id in two locations apart: status, list and cancel answer for the location asked', async () => {
    const root = t.config.backends.filesystem.path;
    expect((await t.call('POST', '/v1/backups/filesystem', { id: 'twin', include: ['Alpha'] })).status).toBe(200);
    expect((await waitForStatus(t.call, '/v1/backups/filesystem/twin')).status).toBe('SUCCESS');
    // The same id under config.Path (Weaviate's override): another backup, in another place.
    expect((await t.call('POST', '/v1/backups/filesystem', { id: 'twin', include: ['Beta'], config: { Path: 'elsewhere' } })).status).toBe(200);
    // Cancelling the first one, which has finished, must not reach the one running elsewhere.
    const cancel = await t.call('DELETE', '/v1/backups/filesystem/twin');
    expect(cancel.status).toBe(422);
    expect((await cancel.json()).error[0].message).toMatch(/already finished \(SUCCESS\)/);
    expect((await waitForStatus(t.call, '/v1/backups/filesystem/twin?path=elsewhere')).status).toBe('SUCCESS');

    const status = async (query: string) => (await t.call('GET', `/v1/backups/filesystem/twin${query}`)).json();
    expect(await status('')).toMatchObject({ status: 'SUCCESS', path: path.join(root, 'twin') });
    expect(await status('?path=elsewhere')).toMatchObject({ status: 'SUCCESS', path: path.join(root, 'elsewhere', 'twin') });
    const listed = async (query: string) => ((await (await t.call('GET', `/v1/backups/filesystem${query}`)).json()) as { id: string }[]).filter((b) => b.id === 'twin');
    expect(await listed('')).toEqual([expect.objectContaining({ classes: ['Alpha'] })]);
    expect(await listed('?path=elsewhere')).toEqual([expect.objectContaining({ classes: ['Beta'] })]);
  });
});
