import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type RedisServer } from '../../shared/redis-server.ts';
import { grpcHealth } from '../support/grpc.ts';
import { spawnNode, type NodeProcess } from '../support/process.ts';
import { startTestRedis } from '../support/redis.ts';
import { tempDir } from '../support/temp.ts';

const tmp = tempDir();
let redis: RedisServer;
let server: NodeProcess;
let base: string;
let grpcPort: number;

beforeAll(async () => {
  redis = await startTestRedis();
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  grpcPort = await freePort();
  // What `npm start` runs: the build, without tsx.
  server = spawnNode('dist/main.js', [], {
    PORT: String(port), GRPC_PORT: String(grpcPort), DATA_DIR: `${tmp.dir}/data`, BACKUP_FILESYSTEM_PATH: `${tmp.dir}/backups`, REDIS_URL: redis.url,
  });
  await server.waitFor(/api listening/);
});

afterAll(async () => {
  await server?.kill('SIGTERM');
  await redis?.stop();
  tmp.cleanup();
});

const json = (method: string, path: string, body?: unknown) =>
  fetch(`${base}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });

describe('npm start (dist/main.js, the build) as a child process', () => {
  it("serves gRPC health on GRPC_PORT, SERVING for the server and for the name Weaviate's client asks about", async () => {
    expect(await grpcHealth(grpcPort, '')).toBe(1);
    expect(await grpcHealth(grpcPort, '/grpc.health.v1.Health/Check')).toBe(1);
  });

  it('stores documents in 6 shards over 3 nodes and reads them through both API flavours', async () => {
    const schema = await json('PUT', '/books/:schema', { _settings: { number_of_shards: 6 }, _id: { _type: 'uuid' }, title: { _type: 'text' }, year: { _type: 'integer' } });
    expect(schema.status).toBe(200);
    const ids = Array.from({ length: 60 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
    for (const [i, id] of ids.entries()) {
      const put = await json('PUT', `/books/${id}`, { title: `Book ${i}`, year: String(1900 + i) });
      expect(put.status).toBe(201);
    }
    const doc = await (await json('GET', `/books/${ids[7]}`)).json();
    expect(doc).toEqual({ _id: ids[7], title: 'Book 7', year: 1907 });

    const obj = await (await json('GET', `/v1/objects/books/${ids[7]}`)).json();
    expect(obj).toEqual({ class: 'books', id: ids[7], properties: { title: 'Book 7', year: 1907 } });
    const all = await (await json('GET', '/v1/objects?class=books&limit=100')).json();
    expect(all.objects.map((o: { id: string }) => o.id)).toEqual(ids);

    const listed = await (await json('GET', '/books/:info')).json();
    expect(listed.docs).toBe(60);

    const { nodes } = await (await json('GET', '/v1/nodes')).json();
    expect(nodes).toHaveLength(3);
    for (const node of nodes) {
      expect(node.shards.map((s: { shard: number }) => s.shard).sort()).toEqual(
        { 'node-1': [0, 3], 'node-2': [1, 4], 'node-3': [2, 5] }[node.name as string],
      );
      expect(node.stats.objectCount).toBeGreaterThan(0);
    }
    expect(nodes.reduce((n: number, x: { stats: { objectCount: number } }) => n + x.stats.objectCount, 0)).toBe(60);
  });

  it('stops cleanly on SIGTERM', async () => {
    expect(await server.kill('SIGTERM')).toBe(0);
  });
});
