/**
 * The cluster's metadata on nodes that run on their own hosts: every node keeps a versioned
 * copy, a change is committed on all of them, and any coordinator (an API replica, a worker)
 * sees a change made through another at once. Real nodes over HTTP, no shared directory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteCatalog } from '../../shared/cluster/metadata.ts';
import { NodeClient } from '../../shared/cluster/node-client.ts';
import { ConflictError, LostShardError, UnavailableError } from '../../shared/errors.ts';
import type { IndexRecord } from '../../shared/store/store.ts';
import { startTestNodes, TEST_CLUSTER_SECRET, type TestNodes } from '../support/nodes.ts';

const record = (name: string, uid = `${name}-uid`): IndexRecord => ({
  name,
  uid,
  shards: 3,
  placement: ['node-1', 'node-2', 'node-3'],
  schema: { _type: 'object' } as unknown as IndexRecord['schema'],
  createdAt: new Date(0).toISOString(),
});

let cluster: TestNodes;
beforeAll(async () => {
  cluster = await startTestNodes(['node-1', 'node-2', 'node-3']);
});
afterAll(async () => {
  await cluster?.close();
});

describe('cluster metadata on the nodes', () => {
  it('a change through one coordinator is visible through another at once, and every node holds it', async () => {
    const a = new RemoteCatalog(cluster.client);
    const b = new RemoteCatalog(cluster.client);
    expect(await b.getIndex('Article')).toBeUndefined(); // b has read (and cached) the old state
    await a.publishIndexes([record('Article')], { Article: { owner: 'docs' } });
    expect((await b.getIndex('Article'))?.uid).toBe('Article-uid');
    expect(await b.listMetadata('Article')).toEqual({ owner: 'docs' });
    const versions = cluster.nodes.map((n) => n.store.clusterState());
    expect(new Set(versions.map((v) => v.version)).size).toBe(1);
    for (const v of versions) expect(v.indexes.map((r) => r.name)).toContain('Article');
  });

  it('publishing the same records again is done already; a taken name is a conflict', async () => {
    const a = new RemoteCatalog(cluster.client);
    const before = (await a.state()).version;
    await a.publishIndexes([record('Article')], {});
    expect((await a.state()).version).toBe(before);
    await expect(a.publishIndexes([record('Article', 'other-uid')], {})).rejects.toThrow(ConflictError);
  });

  it('concurrent changes from two coordinators both apply, one after the other', async () => {
    const a = new RemoteCatalog(cluster.client);
    const b = new RemoteCatalog(cluster.client);
    const names = Array.from({ length: 6 }, (_, i) => `Concurrent${i}`);
    await Promise.all(names.map((n, i) => (i % 2 ? a : b).publishIndexes([record(n)], {})));
    const state = await a.state();
    for (const n of names) expect(state.indexes.map((r) => r.name)).toContain(n);
    for (const node of cluster.nodes) expect(node.store.clusterState().version).toBe(state.version);
  }, 60_000);

  it('a node that missed a commit gets the decided version before the next change', async () => {
    const a = new RemoteCatalog(cluster.client);
    const current = await a.state();
    // A coordinator prepared a change on every node, committed it on node-1 only, then died.
    const decided = { version: current.version + 1, indexes: [...current.indexes, record('HalfCommitted')], metadata: current.metadata };
    for (const node of cluster.client.nodes) {
      await cluster.client.request(node, '/internal/metadata/prepare', { method: 'POST', json: { txn: 'dead-coordinator', from: current.version, state: decided } });
    }
    await cluster.client.request('node-1', '/internal/metadata/commit', { method: 'POST', json: { txn: 'dead-coordinator', state: decided } });
    await a.publishIndexes([record('AfterRepair')], {});
    for (const node of cluster.nodes) {
      const names = node.store.clusterState().indexes.map((r) => r.name);
      expect(names).toContain('HalfCommitted');
      expect(names).toContain('AfterRepair');
      // It had prepared the version it missed: its shards of it are new, not lost.
      expect(node.store.lostShards(), node.name).toEqual([]);
    }
  });

  it('a change fails naming the node that cannot be reached, and changes nothing anywhere', async () => {
    const a = new RemoteCatalog(cluster.client);
    const before = cluster.nodes.map((n) => n.store.clusterState().version);
    await cluster.nodes[2]!.stop();
    try {
      await expect(a.publishIndexes([record('WhileDown')], {})).rejects.toThrow(/node-3 is unreachable/);
      await expect(a.publishIndexes([record('WhileDown')], {})).rejects.toThrow(UnavailableError);
      expect(cluster.nodes.slice(0, 2).map((n) => n.store.clusterState().version)).toEqual(before.slice(0, 2));
      // Reads go on through the nodes that answer.
      expect(await a.getIndex('Article')).toBeDefined();
    } finally {
      await cluster.nodes[2]!.start();
    }
    // The restarted node kept its copy; the change now goes through.
    expect(cluster.nodes[2]!.store.clusterState().version).toBe(before[2]);
    await a.publishIndexes([record('WhileDown')], {});
    expect(cluster.nodes[2]!.store.clusterState().indexes.map((r) => r.name)).toContain('WhileDown');
  }, 60_000);

  it('a node whose data directory was emptied takes the metadata from its peers and refuses the shards it lost, by name, until their index is recreated', async () => {
    const a = new RemoteCatalog(cluster.client);
    await a.publishIndexes([record('Kept')], {});
    const node2 = cluster.nodes[1]!;
    const kept = (await a.getIndex('Kept'))!;
    await node2.store.shardDb(kept, 1).put('doc-1', { _id: 'doc-1' });
    const version = (await a.state()).version;

    await node2.stop();
    fs.rmSync(node2.dataDir, { recursive: true, force: true });
    await node2.start();
    // Before it has caught up, a process reading the metadata passes over its empty copy.
    const urls = Object.fromEntries(cluster.nodes.map((n) => [n.name, n.url]));
    const node2First = new NodeClient({ 'node-2': urls['node-2']!, 'node-1': urls['node-1']!, 'node-3': urls['node-3']! }, TEST_CLUSTER_SECRET);
    expect((await new RemoteCatalog(node2First).getIndex('Kept'))?.uid).toBe('Kept-uid');

    await node2.catchUp(cluster.client);
    expect(node2.store.clusterVersion()).toBe(version);
    expect(node2.store.lostShards()).toContainEqual({ index: 'Kept', uid: 'Kept-uid', shard: 1, node: 'node-2', version });
    expect(() => node2.store.shardDb(kept, 1)).toThrow(LostShardError);
    expect(() => node2.store.shardDb(kept, 1)).toThrow(/shard Kept\/1 of node node-2 is lost: .*delete the index and restore it from a backup/);
    // Not created empty, and named by the node's status (over the wire, as GET /v1/nodes asks it).
    expect(fs.existsSync(path.join(node2.dataDir, 'node-2', 'Kept'))).toBe(false);
    const status = await cluster.client.json<{ status: string; shards: { index: string; shard: number; lost?: boolean }[] }>('node-2', '/internal/status');
    expect(status.status).toBe('UNHEALTHY');
    expect(status.shards).toContainEqual({ index: 'Kept', shard: 1, docs: 0, lost: true });

    // Dropped and created again (as a restore does), the index is node-2's to fill again.
    await a.change((s) => ({ ...s, indexes: s.indexes.filter((r) => r.name !== 'Kept') }));
    await a.publishIndexes([record('Kept', 'Kept-uid-2')], {});
    expect(node2.store.lostShards().filter((l) => l.index === 'Kept')).toEqual([]);
    await node2.store.shardDb((await a.getIndex('Kept'))!, 1).put('doc-2', { _id: 'doc-2' });
  }, 60_000);

  it('every internal path refuses a request without the cluster secret; the health checks stay open', async () => {
    const url = cluster.nodes[0]!.url;
    for (const [method, path] of [['GET', '/internal/metadata'], ['POST', '/internal/metadata/prepare'], ['POST', '/internal/metadata/commit']] as const) {
      const res = await fetch(`${url}${path}`, { method, headers: { authorization: 'Bearer wrong-secret-wrong-secret' } });
      expect(res.status).toBe(401);
      expect(await res.text()).not.toContain(TEST_CLUSTER_SECRET);
      expect((await fetch(`${url}${path}`, { method })).status).toBe(401);
    }
    expect((await fetch(`${url}/health/live`)).status).toBe(200);
    const wrong = new NodeClient({ 'node-1': url }, 'wrong-secret-wrong-secret');
    await expect(wrong.json('node-1', '/internal/metadata')).rejects.toThrow(/node node-1: .*cluster secret/);
  });
});
