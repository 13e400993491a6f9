/**
 * The API over nodes on their own hosts (RemoteData): three in-process nodes, each with its own
 * data directory, and an API whose documents live only on them. Every document is on the node
 * owning its shard and nowhere else; schema growth is a metadata change every node holds.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, type Api } from '../../api/app.ts';
import { RemoteCatalog } from '../../shared/cluster/metadata.ts';
import { RemoteData } from '../../shared/cluster/remote-data.ts';
import { loadConfig } from '../../shared/config.ts';
import { packValue, unpackValue } from '../../shared/dump/msgpack-stream.ts';
import { NotFoundError, ValidationError } from '../../shared/errors.ts';
import { createLogger } from '../../shared/logger.ts';
import { createApiRedis } from '../../shared/redis.ts';
import { shardFor } from '../../shared/store/hash.ts';
import { startTestNodes, TEST_CLUSTER_SECRET, type TestNodes } from '../support/nodes.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { tempDir } from '../support/temp.ts';

const NODES = ['node-1', 'node-2', 'node-3'];
const uuid = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

let cluster: TestNodes;
let redis: TestRedis;
let api: Api;
let closeApi: () => Promise<void>;

beforeAll(async () => {
  [cluster, redis] = await Promise.all([startTestNodes(NODES), startTestRedis()]);
  const { dir, cleanup } = tempDir('shardvault-api-');
  const config = loadConfig({
    DATA_DIR: `${dir}/data`,
    REDIS_URL: redis.url,
    GRPC_PORT: '0',
    CLUSTER_NODES: cluster.clusterNodes,
    CLUSTER_SECRET: TEST_CLUSTER_SECRET,
  });
  const apiRedis = createApiRedis(redis.url);
  api = createApi({ config, data: new RemoteData(cluster.client, new RemoteCatalog(cluster.client), config.maxBodyBytes), logger: createLogger('silent'), redis: apiRedis });
  closeApi = async () => {
    apiRedis.disconnect();
    cleanup();
  };
});
afterAll(async () => {
  await closeApi?.();
  await cluster?.close();
  await redis?.stop();
});

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return api.app.request(path, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** Which nodes' stores hold document `id` of `index`. */
function holders(index: string, id: string | number): string[] {
  return cluster.nodes.filter((n) => n.store.getIndex(index) && n.store.readDoc(n.store.getIndex(index)!, id)).map((n) => n.name);
}

describe('the API over nodes on their own hosts', () => {
  it('creates a Weaviate class on every node, its shards placed across them', async () => {
    const res = await call('POST', '/v1/schema', {
      class: 'Article',
      properties: [{ name: 'title', dataType: ['text'] }, { name: 'words', dataType: ['int'] }],
      shardingConfig: { desiredCount: 3 },
    });
    expect(res.status).toBe(200);
    const uids = cluster.nodes.map((n) => n.store.getIndex('Article')?.uid);
    expect(uids[0]).toBeDefined();
    expect(new Set(uids).size).toBe(1);
    expect(new Set(cluster.nodes[0]!.store.getIndex('Article')!.placement)).toEqual(new Set(NODES));
    expect((await call('POST', '/v1/schema', { class: 'Article' })).status).toBe(422);
  });

  it('imports a batch, each object stored only on the node owning its shard', async () => {
    const objects = Array.from({ length: 30 }, (_, i) => ({ class: 'Article', id: uuid(i), properties: { title: `t${i}`, words: i } }));
    const res = await call('POST', '/v1/batch/objects', { objects: [...objects, { class: 'Article', id: uuid(99), properties: { words: 'many' } }] });
    expect(res.status).toBe(200);
    const answered = (await res.json()) as { result: { errors?: unknown } }[];
    expect(answered.slice(0, 30).every((o) => !o.result.errors)).toBe(true);
    expect(answered[30]!.result.errors).toBeDefined();
    const placement = cluster.nodes[0]!.store.getIndex('Article')!.placement;
    for (let i = 0; i < 30; i++) expect(holders('Article', uuid(i))).toEqual([placement[shardFor(uuid(i), 3)]]);
    const info = await (await call('GET', '/Article/:info')).json();
    expect(info.docs).toBe(30);
    expect(info.placement.map((p: { docs: number }) => p.docs).reduce((a: number, b: number) => a + b)).toBe(30);
  });

  it('gets one object, and lists every object in id order through the cursor', async () => {
    const one = await (await call('GET', `/v1/objects/Article/${uuid(7)}`)).json();
    expect(one).toMatchObject({ class: 'Article', id: uuid(7), properties: { title: 't7', words: 7 } });
    expect((await call('HEAD', `/v1/objects/Article/${uuid(98)}`)).status).toBe(404);
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await (await call('GET', `/v1/objects?class=Article&limit=7${after ? `&after=${after}` : ''}`)).json();
      if (page.objects.length === 0) break;
      seen.push(...page.objects.map((o: { id: string }) => o.id));
      after = seen.at(-1);
    }
    expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => uuid(i)));
  });

  it('patches an object with a new property: the schema grows on every node, the object on its owner', async () => {
    const res = await call('PATCH', `/v1/objects/Article/${uuid(3)}`, { class: 'Article', properties: { summary: 'short' } });
    expect(res.status).toBe(204);
    const got = await (await call('GET', `/v1/objects/Article/${uuid(3)}`)).json();
    expect(got.properties).toEqual({ title: 't3', words: 3, summary: 'short' });
    for (const n of cluster.nodes) expect(n.store.getIndex('Article')!.schema).toHaveProperty('summary');
    const replaced = await (await call('PUT', `/v1/objects/Article/${uuid(4)}`, { class: 'Article', properties: { title: 'new' } })).json();
    expect(replaced.properties).toEqual({ title: 'new' });
    expect((await call('PATCH', `/v1/objects/Article/${uuid(98)}`, { class: 'Article', properties: {} })).status).toBe(404);
  });

  it('deletes an object from its owner, then the class from every node', async () => {
    expect((await call('DELETE', `/v1/objects/Article/${uuid(5)}`)).status).toBe(204);
    expect(holders('Article', uuid(5))).toEqual([]);
    expect((await call('GET', `/v1/objects/Article/${uuid(5)}`)).status).toBe(404);
    expect((await call('DELETE', `/v1/objects/Article/${uuid(5)}`)).status).toBe(404);
    expect((await call('DELETE', '/v1/schema/Article')).status).toBe(200);
    for (const n of cluster.nodes) expect(n.store.getIndex('Article')).toBeUndefined();
    // Each node removed its shards of the class, and the class's directory with them.
    for (const n of cluster.nodes) expect(fs.existsSync(path.join(n.dataDir, n.name, 'Article')), n.name).toBe(false);
    expect((await call('GET', '/v1/schema')).status).toBe(200);
    expect((await (await call('GET', '/v1/schema')).json()).classes).toEqual([]);
  });

  it('puts and gets Xapiand documents, dates kept, and dumps them from every node', async () => {
    for (let i = 1; i <= 9; i++) {
      const res = await call('PUT', `/twitter/${i}`, { user: `u${i}`, posted: '2016-11-15T13:12:00Z' });
      expect(res.status).toBe(201);
    }
    expect(await (await call('GET', '/twitter/4')).json()).toEqual({ _id: 4, user: 'u4', posted: '2016-11-15T13:12:00.000Z' });
    const owner = cluster.nodes.find((n) => n.name === holders('twitter', 4)[0])!;
    expect(owner.store.readDoc(owner.store.getIndex('twitter')!, 4)!.posted).toBeInstanceOf(Date);
    expect((await call('PUT', '/twitter/:metadata/owner', 'docs')).status).toBe(200);
    expect(await (await call('GET', '/twitter/:metadata/owner')).json()).toBe('docs');
    const dumped = (await (await call('POST', '/twitter/:dump')).json()) as { _id: number }[];
    expect(dumped.map((d) => d._id).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(new Set(dumped.map((d) => holders('twitter', d._id)[0])).size).toBeGreaterThan(1);
    const deleted = await (await call('DELETE', '/twitter/4')).json();
    expect(deleted).toEqual({ _id: 4, result: 'deleted' });
  });

  it('keeps a foreign schema in .schemas on its node, and grows it there', async () => {
    const endpoint = '.schemas/00000000-0000-1000-8000-010000000000';
    const put = await call('PUT', '/shared/:schema', { _type: 'foreign/object', _endpoint: endpoint, description: 'Shared', schema: { name: { _type: 'keyword' } } });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({ _type: 'foreign/object', _endpoint: endpoint, name: { _type: 'keyword' } });
    expect((await call('PUT', '/other/:schema', { _type: 'foreign/object', _endpoint: '.schemas/00000000-0000-1000-8000-020000000000' })).status).toBe(422);
    expect((await call('PUT', '/shared/1', { name: 'a', size: 3 })).status).toBe(201);
    expect(await (await call('GET', '/shared/:schema')).json()).toMatchObject({ name: { _type: 'keyword' }, size: { _type: 'integer' } });
    expect((await call('PUT', '/shared/2', { size: 'big' })).status).toBe(422);
  });

  it('a node refuses a shard placed on another node, and an index its metadata does not hold', async () => {
    expect((await call('PUT', '/refuse/1', { a: 1 })).status).toBe(201);
    const rec = cluster.nodes[0]!.store.getIndex('refuse')!;
    const owner = rec.placement[shardFor(1, rec.shards)]!;
    const read = (node: string, uid: string) =>
      cluster.client.request(node, '/internal/indexes/refuse/document', { method: 'POST', body: Readable.from([packValue({ uid, id: 1 })]) });
    expect(unpackValue(await (await read(owner, rec.uid)).bytes())).toEqual({ doc: { _id: 1, a: 1 } });
    await expect(read(NODES.find((n) => n !== owner)!, rec.uid)).rejects.toBeInstanceOf(ValidationError);
    await expect(read(owner, 'a-dropped-uid')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('restores a dump file through :restore onto the nodes', async () => {
    const file = await call('POST', '/twitter/:dump', undefined, { accept: 'application/octet-stream' });
    const bytes = new Uint8Array(await file.arrayBuffer());
    const res = await api.app.request('/copy/:restore', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: bytes });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ processed: 8, indexed: 8, total: 8 });
    expect(await (await call('GET', '/copy/9')).json()).toEqual({ _id: 9, user: 'u9', posted: '2016-11-15T13:12:00.000Z' });
  });
});
