/**
 * Bad input (issue 8, item 5): at least 1000 malformed requests (5000 under test:chaos) over
 * every route of the API — the routes are read from the Hono app itself, so new ones are
 * fuzzed too — against a real API process (with a worker, so valid backups really run):
 * hostile ids and index names (`../`, encoded and double-encoded variants, backslashes, NUL,
 * unicode, 300 characters), wrong JSON types, malformed and deeply nested JSON, bodies over
 * the limit, wrong content types, truncated or corrupted MessagePack and dump files for
 * `:restore`, random bytes, odd methods and queries, plus raw-socket requests no client
 * library would send. Shown:
 * - no answer is 5xx, and every request that is invalid by construction is answered 4xx;
 * - the API process is still up and answering, and logged no unhandled error;
 * - no file was written outside its data and backup directories: the test's temp root is
 *   snapshotted before and after (the API's own TMPDIR is inside it, so a spool file left in
 *   the temp directory counts), and no file anywhere near carries the escape marker.
 * SHARDVAULT_SEED replays a run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDumpEncoder } from '../../shared/formats/dump-codec.ts';
import { createTestApi } from '../support/api.ts';
import { waitForStatus } from '../support/backups.ts';
import { startCluster, type Cluster } from '../support/cluster.ts';
import { fuzzRequests, rawSocketProbes, sendRaw, type FuzzAnswer, type FuzzRequest, type RouteTemplate } from '../support/fuzz.ts';
import { ROOT } from '../support/process.ts';
import { byMode, createRng, populate, recordFigures, seedFor } from '../support/reliability.ts';
import { tempDir } from '../support/temp.ts';

const NODES = ['node-1', 'node-2', 'node-3'];
const REQUESTS = byMode({ short: 1200, long: 5000 });
const PARALLEL = 4;
const MAX_BODY_BYTES = 64 * 1024;
const MARKER = `fuzzmark${process.pid}`;
const seed = seedFor('fuzz');

const figures = {
  seed,
  requests: 0,
  routes: 0,
  byStatus: {} as Record<string, number>,
  mustRefuse: 0,
  refused: 0,
  accepted2xx: 0,
  serverErrors: 0,
  transportErrors: 0,
  rawSocketProbes: 0,
  slowestMs: 0,
  filesOutside: 0,
};

/** Every file and directory under dir (relative), with size and mtime for files. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      const rel = path.relative(dir, full);
      if (e.isDirectory()) {
        out.set(`${rel}/`, 'dir');
        walk(full);
      } else {
        const st = fs.lstatSync(full);
        out.set(rel, `${st.size}:${st.mtimeMs}`);
      }
    }
  };
  walk(dir);
  return out;
}

/** Paths (files or directories) named with the marker anywhere under dir, to a depth. */
function markerPaths(dir: string, depth: number): string[] {
  const found: string[] = [];
  const walk = (d: string, left: number) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const full = path.join(d, e.name);
      if (e.name.includes(MARKER)) found.push(full);
      if (e.isDirectory() && left > 0 && e.name !== 'node_modules' && !e.name.startsWith('.git')) walk(full, left - 1);
    }
  };
  walk(dir, depth);
  return found;
}

async function dumpSample(): Promise<Buffer> {
  const encoder = createDumpEncoder({ kind: 'docs', index: 'Fuzz' });
  const chunks: Buffer[] = [];
  encoder.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise((r) => encoder.on('end', r));
  for (let i = 0; i < 20; i++) encoder.write({ _id: `dump-${i}`, n: i, text: 'y'.repeat(i * 10) });
  encoder.end();
  await ended;
  return Buffer.concat(chunks);
}

describe('bad input', () => {
  const tmp = tempDir('shardvault-fuzz-');
  const dataDir = path.join(tmp.dir, 'data');
  const backupDir = path.join(tmp.dir, 'backups');
  const osTmp = path.join(tmp.dir, 'os-tmp');
  let A: Cluster;
  let routes: RouteTemplate[];

  beforeAll(async () => {
    fs.mkdirSync(osTmp);
    fs.mkdirSync(path.join(tmp.dir, 'outside'));
    fs.writeFileSync(path.join(tmp.dir, 'outside', 'sentinel'), 'must stay untouched');
    await populate(dataDir, NODES, [{ name: 'Fuzz', shards: 2, docs: 50 }]);
    A = await startCluster({
      name: 'fuzz',
      dataDir,
      nodes: NODES,
      backendEnv: { BACKUP_FILESYSTEM_PATH: backupDir },
      workers: 1,
      env: { MAX_BODY_BYTES: String(MAX_BODY_BYTES), TMPDIR: osTmp, TMP: osTmp, TEMP: osTmp },
    });
    expect((await A.call('POST', '/v1/backups/filesystem', { id: 'fuzz-ok' })).status).toBe(200);
    expect((await waitForStatus(A.call, '/v1/backups/filesystem/fuzz-ok')).status).toBe('SUCCESS');
    // The routes, as the app itself lists them (without middleware and static files).
    const probe = createTestApi(A.redis.url);
    try {
      const seen = new Set<string>();
      routes = probe.api.app.routes
        .filter((r) => !r.path.includes('*'))
        .map((r) => ({ method: r.method, path: r.path }))
        .filter((r) => !seen.has(`${r.method} ${r.path}`) && !!seen.add(`${r.method} ${r.path}`));
    } finally {
      await probe.close();
    }
  }, 180_000);

  afterAll(async () => {
    recordFigures('fuzz', figures);
    await A?.stop();
    tmp.cleanup();
  });

  it(`answers ${REQUESTS} malformed requests over every route with 4xx (never 5xx), stays up, and writes nothing outside its directories`, async () => {
    figures.routes = routes.length;
    expect(routes.length, 'the app lists its routes').toBeGreaterThan(30);
    const rng = createRng(seed);
    const sample = await dumpSample();
    const requests = fuzzRequests(rng, REQUESTS, routes, { marker: MARKER, dumpSample: sample, maxBodyBytes: MAX_BODY_BYTES });
    const before = snapshot(tmp.dir);
    const base = new URL(A.url);
    // Even a file that exists only for a while counts: watch the API's temporary directory.
    const transient: string[] = [];
    const watcher = fs.watch(osTmp, (_event, name) => transient.push(String(name)));

    const failures: { req: FuzzRequest; answer: FuzzAnswer; why: string }[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        for (let i = next++; i < requests.length; i = next++) {
          const req = requests[i]!;
          const answer = await sendRaw(base, req);
          figures.requests++;
          figures.slowestMs = Math.max(figures.slowestMs, answer.ms);
          figures.byStatus[answer.status] = (figures.byStatus[answer.status] ?? 0) + 1;
          if (answer.status >= 200 && answer.status < 300) figures.accepted2xx++;
          if (req.mustRefuse) figures.mustRefuse++;
          if (answer.status >= 400 && answer.status < 500) figures.refused++;
          if (answer.status >= 500) figures.serverErrors++;
          if (answer.status === 0) figures.transportErrors++;
          if (answer.status >= 500 || answer.status === 0) failures.push({ req, answer, why: 'server error or no answer' });
          else if (req.mustRefuse && !(answer.status >= 400 && answer.status < 500)) failures.push({ req, answer, why: 'invalid request not refused' });
        }
      }),
    );
    const describe = (f: (typeof failures)[number]) =>
      `${f.why}: ${f.req.method} ${f.req.path.slice(0, 200)} [${f.req.kind}] ${JSON.stringify(f.req.headers)} body ${f.req.body?.length ?? 0} B → ${f.answer.status} ${f.answer.body.slice(0, 300)}`;
    const logged = A.api.output().split('\n').filter((l) => /unhandled error/.test(l)).slice(0, 5);
    expect(failures.map(describe), `seed ${seed}; the API logged:\n${logged.join('\n')}`).toEqual([]);

    watcher.close();
    expect(transient, 'files created in the temporary directory, outside data/').toEqual([]);

    const raw = await rawSocketProbes(base, MARKER);
    figures.rawSocketProbes = raw.length;
    for (const r of raw) expect(r.status, r.label).toBeLessThan(500);

    // Still up, still answering, nothing unhandled.
    expect(A.api.child.exitCode, 'the API process is still running').toBeNull();
    expect((await A.call('GET', '/v1/.well-known/live')).status).toBe(200);
    expect((await A.call('GET', '/v1/.well-known/ready')).status).toBe(200);
    expect(A.api.output()).not.toMatch(/unhandled error|uncaughtException|unhandledRejection/i);

    // Nothing written outside data/ and backups/: the temp root (and the API's TMPDIR in it)…
    const after = snapshot(tmp.dir);
    const changed = [...after]
      .filter(([p, v]) => before.get(p) !== v)
      .map(([p]) => p)
      .filter((p) => !p.startsWith('data/') && !p.startsWith('backups/'));
    const removed = [...before.keys()].filter((p) => !after.has(p) && !p.startsWith('data/') && !p.startsWith('backups/'));
    figures.filesOutside = changed.length + removed.length;
    expect({ changed, removed }).toEqual({ changed: [], removed: [] });
    // …and no escape marker beside it, in the system temp directory or in the repository.
    const near = [...markerPaths(path.dirname(tmp.dir), 1), ...markerPaths(os.tmpdir(), 0), ...markerPaths(ROOT, 2), ...markerPaths('/', 0)];
    expect(near.filter((p) => !p.startsWith(dataDir) && !p.startsWith(backupDir))).toEqual([]);
  }, 600_000);

  it('answers concurrent deletes, re-creations and writes of one index without a 5xx', async () => {
    const ops: [string, string, unknown?][] = [
      ['PUT', '/Race/d', { a: 1 }],
      ['DELETE', '/v1/schema/Race'],
      ['DELETE', '/Race'],
      ['GET', '/Race/:info'],
      ['PUT', '/Race/:schema', { _settings: { number_of_shards: 2 }, a: { _type: 'integer' } }],
      ['GET', '/v1/objects?class=Race'],
      ['PUT', '/Race/:metadata/k', 1],
      ['POST', '/v1/objects', { class: 'Race', properties: { a: 2 } }],
    ];
    const byStatus: Record<number, number> = {};
    let n = 0;
    await Promise.all(
      Array.from({ length: 6 }, async (_, w) => {
        for (let i = w; i < REQUESTS / 2; i += 6) {
          const [method, p, body] = ops[(i * 7 + w) % ops.length]!;
          const res = await A.call(method, p.replace('/d', `/d${i}`), body, { timeoutMs: 30_000 });
          byStatus[res.status] = (byStatus[res.status] ?? 0) + 1;
          n++;
        }
      }),
    );
    figures.requests += n;
    for (const [status, count] of Object.entries(byStatus)) figures.byStatus[status] = (figures.byStatus[status] ?? 0) + count;
    expect(Object.keys(byStatus).filter((st) => Number(st) >= 500), JSON.stringify(byStatus)).toEqual([]);
    expect(A.api.output()).not.toMatch(/unhandled error/);
  }, 300_000);
});
