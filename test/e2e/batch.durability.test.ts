/**
 * What a 200 from a write promises, with real API processes over one data directory: an
 * acknowledged batch survives the API being SIGKILLed right after answering, and two API
 * processes writing the same shard at once lose nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type RedisServer } from '../../shared/redis-server.ts';
import { Store } from '../../shared/store/store.ts';
import { spawnNode, type NodeProcess } from '../support/process.ts';
import { startTestRedis } from '../support/redis.ts';
import { tempDir } from '../support/temp.ts';

const tmp = tempDir();
const dataDir = `${tmp.dir}/data`;
const NODES = ['node-1', 'node-2', 'node-3'];
let redis: RedisServer;
const apis: NodeProcess[] = [];

async function startApi(): Promise<string> {
  const port = await freePort();
  const api = spawnNode('api/main.ts', [], {
    PORT: String(port), GRPC_PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, CLUSTER_NODES: NODES.join(','),
    BACKUP_FILESYSTEM_PATH: `${tmp.dir}/backups`, REDIS_URL: redis.url, LOG_LEVEL: 'info',
  });
  apis.push(api);
  await api.waitFor(/api listening/, 60_000);
  return `http://127.0.0.1:${port}`;
}

const uuid = (writer: number, n: number) => `00000000-0000-4000-8${writer}00-${String(n).padStart(12, '0')}`;

/** POST batch number `b` of `size` objects of writer `w`; answers the acknowledged ids, or undefined once the API is gone. */
async function writeBatch(base: string, cls: string, w: number, b: number, size: number): Promise<string[] | undefined> {
  const objects = Array.from({ length: size }, (_, i) => ({ class: cls, id: uuid(w, b * size + i), properties: { writer: w, n: b * size + i, text: 'x'.repeat(500) } }));
  const res = await fetch(`${base}/v1/batch/objects`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ objects }) }).catch(() => undefined);
  const text = await res?.text().catch(() => undefined);
  if (!res || text === undefined) return undefined;
  expect(res.status).toBe(200);
  const out = JSON.parse(text) as { id: string; result: { errors?: unknown } }[];
  expect(out.filter((o) => o.result.errors)).toEqual([]);
  return out.map((o) => o.id);
}

/** Writer `w` posts up to `count` batches; `after(b)` runs once batch b is acknowledged. Answers every acknowledged id. */
async function writer(base: string, cls: string, w: number, count: number, size: number, after: (b: number) => void = () => {}): Promise<string[]> {
  const acknowledged: string[] = [];
  for (let b = 0; b < count; b++) {
    const ids = await writeBatch(base, cls, w, b, size);
    if (!ids) break;
    acknowledged.push(...ids);
    after(b);
  }
  return acknowledged;
}

beforeAll(async () => {
  redis = await startTestRedis();
});

afterAll(async () => {
  await Promise.all(apis.map((a) => a.kill('SIGKILL')));
  await redis?.stop();
  tmp.cleanup();
});

describe('batch writes: a 200 means written, whatever happens next', () => {
  it('keeps every object a 200 acknowledged when the API is SIGKILLed right after answering', async () => {
    const base = await startApi();
    const created = await fetch(`${base}/v1/schema`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ class: 'Durable', properties: [{ name: 'writer', dataType: ['int'] }, { name: 'n', dataType: ['int'] }, { name: 'text', dataType: ['text'] }], shardingConfig: { desiredCount: 6 } }),
    });
    expect(created.status).toBe(200);
    const api = apis.at(-1)!;
    // Two clients write; client 0's 6th acknowledged batch kills the API at once, with client 1's batch in flight.
    const [a, b] = await Promise.all([
      writer(base, 'Durable', 0, 200, 250, (n) => n === 5 && api.child.kill('SIGKILL')),
      writer(base, 'Durable', 1, 200, 250),
    ]);
    await api.exited;
    expect(a.length).toBeGreaterThanOrEqual(6 * 250);

    // A fresh process over the same directory reads back every acknowledged object.
    const store = new Store({ dataDir, nodes: NODES });
    try {
      for (const id of [...a, ...b]) expect(store.hasDocument('Durable', id), id).toBe(true);
    } finally {
      await store.close();
    }
    const again = await startApi();
    const one = await fetch(`${again}/v1/objects/Durable/${a.at(-1)}`);
    expect(one.status).toBe(200);
  });

  it('loses nothing when two API processes write the same shard at once', async () => {
    const [first, second] = await Promise.all([startApi(), startApi()]);
    const created = await fetch(`${first}/v1/schema`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ class: 'Shared', shardingConfig: { desiredCount: 1 } }),
    });
    expect(created.status).toBe(200);
    const [a, b] = await Promise.all([writer(first, 'Shared', 3, 20, 250), writer(second, 'Shared', 4, 20, 250)]);
    expect(a).toHaveLength(5000);
    expect(b).toHaveLength(5000);
    const store = new Store({ dataDir, nodes: NODES });
    try {
      expect(store.info('Shared').docs).toBe(10_000);
      for (const id of [...a, ...b]) expect(store.hasDocument('Shared', id), id).toBe(true);
      // Both writers' fields were added to the one schema, whichever process added them first.
      expect(Object.keys(store.describeSchema('Shared'))).toEqual(expect.arrayContaining(['writer', 'n', 'text']));
    } finally {
      await store.close();
    }
  });
});
