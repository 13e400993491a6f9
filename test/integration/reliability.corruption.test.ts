/**
 * Corruption (issue 8, item 4): a backup whose objects or manifests are damaged after it was
 * written. For each kind of damage:
 * - `GET /v1/backups/{backend}/{id}/verify` reports it (CORRUPT, the object's key and what is
 *   wrong) without restoring anything;
 * - a restore fails with an integrity error naming the object: refused with 422 before any byte
 *   moves when a manifest is damaged, FAILED when a shard object is;
 * - no class is created and no staging is left behind;
 * and once the damage is undone, verify says OK and the same restore succeeds, identical to
 * the source (the failed restores left nothing in the way).
 *
 * In one process (API in-process, a real worker over a private Redis, the filesystem backend);
 * the damage is done through the Backend interface, so it is the same on every backend.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../shared/backends/backend.ts';
import { configuredBackends } from '../../shared/backups/backends.ts';
import { main } from '../../cli/main.ts';
import { LocalCatalog } from '../../shared/cluster/catalog.ts';
import { LocalShardHost } from '../../shared/cluster/shard-host.ts';
import { createLogger } from '../../shared/logger.ts';
import type { RedisServer } from '../../shared/redis-server.ts';
import { createWorker, type ShardvaultWorker } from '../../worker/worker.ts';
import { createTestApi, type TestApi } from '../support/api.ts';
import { makeDoc, readIndex, waitForStatus } from '../support/backups.ts';
import { startTestRedis } from '../support/redis.ts';
import { literally } from '../support/regexp.ts';
import { recordFigures } from '../support/reliability.ts';

const ID = 'damaged';
const CLASSES = ['Alpha', 'Beta'];
const DOCS = 400;

let redis: RedisServer;
let t: TestApi;
let worker: ShardvaultWorker;
let backend: Backend;
let reference: Map<string, string>;
let url: string;
const figures = { cases: 0, verifyReports: 0, restoresRefused: 0, restoresFailed: 0, indexesCreated: 0, documentsCompared: 0 };

interface VerifyBody {
  id: string;
  backend: string;
  status: 'OK' | 'CORRUPT';
  objects: number;
  problems: { key: string; problem: string }[];
}

async function readObject(key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await backend.read(key)) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

const writeObject = (key: string, body: Buffer) => backend.write(key, Readable.from([body]));
const sha256 = async (body: Buffer) => (await import('node:crypto')).createHash('sha256').update(body).digest('hex');

interface NodeManifestJson {
  shards: { index: string; shard: number; key: string; sha256: string; bytes: number; docs: number }[];
  [k: string]: unknown;
}
interface ConfigJson {
  nodeManifests: Record<string, { key: string; sha256: string; bytes: number }>;
  totals: { shards: number; docs: number; bytes: number };
  [k: string]: unknown;
}

/** Where a shard of Alpha is stored: its node manifest's key and its entry. */
async function alphaShard(shard: number): Promise<{ node: string; manifestKey: string; key: string }> {
  const node = t.config.nodes[shard % t.config.nodes.length]!;
  const manifestKey = `${ID}/${node}/backup.json`;
  const manifest = JSON.parse((await readObject(manifestKey)).toString()) as NodeManifestJson;
  const entry = manifest.shards.find((s) => s.index === 'Alpha' && s.shard === shard)!;
  return { node, manifestKey, key: entry.key };
}

/** Rewrite a node manifest and, as a careful hand-edit would, its sha256 and size in backup_config.json. */
async function editNodeManifest(node: string, edit: (m: NodeManifestJson) => void): Promise<void> {
  const key = `${ID}/${node}/backup.json`;
  const manifest = JSON.parse((await readObject(key)).toString()) as NodeManifestJson;
  edit(manifest);
  const body = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
  await writeObject(key, body);
  const config = JSON.parse((await readObject(`${ID}/backup_config.json`)).toString()) as ConfigJson;
  config.nodeManifests[node] = { key, sha256: await sha256(body), bytes: body.length };
  await writeObject(`${ID}/backup_config.json`, Buffer.from(`${JSON.stringify(config, null, 2)}\n`));
}

/** Keep the named objects' bytes, run fn, put them back whatever happens. */
async function damaging(keys: string[], fn: () => Promise<void>): Promise<void> {
  const saved = new Map<string, Buffer>();
  for (const key of keys) saved.set(key, await readObject(key));
  try {
    await fn();
  } finally {
    for (const [key, body] of saved) await writeObject(key, body);
  }
}

/** `shardvault backup verify filesystem <ID>` against the API, in this process. */
async function cliVerify(): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = { stdout: '', stderr: '' };
  const sink = (k: 'stdout' | 'stderr') => new Writable({ write: (c, _e, done) => ((out[k] += String(c)), done()) });
  const code = await main(['backup', 'verify', 'filesystem', ID, '--url', url], { stdin: Readable.from([]), stdout: sink('stdout'), stderr: sink('stderr'), env: {} });
  return { code, ...out };
}

async function verify(): Promise<VerifyBody> {
  const res = await t.call('GET', `/v1/backups/filesystem/${ID}/verify`);
  const body = (await res.json()) as VerifyBody;
  expect(res.status, JSON.stringify(body)).toBe(200);
  figures.verifyReports++;
  return body;
}

function expectNothingRestored(): void {
  expect(t.store.getIndex('Alpha'), 'no Alpha index').toBeUndefined();
  for (const node of t.config.nodes) {
    expect(fs.existsSync(path.join(t.config.dataDir, node, 'Alpha')), `${node}/Alpha`).toBe(false);
    expect(fs.existsSync(path.join(t.config.dataDir, node, '.staging')), `${node}/.staging`).toBe(false);
  }
}

/** A restore that starts and ends FAILED with an error matching `error`; nothing restored. */
async function expectRestoreFailed(error: RegExp): Promise<void> {
  const res = await t.call('POST', `/v1/backups/filesystem/${ID}/restore`, { include: ['Alpha'] });
  expect(res.status, JSON.stringify(await res.clone().json())).toBe(200);
  const done = await waitForStatus(t.call, `/v1/backups/filesystem/${ID}/restore`);
  expect(done.status, JSON.stringify(done)).toBe('FAILED');
  expect(done.error).toMatch(error);
  figures.restoresFailed++;
  expectNothingRestored();
}

/** A restore refused before any byte moves, with an error matching `error`; nothing restored. */
async function expectRestoreRefused(error: RegExp): Promise<void> {
  const res = await t.call('POST', `/v1/backups/filesystem/${ID}/restore`, { include: ['Alpha'] });
  const body = (await res.json()) as { error: { message: string }[] };
  expect(res.status, JSON.stringify(body)).toBe(422);
  expect(body.error[0]!.message).toMatch(error);
  figures.restoresRefused++;
  expectNothingRestored();
}

beforeAll(async () => {
  redis = await startTestRedis();
  // Listening too, for the CLI.
  t = createTestApi(redis.url, { PORT: '0' });
  url = `http://127.0.0.1:${(await t.api.start()).port}`;
  backend = configuredBackends(t.config)('filesystem');
  worker = createWorker({ config: t.config, logger: createLogger('silent'), redisUrl: redis.url, catalog: new LocalCatalog(t.store), shards: new LocalShardHost(t.store) });
  await worker.start();
  for (const cls of CLASSES) {
    const results = await t.store.putDocuments(cls, Array.from({ length: DOCS }, (_, i) => makeDoc(cls, i)));
    expect(results.every((r) => r.ok)).toBe(true);
  }
  expect((await t.call('POST', '/v1/backups/filesystem', { id: ID })).status).toBe(200);
  expect((await waitForStatus(t.call, `/v1/backups/filesystem/${ID}`)).status).toBe('SUCCESS');
  reference = await readIndex(t.config.dataDir, t.config.nodes, 'Alpha');
  await t.store.deleteIndex('Alpha');
});

afterAll(async () => {
  recordFigures('corruption', figures);
  await worker?.stop();
  await t?.api.stop();
  await t?.close();
  await redis?.stop();
});

describe('a damaged backup', () => {
  it('verifies OK while intact, counting every object', async () => {
    const report = await verify();
    // backup_config.json, one backup.json per node, 3 shards of each class.
    expect(report).toEqual({ id: ID, backend: 'filesystem', status: 'OK', objects: 1 + 3 + 6, bytes: expect.any(Number), problems: [] });
    const cli = await cliVerify();
    expect(cli).toMatchObject({ code: 0, stdout: expect.stringMatching(new RegExp(`^backup ${ID} on filesystem: OK \\(10 objects, .* checked\\)\n$`)) });
  });

  it('a flipped byte in a shard object: verify names it, the restore FAILS naming it', async () => {
    figures.cases++;
    const { key } = await alphaShard(1);
    await damaging([key], async () => {
      const body = Buffer.from(await readObject(key));
      const at = body.length >> 1;
      body[at] = body[at]! ^ 0x01;
      await writeObject(key, body);
      const report = await verify();
      expect(report.status).toBe('CORRUPT');
      expect(report.problems).toEqual([{ key, problem: expect.stringMatching(/^checksum mismatch: expected sha256 [0-9a-f]{64}, got [0-9a-f]{64}$/) }]);
      const cli = await cliVerify();
      expect(cli.code).toBe(1);
      expect(cli.stderr).toMatch(new RegExp(`: CORRUPT \\(10 objects, .*\\), 1 problem:\n  ${literally(key)}: checksum mismatch`));
      await expectRestoreFailed(new RegExp(`checksum mismatch for .*${literally(key)}`));
    });
  });

  it('a flipped byte in a pack (format 2): verify names the chunk and the shard, the restore FAILS naming them', async () => {
    figures.cases++;
    const packs = (await backend.list('.repository/packs/')).map((o) => o.key);
    expect(packs.length).toBeGreaterThan(0);
    await damaging(packs, async () => {
      // Every pack damaged in its middle: whichever shard's chunks sit there are corrupt.
      for (const key of packs) {
        const body = Buffer.from(await readObject(key));
        body[body.length >> 1] = body[body.length >> 1]! ^ 0x01;
        await writeObject(key, body);
      }
      const report = await verify();
      expect(report.status).toBe('CORRUPT');
      expect(report.problems.length).toBeGreaterThan(0);
      for (const p of report.problems) {
        expect(p.key).toMatch(new RegExp(`^${ID}/node-\\d/(Alpha|Beta)/\\d$`));
        expect(p.problem).toMatch(/^chunk [0-9a-f]{64} of shard (Alpha|Beta)\/\d on node-\d in backup damaged is corrupt/);
      }
      await expectRestoreFailed(/chunk [0-9a-f]{64} of shard Alpha\/\d on node-\d in backup damaged is corrupt/);
    });
  });

  it('a truncated shard object: verify names it, the restore FAILS naming it', async () => {
    figures.cases++;
    const { key } = await alphaShard(2);
    await damaging([key], async () => {
      const body = await readObject(key);
      await writeObject(key, body.subarray(0, body.length >> 1));
      const report = await verify();
      expect(report.problems).toEqual([{ key, problem: expect.stringMatching(/^checksum mismatch/) }]);
      await expectRestoreFailed(new RegExp(`checksum mismatch for .*${literally(key)}`));
    });
  });

  it('a missing shard object: verify names it, the restore FAILS with an integrity error naming it', async () => {
    figures.cases++;
    const { key, manifestKey } = await alphaShard(0);
    await damaging([key], async () => {
      await backend.deletePrefix(key);
      const report = await verify();
      expect(report.problems).toEqual([{ key, problem: `missing (listed in ${manifestKey})` }]);
      await expectRestoreFailed(new RegExp(`${literally(key)} is missing`));
    });
  });

  it('a shard sha256 edited in backup.json alone: the manifest no longer matches backup_config.json; restore refused', async () => {
    figures.cases++;
    const { node, manifestKey } = await alphaShard(1);
    await damaging([manifestKey], async () => {
      const manifest = JSON.parse((await readObject(manifestKey)).toString()) as NodeManifestJson;
      manifest.shards[0]!.sha256 = 'f'.repeat(64);
      await writeObject(manifestKey, Buffer.from(JSON.stringify(manifest, null, 2)));
      const report = await verify();
      expect(report.status).toBe('CORRUPT');
      expect(report.problems[0]).toEqual({ key: manifestKey, problem: expect.stringMatching(/^checksum mismatch/) });
      expect(node).toBe('node-2');
      await expectRestoreRefused(new RegExp(`checksum mismatch for .*${literally(manifestKey)}`));
    });
  });

  it('a shard sha256 edited in backup.json and backup_config.json: the object no longer matches; restore FAILS naming it', async () => {
    figures.cases++;
    const { node, manifestKey, key } = await alphaShard(2);
    await damaging([manifestKey, `${ID}/backup_config.json`], async () => {
      await editNodeManifest(node, (m) => {
        m.shards.find((s) => s.key === key)!.sha256 = '0'.repeat(64);
      });
      const report = await verify();
      expect(report.problems).toEqual([{ key, problem: `checksum mismatch: expected sha256 ${'0'.repeat(64)}, got ${report.problems[0]?.problem.slice(-64)}` }]);
      await expectRestoreFailed(new RegExp(`checksum mismatch for .*${literally(key)}: expected sha256 0{64}`));
    });
  });

  it('a shard removed from backup.json (checksums fixed up): verify and the refused restore name the manifest and the shard', async () => {
    figures.cases++;
    const { node, manifestKey } = await alphaShard(0);
    await damaging([manifestKey, `${ID}/backup_config.json`], async () => {
      await editNodeManifest(node, (m) => {
        m.shards = m.shards.filter((s) => !(s.index === 'Alpha' && s.shard === 0));
      });
      const report = await verify();
      expect(report.status).toBe('CORRUPT');
      expect(report.problems).toContainEqual({ key: manifestKey, problem: 'lists no object for shard Alpha/0' });
      await expectRestoreRefused(new RegExp(`${literally(manifestKey)} lists no object for shard Alpha/0`));
    });
  });

  it('a preCompressionSizeBytes edited in backup_config.json: verify names it and the sum of the shard files', async () => {
    figures.cases++;
    const key = `${ID}/backup_config.json`;
    await damaging([key], async () => {
      const config = JSON.parse((await readObject(key)).toString()) as ConfigJson & { preCompressionSizeBytes: number };
      const recorded = config.preCompressionSizeBytes;
      await writeObject(key, Buffer.from(`${JSON.stringify({ ...config, preCompressionSizeBytes: recorded + 4096 }, null, 2)}\n`));
      const report = await verify();
      expect(report.status).toBe('CORRUPT');
      expect(report.problems).toEqual([{ key, problem: `preCompressionSizeBytes is ${recorded + 4096}; the node manifests' shard files add up to ${recorded}` }]);
    });
  });

  it('backup_config.json that is not JSON: verify reports it, the restore and the status are refused naming it', async () => {
    figures.cases++;
    const key = `${ID}/backup_config.json`;
    await damaging([key], async () => {
      const body = await readObject(key);
      await writeObject(key, body.subarray(0, body.length - 20));
      const report = await verify();
      expect(report).toMatchObject({ status: 'CORRUPT', objects: 1, problems: [{ key, problem: expect.stringMatching(/^not valid JSON/) }] });
      await expectRestoreRefused(new RegExp(`${literally(key)} is not valid JSON`));
      // Listing skips the unreadable backup; it does not fail.
      expect((await t.call('GET', '/v1/backups/filesystem')).status).toBe(200);
    });
  });

  it('with the damage undone, verifies OK and restores every document exactly', async () => {
    expect((await verify()).status).toBe('OK');
    expect((await t.call('POST', `/v1/backups/filesystem/${ID}/restore`, { include: ['Alpha'] })).status).toBe(200);
    const done = await waitForStatus(t.call, `/v1/backups/filesystem/${ID}/restore`);
    expect(done.status, JSON.stringify(done)).toBe('SUCCESS');
    figures.indexesCreated++;
    const restored = await readIndex(t.config.dataDir, t.config.nodes, 'Alpha');
    expect(restored.size).toBe(DOCS);
    expect(restored).toEqual(reference);
    figures.documentsCompared += restored.size;
  });

  it('answers 404 for an unknown backup and 422 for a bad id or a backup that is not SUCCESS', async () => {
    expect((await t.call('GET', '/v1/backups/filesystem/nope/verify')).status).toBe(404);
    expect((await t.call('GET', '/v1/backups/filesystem/..%2Fetc/verify')).status).toBe(422);
    expect((await t.call('GET', '/v1/backups/tape/x/verify')).status).toBe(422);
  });
});
