/**
 * Nodes on their own hosts, end to end (issue 15, "How it is shown"): every node is its own
 * `node/main.ts` process over its own data directory, the API and two workers run with data
 * directories that stay empty, and nothing is shared but Redis and the backup backends (S3 on
 * s3rver, and the filesystem). A backup taken on cluster A (node-1..3) is restored into
 * cluster B (alpha, beta, gamma) through a node_mapping; nodes are SIGKILLed during a backup
 * and during a restore; a second API replica sees a class created through the first at once.
 *
 * "Mid-job" moments come from data size and rate, not sleeps: `Bulk` is one shard of BULK_DOCS
 * documents on node-1, which the workers move at BYTES_PER_SECOND (WORKER_MAX_BYTES_PER_SECOND).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND_FIXTURES, type BackendFixture } from '../support/backend-fixtures.ts';
import { waitForStatus, type StatusBody } from '../support/backups.ts';
import { filesUnder, startCluster, type Cluster } from '../support/cluster.ts';
import { startNodeHosts, type NodeHosts } from '../support/node-processes.ts';
import { TEST_CLUSTER_SECRET } from '../support/nodes.ts';
import { freePort } from '../../shared/redis-server.ts';
import { spawnNode } from '../support/process.ts';
import { tempDir } from '../support/temp.ts';

const NODES_A = ['node-1', 'node-2', 'node-3'];
const NODES_B = ['alpha', 'beta', 'gamma'];
const ARTICLES = 1200;
const BULK_DOCS = 4000;
const BYTES_PER_SECOND = 1024 * 1024;
const final = (b: StatusBody) => ['SUCCESS', 'FAILED', 'CANCELED'].includes(b.status);
const uuid = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

async function importObjects(c: Cluster, cls: string, count: number, text: (n: number) => string): Promise<void> {
  for (let i = 0; i < count; i += 200) {
    const objects = Array.from({ length: Math.min(200, count - i) }, (_, j) => ({ class: cls, id: uuid(i + j), properties: { n: i + j, text: text(i + j) } }));
    const res = await c.call('POST', '/v1/batch/objects', { objects });
    expect(res.status).toBe(200);
    const answers = (await res.json()) as { result: { errors?: unknown } }[];
    expect(answers.filter((a) => a.result.errors)).toEqual([]);
  }
}

/** Every object of a class through the API's cursor listing, id → properties as JSON. */
async function objectsOf(c: Cluster, cls: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let after: string | undefined;
  for (;;) {
    const res = await c.call('GET', `/v1/objects?class=${cls}&limit=500${after ? `&after=${after}` : ''}`);
    expect(res.status).toBe(200);
    const { objects } = (await res.json()) as { objects: { id: string; properties: unknown }[] };
    for (const o of objects) out.set(o.id, JSON.stringify(o.properties));
    if (objects.length < 500) return out;
    after = objects.at(-1)!.id;
  }
}

/** Top-level entries of a node's data directory: its metadata copy and its own node's shards. */
const entriesOf = (dir: string) => fs.readdirSync(dir).sort();

describe('nodes on their own hosts', () => {
  const tmp = tempDir('shardvault-cluster-e2e-');
  let s3: BackendFixture;
  let nodesA: NodeHosts;
  let nodesB: NodeHosts;
  let A: Cluster;
  let B: Cluster;
  const workerDirs = { A: path.join(tmp.dir, 'worker-a'), B: path.join(tmp.dir, 'worker-b') };

  beforeAll(async () => {
    s3 = await BACKEND_FIXTURES.s3(tmp.dir);
    nodesA = await startNodeHosts(path.join(tmp.dir, 'hosts-a'), NODES_A);
    nodesB = await startNodeHosts(path.join(tmp.dir, 'hosts-b'), NODES_B);
    const env = { WORKER_MAX_BYTES_PER_SECOND: String(BYTES_PER_SECOND), WORKER_SHUTDOWN_SECONDS: '1' };
    A = await startCluster({ name: 'A', dataDir: workerDirs.A, nodes: NODES_A, backendEnv: s3.env, workers: 2, env: { ...env, ...nodesA.env } });
    B = await startCluster({ name: 'B', dataDir: workerDirs.B, nodes: NODES_B, backendEnv: s3.env, workers: 2, env: { ...env, ...nodesB.env } });
    expect((await A.call('POST', '/v1/schema', { class: 'Article', shardingConfig: { desiredCount: 3 } })).status).toBe(200);
    expect((await A.call('POST', '/v1/schema', { class: 'Bulk', shardingConfig: { desiredCount: 1 } })).status).toBe(200);
    await importObjects(A, 'Article', ARTICLES, (n) => `article ${n} `.repeat(20));
    await importObjects(A, 'Bulk', BULK_DOCS, (n) => `bulk ${n} lorem ipsum dolor sit amet `.repeat(40));
  }, 240_000);

  afterAll(async () => {
    await A?.stop();
    await B?.stop();
    await nodesA?.stop();
    await nodesB?.stop();
    await s3?.stop();
    tmp.cleanup();
  });

  it('backs up to S3 and to the filesystem, restores into three other nodes, identically; each node holds only its own shards', async () => {
    const articles = await objectsOf(A, 'Article');
    expect(articles.size).toBe(ARTICLES);
    for (const backend of ['s3', 'filesystem']) {
      const res = await A.call('POST', `/v1/backups/${backend}`, { id: 'cluster-main', include: ['Article'] });
      expect(res.status, JSON.stringify(await res.json())).toBe(200);
      const done = await waitForStatus(A.call, `/v1/backups/${backend}/cluster-main`, final, 120_000);
      expect(done.status, JSON.stringify(done)).toBe('SUCCESS');
    }
    for (const [backend, cls] of [['s3', 'Article'], ['filesystem', 'Article']] as const) {
      if (backend === 'filesystem') expect((await B.call('DELETE', `/v1/schema/${cls}`)).status).toBe(200);
      const res = await B.call('POST', `/v1/backups/${backend}/cluster-main/restore`, { node_mapping: { 'node-1': 'gamma', 'node-2': 'alpha', 'node-3': 'beta' } });
      expect(res.status, JSON.stringify(await res.json())).toBe(200);
      const done = await waitForStatus(B.call, `/v1/backups/${backend}/cluster-main/restore`, final, 120_000);
      expect(done.status, JSON.stringify(done)).toBe('SUCCESS');
      expect(await objectsOf(B, cls)).toEqual(articles);
    }
    // Each node's directory holds its copy of the metadata and its own shards, nothing else.
    for (const h of [...nodesA.hosts, ...nodesB.hosts]) {
      expect(entriesOf(h.dataDir), h.name).toEqual(['_cluster', h.name]);
      expect(filesUnder(h.dataDir).filter((f) => f.includes('.staging') || f.includes('.snapshots')), h.name).toEqual([]);
    }
    expect(filesUnder(path.join(nodesB.hosts[2]!.dataDir, 'gamma'))).toContain(path.join('Article', '0', 'data.mdb'));
    // The workers and the API never wrote to their data directories.
    expect(filesUnder(workerDirs.A)).toEqual([]);
    expect(filesUnder(workerDirs.B)).toEqual([]);
  }, 300_000);

  it('a class created through one API replica is visible through another at once', async () => {
    const port = await freePort();
    const replica = spawnNode('api/main.ts', [], {
      REDIS_URL: A.redis.url,
      DATA_DIR: workerDirs.A,
      PORT: String(port),
      GRPC_PORT: '0',
      ...s3.env,
      ...nodesA.env,
    });
    try {
      await replica.waitFor(/"msg":"api listening"/, 60_000);
      const other = `http://127.0.0.1:${port}`;
      for (let i = 0; i < 5; i++) {
        expect((await A.call('POST', '/v1/schema', { class: `Replica${i}` })).status).toBe(200);
        expect((await fetch(`${other}/v1/schema/Replica${i}`)).status).toBe(200);
        expect((await fetch(`${other}/v1/schema/Replica${i}`, { method: 'DELETE' })).status).toBe(200);
        expect((await A.call('GET', `/v1/schema/Replica${i}`)).status).toBe(404);
      }
    } finally {
      await replica.kill('SIGTERM');
    }
  }, 120_000);

  it('a node SIGKILLed during a backup fails it naming the node; restarted, the node serves its shards', async () => {
    const ok = await A.call('POST', '/v1/backups/s3', { id: 'bulk-ok', include: ['Bulk'] });
    expect(ok.status).toBe(200);
    expect((await waitForStatus(A.call, '/v1/backups/s3/bulk-ok', final, 120_000)).status).toBe('SUCCESS');

    // In a location of its own: no earlier snapshot of the shard there, so the node sends it
    // whole, at the workers' byte-rate limit (in bulk-ok's location it would send only what changed).
    const killed = '/v1/backups/s3/bulk-node-killed?path=e2e-node-killed';
    const res = await A.call('POST', '/v1/backups/s3', { id: 'bulk-node-killed', include: ['Bulk'], config: { Path: 'e2e-node-killed' } });
    expect(res.status).toBe(200);
    // Mid-read: documents counted, the last bytes not yet read.
    await waitForStatus(A.call, killed, (b) => (b.progress?.docs ?? 0) > 0 || final(b));
    const node1 = nodesA.hosts[0]!;
    await node1.proc.kill('SIGKILL');
    const started = Date.now();
    const done = await waitForStatus(A.call, killed, final, 120_000);
    expect(done.status, JSON.stringify(done)).toBe('FAILED');
    expect(done.error).toMatch(/node-1/);
    expect(Date.now() - started).toBeLessThan(90_000);
    // GET /v1/nodes tells, as Weaviate's does, which node is away.
    const nodes = (await (await A.call('GET', '/v1/nodes')).json()) as { nodes: { name: string; status: string; stats: { objectCount: number } }[] };
    expect(nodes.nodes.map((n) => [n.name, n.status])).toEqual([['node-1', 'UNAVAILABLE'], ['node-2', 'HEALTHY'], ['node-3', 'HEALTHY']]);
    expect(nodes.nodes[1]!.stats.objectCount).toBeGreaterThan(0);
    // The API stays ready: it serves the metadata and the other nodes' shards.
    expect((await A.call('GET', '/v1/.well-known/ready')).status).toBe(200);
    expect((await A.call('GET', killed)).status).toBe(200);

    await node1.restart();
    expect(await objectsOf(A, 'Bulk')).toHaveProperty('size', BULK_DOCS);
    const after = (await (await A.call('GET', '/v1/nodes')).json()) as { nodes: { name: string; status: string }[] };
    expect(after.nodes.every((n) => n.status === 'HEALTHY')).toBe(true);
    expect(entriesOf(node1.dataDir)).toEqual(['_cluster', 'node-1']);
  }, 300_000);

  it('a node SIGKILLed during a restore fails it naming the node: no staging left, no class published', async () => {
    const res = await B.call('POST', '/v1/backups/s3/bulk-ok/restore', { node_mapping: { 'node-1': 'gamma', 'node-2': 'alpha', 'node-3': 'beta' } });
    expect(res.status, JSON.stringify(await res.json())).toBe(200);
    await waitForStatus(B.call, '/v1/backups/s3/bulk-ok/restore', (b) => (b.progress?.bytes ?? 0) > 0 || final(b));
    const gamma = nodesB.hosts[2]!;
    await gamma.proc.kill('SIGKILL');
    const done = await waitForStatus(B.call, '/v1/backups/s3/bulk-ok/restore', final, 120_000);
    expect(done.status, JSON.stringify(done)).toBe('FAILED');
    expect(done.error).toMatch(/gamma/);
    await gamma.restart();
    expect((await B.call('GET', '/v1/schema/Bulk')).status).toBe(404);
    for (const h of nodesB.hosts) {
      expect(filesUnder(h.dataDir).filter((f) => f.includes('.staging') || f.includes('Bulk')), h.name).toEqual([]);
    }
    // The restarted node serves the shard it held before.
    expect((await objectsOf(B, 'Article')).size).toBe(ARTICLES);
  }, 300_000);

  it('a worker or an API whose CLUSTER_SECRET the nodes refuse stops at once, naming the setting', async () => {
    for (const entry of ['worker/main.ts', 'api/main.ts']) {
      const env = { ...nodesA.env, REDIS_URL: A.redis.url, CLUSTER_SECRET: 'not-the-secret-'.repeat(3), DATA_DIR: path.join(tmp.dir, 'wrong-secret'), PORT: String(await freePort()), GRPC_PORT: '0' };
      const proc = spawnNode(entry, [], env);
      const code = await Promise.race([proc.exited, new Promise((r) => setTimeout(() => r('still running'), 30_000))]);
      if (code === 'still running') await proc.kill();
      expect(code, proc.output()).toBe(1);
      expect(proc.output()).toContain(`CLUSTER_SECRET is not the cluster's: ${NODES_A.join(', ')} refuse it`);
    }
  }, 90_000);

  it("a node started on another node's data directory refuses to start, naming both", async () => {
    const borrowed = path.join(tmp.dir, 'borrowed');
    fs.cpSync(nodesA.hosts[2]!.dataDir, borrowed, { recursive: true });
    const proc = spawnNode('node/main.ts', [], { ...nodesA.env, NODE_NAME: 'node-2', DATA_DIR: borrowed, PORT: String(await freePort()) });
    expect(await proc.exited, proc.output()).toBe(2);
    expect(proc.output()).toContain(`DATA_DIR ${borrowed} holds the shards of node-3, not only node-2's`);
  }, 60_000);

  it('a node restarted on an empty data directory (its volume lost) names the shards it lost instead of serving them empty; the class deleted and restored, it serves them again', async () => {
    const node2 = nodesA.hosts[1]!;
    await node2.proc.kill('SIGKILL');
    fs.rmSync(node2.dataDir, { recursive: true, force: true });
    fs.mkdirSync(node2.dataDir);
    await node2.restart();
    // It takes the metadata from its peers as it starts, and says what it lost.
    await node2.proc.waitFor(/"lost":\["Article\/\d+"\]/);
    type Nodes = { nodes: { name: string; status: string; shards: { class: string; loaded: boolean; objectCount: number }[] }[] };
    const nodes = (await (await A.call('GET', '/v1/nodes')).json()) as Nodes;
    expect(nodes.nodes.map((n) => [n.name, n.status])).toEqual([['node-1', 'HEALTHY'], ['node-2', 'UNHEALTHY'], ['node-3', 'HEALTHY']]);
    expect(nodes.nodes[1]!.shards).toEqual([expect.objectContaining({ class: 'Article', loaded: false, objectCount: 0 })]);
    // Reading the class, or backing it up, fails naming the shard: not a class with a third of its objects gone.
    const lost = /shard Article\/\d+ of node node-2 is lost/;
    const read = await A.call('GET', '/v1/objects?class=Article&limit=500');
    expect(read.status).toBe(503);
    expect(JSON.stringify(await read.json())).toMatch(lost);
    expect((await A.call('POST', '/v1/backups/filesystem', { id: 'after-loss', include: ['Article'] })).status).toBe(200);
    const failed = await waitForStatus(A.call, '/v1/backups/filesystem/after-loss', final, 120_000);
    expect(failed.status).toBe('FAILED');
    expect(failed.error).toMatch(lost);
    expect(filesUnder(node2.dataDir).filter((f) => f.includes('Article'))).toEqual([]);

    // Deleted and restored from the backup taken before the loss, the class is whole again.
    expect((await A.call('DELETE', '/v1/schema/Article')).status).toBe(200);
    const res = await A.call('POST', '/v1/backups/s3/cluster-main/restore', {});
    expect(res.status, JSON.stringify(await res.json())).toBe(200);
    expect((await waitForStatus(A.call, '/v1/backups/s3/cluster-main/restore', final, 120_000)).status).toBe('SUCCESS');
    expect((await objectsOf(A, 'Article')).size).toBe(ARTICLES);
    const after = (await (await A.call('GET', '/v1/nodes')).json()) as Nodes;
    expect(after.nodes.every((n) => n.status === 'HEALTHY' && n.shards.every((s) => s.loaded))).toBe(true);
  }, 300_000);

  it('keeps the metadata on the nodes through a Redis flush, and the cluster secret out of every log line', async () => {
    const redis = B.redisClient();
    await redis.flushall();
    const schema = (await (await B.call('GET', '/v1/schema')).json()) as { classes: { class: string }[] };
    expect(schema.classes.map((c) => c.class)).toEqual(['Article']);
    expect((await objectsOf(B, 'Article')).size).toBe(ARTICLES);
    const outputs = [A, B].flatMap((c) => [c.api, ...c.workers]).concat([...nodesA.hosts, ...nodesB.hosts].map((h) => h.proc));
    for (const proc of outputs) expect(proc.output()).not.toContain(TEST_CLUSTER_SECRET);
  }, 120_000);
});
