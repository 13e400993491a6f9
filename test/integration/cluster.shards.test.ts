/**
 * Nodes on their own hosts, for backups and restores: six storage nodes in-process
 * (test/support/nodes.ts: `createNode` over its own DATA_DIR each, on a free port, with a
 * cluster secret), a real Redis, and a worker with no data of its own — its catalog is the
 * nodes' metadata (RemoteCatalog) and its shards are theirs over HTTP (RemoteShardHost). The
 * source class lives on a1..a3 and is restored onto b1..b3 (node_mapping).
 */
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, pipeline, Readable } from 'node:stream';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configuredBackends } from '../../shared/backups/backends.ts';
import { createBackupService, type BackupService } from '../../shared/backups/service.ts';
import { OperationStore } from '../../shared/backups/state.ts';
import type { ClusterCatalog } from '../../shared/cluster/catalog.ts';
import { RemoteCatalog } from '../../shared/cluster/metadata.ts';
import { RemoteShardHost } from '../../shared/cluster/shard-host.ts';
import { loadConfig, type Config } from '../../shared/config.ts';
import { UnavailableError } from '../../shared/errors.ts';
import { allButEvery, withoutRanges } from '../../shared/formats/ranges.ts';
import type { ProcessorOf } from '../../shared/jobs/catalog.ts';
import { createLogger } from '../../shared/logger.ts';
import { createRedis } from '../../shared/redis.ts';
import { CHUNK_SIZE } from '../../shared/repository/format.ts';
import { shardFor } from '../../shared/store/hash.ts';
import type { ShardSnapshot } from '../../shared/store/shard-files.ts';
import type { Document } from '../../shared/store/schema.ts';
import { newIndexRecord, type IndexRecord } from '../../shared/store/store.ts';
import { commitRestore } from '../../worker/commit-restore.ts';
import { TransferSlots } from '../../worker/deps.ts';
import { createWorker, type ShardvaultWorker } from '../../worker/worker.ts';
import { makeDoc } from '../support/backups.ts';
import { startTestNodes, type TestNode, type TestNodes } from '../support/nodes.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { tempDir } from '../support/temp.ts';

const SOURCE = ['a1', 'a2', 'a3'];
const TARGET = ['b1', 'b2', 'b3'];
const MAPPING = { a1: 'b1', a2: 'b2', a3: 'b3' };
const FINAL = /^(SUCCESS|FAILED|CANCELED)$/;
/** Generous: CI machines run this with both cores busy. */
const WAIT = { timeout: 120_000, interval: 100 };

let redis: TestRedis;
let cluster: TestNodes;
let control: Redis;
let config: Config;
let catalog: RemoteCatalog;
let service: BackupService;
let worker: ShardvaultWorker;
let scratch: { dir: string; cleanup: () => void };
/** Runs before the real commit of a restore when set: the test's moment to stop a node. */
let beforeCommit: (() => Promise<void>) | undefined;
/** How the commit's next publishIndexes calls end: the coordinator dying just before, or its answer lost just after. */
const publishFaults: ('before' | 'after')[] = [];
/** The uids each publishIndexes call was given. */
const publishedUids: string[][] = [];
const originals = new Map<string, Map<string, string>>();

/** Bytes the worker has read of the nodes' snapshot streams. */
let snapshotBytes = 0;

/** The nodes' shards as the worker reaches them, counting the bytes of every snapshot it reads. */
class CountingShardHost extends RemoteShardHost {
  override async snapshot(...args: Parameters<RemoteShardHost['snapshot']>): Promise<ShardSnapshot> {
    const copy = await super.snapshot(...args);
    return {
      ...copy,
      stream: () => {
        const counter = new PassThrough();
        counter.on('data', (b: Buffer) => (snapshotBytes += b.length));
        return pipeline(copy.stream(), counter, () => undefined);
      },
    };
  }
}

async function bytesIn(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

async function bytesOf(stream: Readable): Promise<number> {
  return (await bytesIn(stream)).length;
}

const nodeNamed = (name: string): TestNode => cluster.nodes.find((n) => n.name === name)!;

/** A class over the source nodes, its documents written into the node holding each one's shard. */
async function seedClass(name: string, docs: number): Promise<void> {
  const rec = newIndexRecord(name, { shards: SOURCE.length }, SOURCE);
  await catalog.change((s) => ({ indexes: [...s.indexes, rec], metadata: { ...s.metadata, [name]: { owner: `team-${name}` } } }));
  const all = Array.from({ length: docs }, (_, i) => makeDoc(name, i));
  for (const node of SOURCE) {
    const mine = all.filter((d) => rec.placement[shardFor(d._id, rec.shards)] === node);
    await nodeNamed(node).store.writeDocuments(rec, mine);
  }
  originals.set(name, new Map(all.map((d) => [String(d._id), JSON.stringify(d)])));
}

/** Every document of a class, read on the nodes that hold its shards. */
function readClass(rec: IndexRecord): Map<string, string> {
  const out = new Map<string, string>();
  rec.placement.forEach((node, shard) => {
    for (const doc of nodeNamed(node).store.shardDocuments(rec, shard) as Iterable<Document>) out.set(String(doc._id), JSON.stringify(doc));
  });
  return out;
}

async function dropClass(name: string): Promise<void> {
  await catalog.change((s) => {
    const metadata = { ...s.metadata };
    delete metadata[name];
    return { indexes: s.indexes.filter((r) => r.name !== name), metadata };
  });
}

const stagingOf = (node: TestNode) => path.join(node.dataDir, node.name, '.staging');

beforeAll(async () => {
  redis = await startTestRedis();
  cluster = await startTestNodes([...SOURCE, ...TARGET]);
  scratch = tempDir('shardvault-cluster-worker-');
  config = loadConfig({
    DATA_DIR: path.join(scratch.dir, 'worker-data'),
    BACKUP_FILESYSTEM_PATH: path.join(scratch.dir, 'backups'),
    REDIS_URL: redis.url,
    GRPC_PORT: '0',
    CLUSTER_NODES: cluster.clusterNodes,
    CLUSTER_SECRET: 'test-cluster-secret-0123456789',
  });
  catalog = new RemoteCatalog(cluster.client);
  control = createRedis(redis.url);
  const logger = createLogger('silent');
  service = createBackupService({ config, catalog, redis: control, logger });
  const shards = new CountingShardHost(cluster.client);
  // The commit's catalog, with publishIndexes failing as publishFaults says.
  const commitCatalog = new Proxy(catalog, {
    get(target, prop) {
      if (prop !== 'publishIndexes') {
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      }
      const publish: ClusterCatalog['publishIndexes'] = async (records, metadata) => {
        publishedUids.push(records.map((r) => r.uid));
        const fault = publishFaults.shift();
        if (fault === 'before') throw new UnavailableError('the coordinator died before publishing (test)');
        await target.publishIndexes(records, metadata);
        if (fault === 'after') throw new UnavailableError('the answer was lost after publishing (test)');
      };
      return publish;
    },
  });
  // The real commit, with a moment before it for the test to stop a node.
  const commit: ProcessorOf<'commit-restore'> = commitRestore({
    config,
    catalog: commitCatalog,
    shards,
    logger,
    ops: new OperationStore(control),
    backends: configuredBackends(config),
    transfers: new TransferSlots(1),
  });
  worker = createWorker({
    config,
    logger,
    redisUrl: redis.url,
    catalog: new RemoteCatalog(cluster.client),
    shards,
    processors: {
      'commit-restore': async (job, token, signal) => {
        await beforeCommit?.();
        return commit(job, token, signal);
      },
    },
  });
  await worker.start();
  await seedClass('Alpha', 600);
  await seedClass('Beta', 300);
}, 120_000);

afterAll(async () => {
  await worker?.stop();
  await service?.close();
  control?.disconnect();
  await cluster?.close();
  await redis?.stop();
  scratch?.cleanup();
});

describe('backup and restore with nodes on their own hosts', () => {
  it('backs up from three nodes and restores onto three others: the same documents, and the worker keeps no data', async () => {
    await service.create('filesystem', { id: 'nodes-1' });
    await expect.poll(async () => (await service.status('filesystem', 'nodes-1')).status, WAIT).toMatch(FINAL);
    expect(await service.status('filesystem', 'nodes-1')).toMatchObject({ status: 'SUCCESS', classes: ['Alpha', 'Beta'], progress: { docs: 900 } });

    await dropClass('Alpha');
    await service.restore('filesystem', 'nodes-1', { include: ['Alpha'], node_mapping: MAPPING });
    await expect.poll(async () => (await service.restoreStatus('filesystem', 'nodes-1')).status, WAIT).toMatch(FINAL);
    const restored = await service.restoreStatus('filesystem', 'nodes-1');
    expect(restored.status, JSON.stringify(restored)).toBe('SUCCESS');

    const rec = (await catalog.getIndex('Alpha'))!;
    expect(rec.placement).toEqual(TARGET);
    expect(readClass(rec)).toEqual(originals.get('Alpha'));
    expect(await catalog.listMetadata('Alpha')).toEqual({ owner: 'team-Alpha' });
    for (const node of cluster.nodes) expect(fs.existsSync(path.join(stagingOf(node), 'filesystem.nodes-1'))).toBe(false);
    // Stateless: the worker read and wrote every shard over HTTP.
    const workerData = config.dataDir;
    expect(fs.existsSync(workerData) ? fs.readdirSync(workerData) : []).toEqual([]);
  }, 180_000);

  it('streams a snapshot with its size and documents; one the worker abandons unread lets its pages go on the node', async () => {
    const rec = (await catalog.getIndex('Beta'))!;
    const host = new RemoteShardHost(cluster.client);
    // The node holds a snapshot's pages with a read transaction (its LMDB reader table shows
    // the transaction's id) until the answer ends or is dropped: none is left holding them.
    const db = nodeNamed(rec.placement[0]!).store.shardDb(rec, 0);
    const pinned = () => db.readerList().split('\n').slice(1).filter((line) => /^\d+$/.test(line.trim().split(/\s+/)[2] ?? '')).length;
    const read = await host.snapshot(rec, 0);
    let bytes = 0;
    for await (const chunk of read.stream()) bytes += (chunk as Buffer).length;
    expect(bytes).toBe(read.size);
    expect(read.docs).toBe([...originals.get('Beta')!.keys()].filter((id) => shardFor(id, rec.shards) === 0).length);
    await expect.poll(pinned, WAIT).toBe(0);
    const abandoned = await host.snapshot(rec, 0);
    await abandoned.release();
    await expect.poll(pinned, WAIT).toBe(0);
  }, 60_000);

  it("a shard upload cut off half-way leaves what another upload of the same shard staged meanwhile whole, and nothing of its own", async () => {
    // A restore's shard job whose first run was stopped (its lock lost, its worker shutting
    // down) while the run that took the job over streams the same shard to the same node: the
    // node sees the first upload cut off, and once removed the whole staging under it.
    const rec = (await catalog.getIndex('Alpha'))!;
    const host = new RemoteShardHost(cluster.client);
    const copy = await host.snapshot(rec, 0);
    const bytes = await bytesIn(copy.stream());
    const restore = { kind: 'restore', backend: 'filesystem', id: 'overlapping-uploads' } as const;
    const ref = { restore, node: 'b1', index: 'Alpha', shard: 0 };
    const shardDirs = path.join(stagingOf(nodeNamed('b1')), 'filesystem.overlapping-uploads', 'Alpha');
    const stagedBytes = () => (fs.existsSync(shardDirs) ? fs.readdirSync(shardDirs, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).reduce((n, e) => n + fs.statSync(path.join(e.parentPath, e.name)).size, 0) : 0);

    // The first upload has sent half the shard; the second has sent all of it but not ended.
    const cut = new AbortController();
    const first = new PassThrough();
    first.write(bytes.subarray(0, bytes.length >> 1));
    const firstRun = host.stage(ref, 'file', first, cut.signal);
    firstRun.catch(() => undefined);
    await expect.poll(stagedBytes, WAIT).toBeGreaterThan(0);
    const second = new PassThrough();
    second.write(bytes);
    const secondRun = host.stage(ref, 'file', second);
    secondRun.catch(() => undefined);
    await expect.poll(stagedBytes, WAIT).toBeGreaterThanOrEqual(bytes.length);
    // The first is cut off, and the node lets it go (removes what it staged) ...
    cut.abort(new Error('the first run was stopped (test)'));
    await expect(firstRun).rejects.toThrow();
    await expect.poll(() => fs.readdirSync(shardDirs).length, WAIT).toBeLessThanOrEqual(1);
    // ... before the second ends: the second is staged whole, and only it.
    second.end();
    expect(await secondRun).toBe(copy.docs);
    expect(fs.readdirSync(shardDirs)).toEqual(['0']);
    await host.prepare('b1', restore, [{ index: 'Alpha', shard: 0 }]);
    await host.abort('b1', restore, [{ index: 'Alpha', shard: 0 }]);
    expect(fs.existsSync(path.join(stagingOf(nodeNamed('b1')), 'filesystem.overlapping-uploads'))).toBe(false);
  }, 60_000);

  it('answers a snapshot asked against a base of its own file with the ranges unchanged since, leaving their pages out but every every-th; against another file, whole', async () => {
    const rec = (await catalog.getIndex('Beta'))!;
    const host = new RemoteShardHost(cluster.client);
    const lineage = await host.lineage(rec, 1);
    expect(lineage).toMatch(/^[0-9a-f]{32}$/);
    const first = await host.snapshot(rec, 1);
    expect(await bytesOf(first.stream())).toBe(first.size);
    expect(first.origin).toEqual({ lineage, generation: expect.stringMatching(/^\d+$/) });
    const generation = first.origin!.generation;

    const doc = makeDoc('Beta', [...originals.get('Beta')!.keys()].map((id) => Number(id.split('-')[1])).find((n) => shardFor(makeDoc('Beta', n)._id, rec.shards) === 1)!, { note: 'changed' });
    // (Backup nodes-1, which later tests restore, holds Beta as it was before.)
    await nodeNamed(rec.placement[1]!).store.writeDocuments(rec, [doc]);

    const next = await host.snapshot(rec, 1, undefined, { lineage: lineage!, generation, chunk: CHUNK_SIZE, every: 4 });
    expect(BigInt(next.origin!.generation)).toBeGreaterThan(BigInt(generation));
    expect(next.unchanged!.length).toBeGreaterThan(0);
    const leave = allButEvery(next.unchanged!, CHUNK_SIZE, 4);
    const left = leave.reduce((sum, n, i) => (i % 2 ? sum + n : sum), 0);
    expect(left).toBeGreaterThan(0);
    const sent = await bytesIn(next.stream());
    expect(sent.length).toBe(next.size - left);
    // The bytes sent are the snapshot's own, but for those left out.
    const whole = await host.snapshot(rec, 1);
    expect(whole.origin).toEqual(next.origin);
    expect(sent.equals(withoutRanges(await bytesIn(whole.stream()), 0, leave))).toBe(true);

    // Another file's lineage (a shard restored or recreated since its base): sent whole.
    const other = await host.snapshot(rec, 1, undefined, { lineage: 'f'.repeat(32), generation, chunk: CHUNK_SIZE, every: 4 });
    expect(other.unchanged).toBeUndefined();
    expect(await bytesOf(other.stream())).toBe(other.size);
  }, 60_000);

  it('an incremental backup over the network: each node sends the pages changed since the latest backup of its shard (and a sample), and the backup restores as it was taken', async () => {
    await seedClass('Gamma', 6000);
    const backup = async (id: string) => {
      snapshotBytes = 0;
      await service.create('filesystem', { id, include: ['Gamma'] });
      await expect.poll(async () => (await service.status('filesystem', id)).status, WAIT).toMatch(FINAL);
      expect(await service.status('filesystem', id)).toMatchObject({ status: 'SUCCESS' });
      return snapshotBytes;
    };
    const full = await backup('gamma-1');
    // 30 documents replaced where they are stored: a few pages of each shard.
    const rec = (await catalog.getIndex('Gamma'))!;
    const changed = Array.from({ length: 30 }, (_, i) => makeDoc('Gamma', i, { note: 'changed' }));
    for (const node of SOURCE) await nodeNamed(node).store.writeDocuments(rec, changed.filter((d) => rec.placement[shardFor(d._id, rec.shards)] === node));
    for (const d of changed) originals.get('Gamma')!.set(String(d._id), JSON.stringify(d));
    const incremental = await backup('gamma-2');
    expect(incremental).toBeLessThan(full / 4);

    await dropClass('Gamma');
    await service.restore('filesystem', 'gamma-2', { include: ['Gamma'], node_mapping: MAPPING });
    await expect.poll(async () => (await service.restoreStatus('filesystem', 'gamma-2')).status, WAIT).toMatch(FINAL);
    expect((await service.restoreStatus('filesystem', 'gamma-2')).status).toBe('SUCCESS');
    expect(readClass((await catalog.getIndex('Gamma'))!)).toEqual(originals.get('Gamma'));
  }, 180_000);

  it('answers 401 on every internal path without the cluster secret or with a wrong one; health stays open', async () => {
    const rec = (await catalog.getIndex('Beta'))!;
    const paths: [string, string][] = [
      ['GET', '/internal/metadata'],
      ['GET', `/internal/indexes/Beta/shards/0/snapshot?uid=${rec.uid}`],
      ['GET', `/internal/indexes/Beta/shards/0/lineage?uid=${rec.uid}`],
      ['PUT', '/internal/restores/filesystem/nodes-1/shards/Beta/0?node=b1&kind=file'],
      ['POST', '/internal/restores/filesystem/nodes-1/prepare'],
      ['POST', '/internal/restores/filesystem/nodes-1/publish'],
      ['POST', '/internal/restores/filesystem/nodes-1/abort'],
    ];
    for (const node of cluster.nodes) {
      for (const auth of [undefined, 'Bearer wrong-secret-0123456789']) {
        for (const [method, p] of paths) {
          const res = await fetch(`${node.url}${p}`, { method, headers: auth ? { authorization: auth } : {}, body: method === 'GET' || method === 'DELETE' ? undefined : '{}' });
          expect(res.status, `${method} ${p} on ${node.name} with ${auth ?? 'no secret'}`).toBe(401);
        }
      }
      expect((await fetch(`${node.url}/health/live`)).status).toBe(200);
      expect((await fetch(`${node.url}/health/ready`)).status).toBe(200);
    }
  }, 60_000);

  it('refuses a shard placed on another node and a restore path that names no restore, naming what is wrong', async () => {
    const rec = (await catalog.getIndex('Beta'))!;
    // Beta/0 lives on a1: a2 refuses it, naming both.
    await expect(cluster.client.request('a2', `/internal/indexes/Beta/shards/0/snapshot?uid=${rec.uid}`)).rejects.toThrow(/placed on node a1, not on node a2/);
    await expect(cluster.client.request('a1', '/internal/indexes/Beta/shards/0/snapshot?uid=not-its-uid')).rejects.toThrow(/deleted or recreated/);
    await expect(cluster.client.request('a1', `/internal/indexes/Beta/shards/x/snapshot?uid=${rec.uid}`)).rejects.toThrow(/invalid shard number "x"/);
    await expect(cluster.client.request('a1', `/internal/indexes/Beta/shards/0/snapshot?uid=${rec.uid}&lineage=${'a'.repeat(32)}&since=x&chunk=4096&every=32`)).rejects.toThrow(
      /snapshot's base .*generation: a generation is a decimal transaction id/,
    );
    await expect(cluster.client.request('b1', '/internal/restores/filesystem/nodes-1/shards/Beta/0?node=b2&kind=file', { method: 'PUT', body: Readable.from([Buffer.from('x')]) })).rejects.toThrow(/placed on node b2, not on node b1/);
    await expect(cluster.client.request('b1', '/internal/restores/nowhere/nodes-1/shards/Beta/0?node=b1&kind=file', { method: 'PUT', body: Readable.from([Buffer.from('x')]) })).rejects.toThrow(/invalid restore "nowhere"/);
    await expect(cluster.client.request('b1', '/internal/restores/filesystem/Bad.Id/abort', { method: 'POST', json: { node: 'b1', shards: [] } })).rejects.toThrow(/backup id/);
    await expect(cluster.client.request('b1', '/internal/restores/filesystem/nodes-1/abort', { method: 'POST', json: { node: 'b1', shards: [{ index: '../x', shard: 0 }] } })).rejects.toThrow(
      /invalid index name/,
    );
  }, 60_000);

  it('a target node stopped before the commit ends the restore FAILED naming it: no staging left on the others, no class published', async () => {
    await dropClass('Beta');
    const b2 = nodeNamed('b2');
    beforeCommit = async () => {
      beforeCommit = undefined;
      // Every shard is staged by now: b1 and b3 hold theirs.
      for (const name of ['b1', 'b3']) expect(fs.readdirSync(path.join(stagingOf(nodeNamed(name)), 'filesystem.nodes-1', 'Beta'))).toHaveLength(1);
      await b2.stop();
    };
    try {
      await service.restore('filesystem', 'nodes-1', { include: ['Beta'], node_mapping: MAPPING });
      await expect.poll(async () => (await service.restoreStatus('filesystem', 'nodes-1')).status, WAIT).toMatch(FINAL);
      const failed = await service.restoreStatus('filesystem', 'nodes-1');
      expect(failed.status, JSON.stringify(failed)).toBe('FAILED');
      expect(failed.error).toMatch(/prepare on node b2: node b2 is unreachable/);
      expect(await catalog.getIndex('Beta')).toBeUndefined();
      for (const name of ['b1', 'b3']) {
        const node = nodeNamed(name);
        expect(fs.existsSync(path.join(stagingOf(node), 'filesystem.nodes-1'))).toBe(false);
        expect(fs.existsSync(path.join(node.dataDir, name, 'Beta'))).toBe(false);
      }
    } finally {
      beforeCommit = undefined;
      await b2.start();
    }
  }, 180_000);

  it('a commit that dies before publishing, then loses the answer after publishing, is finished by its retries: one publish, the same uids', async () => {
    publishFaults.push('before', 'after');
    publishedUids.length = 0;
    await service.restore('filesystem', 'nodes-1', { include: ['Beta'], node_mapping: MAPPING });
    await expect.poll(async () => (await service.restoreStatus('filesystem', 'nodes-1')).status, WAIT).toMatch(FINAL);
    const restored = await service.restoreStatus('filesystem', 'nodes-1');
    expect(restored.status, JSON.stringify(restored)).toBe('SUCCESS');
    // Attempt 1 died before, attempt 2 published and lost the answer, attempt 3 found it published.
    expect(publishedUids).toHaveLength(2);
    expect(publishedUids[1]).toEqual(publishedUids[0]);
    const rec = (await catalog.getIndex('Beta'))!;
    expect(rec.uid).toBe(publishedUids[0]![0]);
    expect(readClass(rec)).toEqual(originals.get('Beta'));
    for (const node of cluster.nodes) expect(fs.existsSync(path.join(stagingOf(node), 'filesystem.nodes-1'))).toBe(false);
  }, 180_000);
});
