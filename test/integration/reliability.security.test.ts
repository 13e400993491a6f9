/**
 * Security (issue 8, item 6):
 * - with auth on, every route the app lists (read from the Hono app itself, so routes added
 *   later are covered without touching this test) answers 401 without a key, with a wrong key,
 *   with a key in the wrong place — except the two health endpoints; /admin/queues (bull-board,
 *   its static files and JSON API) and /metrics included;
 * - backup ids, backends, index and class names, `config.Path`/`config.Bucket` overrides and
 *   node mappings that try to leave their directory (`../`, encoded, double-encoded, backslash,
 *   NUL, absolute) are refused on every endpoint that takes them, and no file appears outside
 *   the data and backup directories, while legitimate nested paths still work;
 * - no credential — AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, the API key — appears in the
 *   logs (API and worker at debug level), in Redis (every key of every type: BullMQ job hashes,
 *   event streams, shardvault's operation state), in any answer (status, list, verify, errors,
 *   metrics, the dashboard's job data) or in any object of the bucket (manifests and shards),
 *   after a backup and a restore on S3 and a failed backup.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKUP_ID } from '../../shared/backups/contract.ts';
import { LocalCatalog } from '../../shared/cluster/catalog.ts';
import { LocalShardHost } from '../../shared/cluster/shard-host.ts';
import { createLogger } from '../../shared/logger.ts';
import type { RedisServer } from '../../shared/redis-server.ts';
import { createWorker, type ShardvaultWorker } from '../../worker/worker.ts';
import { createTestApi, type TestApi } from '../support/api.ts';
import { makeDoc, readIndex, waitForStatus } from '../support/backups.ts';
import { startCluster, type Cluster } from '../support/cluster.ts';
import { fill, hostileNames } from '../support/fuzz.ts';
import { startTestRedis } from '../support/redis.ts';
import { populate, recordFigures } from '../support/reliability.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';
import { tempDir } from '../support/temp.ts';

const API_KEY = `sv-apikey-canary-${randomBytes(8).toString('hex')}`;
const OPEN = new Set(['GET /v1/.well-known/live', 'GET /v1/.well-known/ready']);
const MARKER = `escapemark${process.pid}`;

const figures = {
  routes: 0,
  unauthenticatedCalls: 0,
  answered401: 0,
  openRoutes: [] as string[],
  escapeAttempts: 0,
  escapeRefused: 0,
  filesOutside: 0,
  credentialScan: { logBytes: 0, redisKeys: 0, answers: 0, objects: 0, objectBytes: 0, hits: 0 },
};

let redis: RedisServer;

beforeAll(async () => {
  redis = await startTestRedis();
});

afterAll(async () => {
  recordFigures('security', figures);
  await redis?.stop();
});

/**
 * Whether a relative path would leave its directory if used as one: a `.`/`..` segment, a
 * leading `/`, a backslash or a control character. (`..%2f..` is one odd but harmless name.)
 */
function leaves(p: string): boolean {
  // eslint-disable-next-line no-control-regex
  return p.split('/').some((s) => s === '..' || s === '.') || p.startsWith('/') || p.includes('\\') || /[\u0000-\u001f]/.test(p);
}

/** A concrete request path for a route pattern (`:param{regex}` commands kept literally). */
function concrete(pattern: string, values: Record<string, string> = {}): string {
  const defaults: Record<string, string> = { backend: 'filesystem', id: 'sec-ok', index: 'Sec', class: 'Sec', key: 'k', queueName: 'backups' };
  return fill(pattern.replace(/\*/g, 'x'), { ...defaults, ...values });
}

describe('API-key auth', () => {
  let t: TestApi;

  beforeAll(() => {
    t = createTestApi(redis.url, { AUTHENTICATION_APIKEY_ENABLED: 'true', AUTHENTICATION_APIKEY_ALLOWED_KEYS: `other-key,${API_KEY}` });
  });
  afterAll(async () => {
    await t?.api.stop();
    await t?.close();
  });

  it('answers 401 on every route the app lists, except the two health endpoints, without a valid key', async () => {
    const seen = new Set<string>();
    const routes = t.api.app.routes
      .filter((r) => r.path !== '/*')
      .flatMap((r) => (r.method === 'ALL' ? ['GET', 'POST', 'PUT', 'DELETE'].map((m) => ({ method: m, path: r.path })) : [{ method: r.method, path: r.path }]))
      .filter((r) => !seen.has(`${r.method} ${r.path}`) && !!seen.add(`${r.method} ${r.path}`));
    figures.routes = routes.length;
    expect(routes.map((r) => r.path)).toEqual(expect.arrayContaining(['/metrics', '/admin/queues', '/v1/backups/:backend/:id/verify']));

    const ways: [string, Record<string, string>, string?][] = [
      ['no key', {}],
      ['a wrong key', { authorization: 'Bearer not-the-key' }],
      ['a key one character short', { authorization: `Bearer ${API_KEY.slice(0, -1)}` }],
      ['an empty bearer', { authorization: 'Bearer ' }],
      ['basic auth with the key', { authorization: `Basic ${Buffer.from(`x:${API_KEY}`).toString('base64')}` }],
      ['the key without a scheme', { authorization: API_KEY }],
      ['the key in an x-api-key header', { 'x-api-key': API_KEY }],
      ['a wrong key in the query', {}, '?key=not-the-key'],
      ['a forged dashboard cookie', { cookie: 'shardvault_dashboard=v1.9999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }],
    ];
    const open: string[] = [];
    for (const r of routes) {
      const p = concrete(r.path);
      for (const [way, headers, query] of ways) {
        const res = await t.call(r.method, `${p}${query ?? ''}`, r.method === 'GET' || r.method === 'DELETE' ? undefined : {}, headers);
        figures.unauthenticatedCalls++;
        if (res.status === 401) figures.answered401++;
        const name = `${r.method} ${r.path}`;
        if (OPEN.has(name)) {
          expect(res.status, `${name} is open`).not.toBe(401);
          if (!open.includes(name)) open.push(name);
        } else {
          expect({ route: name, way, status: res.status }).toEqual({ route: name, way, status: 401 });
        }
      }
    }
    figures.openRoutes = open;
    expect(open.sort()).toEqual([...OPEN].sort());
  });

  it('opens every kind of endpoint with the key: API, metrics, dashboard', async () => {
    const auth = { authorization: `Bearer ${API_KEY}` };
    for (const p of ['/v1/schema', '/v1/meta', '/metrics', '/admin/queues/api/queues', '/v1/backups/filesystem']) {
      expect((await t.call('GET', p, undefined, auth)).status, p).toBe(200);
    }
  });
});

describe('names that try to leave their directory', () => {
  let t: TestApi;
  let worker: ShardvaultWorker;
  let root: string;

  beforeAll(async () => {
    t = createTestApi(redis.url);
    root = path.dirname(t.config.dataDir);
    worker = createWorker({ config: t.config, logger: createLogger('silent'), redisUrl: redis.url, catalog: new LocalCatalog(t.store), shards: new LocalShardHost(t.store) });
    await worker.start();
    await t.store.putDocuments('Sec', Array.from({ length: 30 }, (_, i) => makeDoc('Sec', i)));
    expect((await t.call('POST', '/v1/backups/filesystem', { id: 'sec-ok' })).status).toBe(200);
    expect((await waitForStatus(t.call, '/v1/backups/filesystem/sec-ok')).status).toBe('SUCCESS');
  });
  afterAll(async () => {
    await worker?.stop();
    await t?.api.stop();
    await t?.close();
  });

  function snapshot(dir: string): Set<string> {
    const out = new Set<string>();
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const full = path.join(d, e.name);
        out.add(path.relative(dir, full));
        if (e.isDirectory()) walk(full);
      }
    };
    walk(dir);
    return out;
  }

  it('refuses them in every path parameter, query override and body field, and writes nothing outside data/ and backups/', async () => {
    const escapes = hostileNames(MARKER).filter((n) => /\.\.|%2e|%2f|%5c|%00|\/|^\.|_cluster/i.test(n));
    const before = snapshot(root);
    const seen = new Set<string>();
    const routes = t.api.app.routes
      .filter((r) => !r.path.includes('*') && r.method !== 'ALL' && !r.path.startsWith('/admin/'))
      .filter((r) => !seen.has(`${r.method} ${r.path}`) && !!seen.add(`${r.method} ${r.path}`));
    let lastAnswer = '';
    const send = async (method: string, p: string, body?: unknown) => {
      figures.escapeAttempts++;
      const res = await t.call(method, p, body);
      lastAnswer = await res.text();
      expect(res.status, `${method} ${p} ${JSON.stringify(body) ?? ''}: ${lastAnswer}`).toBeLessThan(500);
      return res.status;
    };
    const refused = (status: number) => {
      if (status >= 400 && status < 500) figures.escapeRefused++;
      return status >= 400 && status < 500;
    };

    // A nested Path that stays inside the backup root is fine, and lands inside it. (First:
    // `DELETE /Sec/.` below resolves, as URLs do, to `DELETE /Sec/`, which drops the index.)
    expect(await send('POST', '/v1/backups/filesystem', { id: 'sec-nested', config: { Path: 'team-a/nightly' } }), lastAnswer).toBe(200);
    expect((await waitForStatus(t.call, '/v1/backups/filesystem/sec-nested?path=team-a/nightly')).status).toBe('SUCCESS');
    expect(fs.existsSync(path.join(t.config.backends.filesystem.path, 'team-a', 'nightly', 'sec-nested', 'backup_config.json'))).toBe(true);

    for (const r of routes) {
      const params = [...r.path.matchAll(/:([a-zA-Z]+)(?!\{)/g)].map((m) => m[1]!).filter((p) => p !== 'cmd');
      for (const param of params) {
        for (const name of escapes) {
          const status = await send(r.method, concrete(r.path, { [param]: name }), ['POST', 'PUT'].includes(r.method) ? {} : undefined);
          // Backup ids, backends and index names are refused; other values (document ids,
          // metadata keys) are data, not paths, and may be accepted — but never leave data/.
          if (['id', 'backend', 'index'].includes(param) && (param !== 'id' || r.path.startsWith('/v1/backups/'))) {
            if (!/\/|%2f/i.test(name) && !['..', '%2e%2e', '.'].includes(name)) expect(refused(status), `${r.method} ${r.path} :${param}=${name} → ${status}`).toBe(true);
          }
        }
      }
    }
    for (const name of escapes) {
      const plain = decodeURIComponent(name.replace(/%(?![0-9a-f]{2})/gi, '%25'));
      for (const q of [`path=${encodeURIComponent(plain)}`, `bucket=${encodeURIComponent(plain)}`]) {
        for (const p of ['/v1/backups/filesystem', '/v1/backups/filesystem/sec-ok', '/v1/backups/filesystem/sec-ok/verify']) {
          const status = await send('GET', `${p}?${q}`);
          if (q.startsWith('bucket') || leaves(plain)) {
            expect(refused(status), `GET ${p}?${q} → ${status}`).toBe(true);
          }
        }
      }
      for (const body of [
        { id: plain },
        { id: 'sec-new', config: { Path: plain } },
        { id: 'sec-new', config: { Path: `/${plain}` } },
        { id: 'sec-new', config: { Path: `sub/../../${plain}` } },
        { id: 'sec-new', include: [plain] },
      ]) {
        const status = await send('POST', '/v1/backups/filesystem', body);
        if (!BACKUP_ID.test(body.id) || leaves(String(body.config?.Path ?? '')) || body.include) expect(refused(status), JSON.stringify(body)).toBe(true);
      }
      for (const body of [{ config: { Path: `../../${plain}` } }, { node_mapping: { 'node-1': plain } }, { include: [plain] }]) {
        expect(refused(await send('POST', '/v1/backups/filesystem/sec-ok/restore', body)), JSON.stringify(body)).toBe(true);
      }
      expect(refused(await send('POST', '/v1/schema', { class: plain })), `POST /v1/schema class ${JSON.stringify(plain)}`).toBe(true);
      expect(refused(await send('POST', '/v1/objects', { class: plain, properties: { a: 1 } })), `POST /v1/objects class ${JSON.stringify(plain)}`).toBe(true);
    }
    const after = snapshot(root);
    const outside = [...after].filter((p) => !before.has(p) && !p.startsWith('data') && !p.startsWith('backups'));
    figures.filesOutside = outside.length;
    expect(outside).toEqual([]);
    const marked = [root, path.dirname(root), os.tmpdir()].flatMap((d) => fs.readdirSync(d).filter((n) => n.includes(MARKER)).map((n) => path.join(d, n)));
    expect(marked).toEqual([]);
    expect(snapshot(t.config.dataDir).size).toBeGreaterThan(0);
    expect([...snapshot(t.config.dataDir)].filter((p) => p.includes(MARKER) && !/\/(data|lock)\.mdb$/.test(p))).toEqual([]);
  }, 300_000);
});

describe('credentials', () => {
  const tmp = tempDir('shardvault-sec-creds-');
  const ACCESS_KEY_ID = `AKIACANARY${randomBytes(5).toString('hex').toUpperCase()}`;
  const SECRET = `sv-secret-canary-${randomBytes(12).toString('hex')}`;
  let s3: S3Server;
  let A: Cluster;
  let direct: S3Client;
  const answers: string[] = [];
  const auth = { authorization: `Bearer ${API_KEY}` };

  beforeAll(async () => {
    s3 = await startS3Server({ credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET } });
    direct = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: s3.region, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET } });
    const dataDir = path.join(tmp.dir, 'data');
    await populate(dataDir, ['node-1', 'node-2', 'node-3'], [{ name: 'Secret', shards: 3, docs: 300 }]);
    A = await startCluster({
      name: 'credentials',
      dataDir,
      nodes: ['node-1', 'node-2', 'node-3'],
      backendEnv: {
        BACKUP_FILESYSTEM_PATH: path.join(tmp.dir, 'backups'),
        BACKUP_S3_BUCKET: s3.bucket,
        BACKUP_S3_PATH: 'sec',
        BACKUP_S3_ENDPOINT: new URL(s3.endpoint).host,
        BACKUP_S3_USE_SSL: 'false',
        AWS_REGION: s3.region,
        AWS_ACCESS_KEY_ID: ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY: SECRET,
      },
      env: { AUTHENTICATION_APIKEY_ENABLED: 'true', AUTHENTICATION_APIKEY_ALLOWED_KEYS: API_KEY },
      workers: 0,
      apiLogLevel: 'debug',
    });
    await A.startWorker({ LOG_LEVEL: 'debug' });
  }, 180_000);

  afterAll(async () => {
    await A?.stop();
    direct?.destroy();
    await s3?.stop();
    tmp.cleanup();
  });

  const call = async (method: string, p: string, body?: unknown) => {
    const res = await A.call(method, p, body, { headers: auth });
    const text = JSON.stringify(await res.json().catch(() => null)) ?? '';
    answers.push(text);
    return { status: res.status, json: async () => (text ? (JSON.parse(text) as unknown) : undefined) };
  };

  it('appear in no log, Redis key, answer or backup object after a backup, a restore and a failure on S3', async () => {
    expect((await call('POST', '/v1/backups/s3', { id: 'creds-1' })).status).toBe(200);
    expect((await waitForStatus(call, '/v1/backups/s3/creds-1')).status).toBe('SUCCESS');
    const before = await readIndex(A.dataDir, A.nodes, 'Secret');
    expect((await call('DELETE', '/v1/schema/Secret')).status).toBe(200);
    expect((await call('POST', '/v1/backups/s3/creds-1/restore', {})).status).toBe(200);
    expect((await waitForStatus(call, '/v1/backups/s3/creds-1/restore')).status).toBe('SUCCESS');
    expect(await readIndex(A.dataDir, A.nodes, 'Secret')).toEqual(before);
    // Failures, whose messages name the backend: a bucket that does not exist, an unknown backup.
    expect((await call('POST', '/v1/backups/s3', { id: 'creds-2', config: { Bucket: 'no-such-bucket-canary' } })).status).toBe(422);
    expect((await call('GET', '/v1/backups/s3/creds-3')).status).toBe(404);
    for (const p of ['/v1/backups/s3', '/v1/backups/s3/creds-1', '/v1/backups/s3/creds-1/verify', '/v1/backups/s3/creds-1/restore', '/v1/meta', '/v1/nodes']) {
      expect((await call('GET', p)).status, p).toBe(200);
    }
    const metrics = await A.call('GET', '/metrics', undefined, { headers: auth });
    answers.push(await (await fetch(`${A.url}/metrics`, { headers: auth })).text());
    expect(metrics.status).toBe(200);
    // The dashboard: a login with the key in the query, then the job data it shows.
    const login = await fetch(`${A.url}/admin/queues?key=${API_KEY}`, { redirect: 'manual' });
    expect(login.status).toBe(303);
    for (const q of ['backups', 'restores', 'node-node-1']) {
      const res = await fetch(`${A.url}/admin/queues/api/queues?activeQueue=${q}&status=completed`, { headers: auth });
      expect(res.status).toBe(200);
      answers.push(await res.text());
    }

    const secrets = [ACCESS_KEY_ID, SECRET, API_KEY];
    const hits: string[] = [];
    const scan = (where: string, text: string | Buffer) => {
      for (const s of secrets) if (Buffer.from(text).includes(s)) hits.push(`${where} contains ${s === API_KEY ? 'the API key' : s === SECRET ? 'the secret key' : 'the access key id'}`);
    };

    // Logs of every process, at debug level.
    for (const [name, proc] of [['api', A.api], ...A.workers.map((w, i) => [`worker ${i}`, w] as const)] as const) {
      const out = proc.output();
      figures.credentialScan.logBytes += out.length;
      scan(`the ${name} log`, out);
    }
    expect(A.api.output(), 'the API logged at debug level').toMatch(/"level":20/);

    // Every Redis key, whatever its type.
    const r = new Redis(A.redis.url, { maxRetriesPerRequest: null });
    try {
      const keys = await r.keys('*');
      figures.credentialScan.redisKeys = keys.length;
      expect(keys.some((k) => k.startsWith('{shardvault}:backups:'))).toBe(true);
      for (const key of keys) {
        const type = await r.type(key);
        let value: unknown;
        if (type === 'hash') value = await r.hgetall(key);
        else if (type === 'string') value = await r.get(key);
        else if (type === 'list') value = await r.lrange(key, 0, -1);
        else if (type === 'set') value = await r.smembers(key);
        else if (type === 'zset') value = await r.call('ZRANGE', key, '0', '-1', 'WITHSCORES');
        else if (type === 'stream') value = await r.xrange(key, '-', '+');
        scan(`redis ${type} ${key}`, `${key} ${JSON.stringify(value)}`);
      }
    } finally {
      r.disconnect();
    }

    // Every answer the API gave.
    figures.credentialScan.answers = answers.length;
    answers.forEach((a, i) => scan(`answer ${i}`, a));

    // Every object in the bucket: manifests and shard objects, byte for byte.
    const listed = await direct.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
    const keys = (listed.Contents ?? []).map((o) => o.Key!);
    expect(keys).toEqual(expect.arrayContaining(['sec/creds-1/backup_config.json', 'sec/creds-1/node-1/backup.json']));
    for (const key of keys) {
      const got = await direct.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
      const bytes = Buffer.from(await got.Body!.transformToByteArray());
      figures.credentialScan.objects++;
      figures.credentialScan.objectBytes += bytes.length;
      scan(`object ${key}`, bytes);
    }
    figures.credentialScan.hits = hits.length;
    expect(hits).toEqual([]);
  }, 300_000);
});
