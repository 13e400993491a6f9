/**
 * `shardvault backup …` against a running system: `main.ts` (API and workers in one process)
 * as a child with its own Redis, data and backup directories and API keys on; the CLI as
 * `node bin/shardvault.js …` child processes. Covers create/status/list/restore/cancel, --wait
 * ending SUCCESS (exit 0) and FAILED (exit 1), refusals as one line, and the progress bar.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { progressBar } from '../../cli/operation-progress.ts';
import { freePort, type RedisServer } from '../../shared/redis-server.ts';
import { ROOT, spawnNode, type NodeProcess } from '../support/process.ts';
import { startTestRedis } from '../support/redis.ts';
import { tempDir } from '../support/temp.ts';

const BIN = path.join(ROOT, 'bin', 'shardvault.js');
const KEY = 'cli-test-key';

let redis: RedisServer;
let server: NodeProcess;
let scratch: { dir: string; cleanup: () => void };
let url: string;
let backupsDir: string;

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** `node bin/shardvault.js …` with only the environment given (plus PATH and HOME). */
function cli(args: string[], env: Record<string, string> = { SHARDVAULT_API_KEY: KEY }): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: scratch.dir, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, encoding: 'utf8', timeout: 120_000 },
      (err, stdout, stderr) => {
        const code = err ? (err as { code?: unknown }).code : 0;
        if (typeof code !== 'number') return reject(err);
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function api(method: string, p: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${url}${p}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const books = Array.from({ length: 400 }, (_, i) => ({ _id: i + 1, title: `Book ${i + 1}`, body: 'lorem ipsum '.repeat(20) }));
const films = Array.from({ length: 150 }, (_, i) => ({ _id: `film-${i}`, title: `Film ${i}` }));

beforeAll(async () => {
  redis = await startTestRedis();
  scratch = tempDir('shardvault-cli-backup-');
  backupsDir = path.join(scratch.dir, 'backups');
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  server = spawnNode('main.ts', [], {
    REDIS_URL: redis.url,
    DATA_DIR: path.join(scratch.dir, 'data'),
    BACKUP_FILESYSTEM_PATH: backupsDir,
    PORT: String(port),
    GRPC_PORT: '0',
    HOST: '127.0.0.1',
    AUTHENTICATION_APIKEY_ENABLED: 'true',
    AUTHENTICATION_APIKEY_ALLOWED_KEYS: `${KEY},second-key`,
    WORKER_SHUTDOWN_SECONDS: '5',
    LOG_LEVEL: 'info',
  });
  await server.waitFor(/"msg":"api listening"/, 60_000);
  for (const [index, docs] of [['books', books], ['films', films]] as const) {
    const res = await api('POST', `/${index}/:restore`, docs);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ indexed: docs.length });
  }
});

afterAll(async () => {
  await server?.kill('SIGTERM');
  await redis?.stop();
  scratch?.cleanup();
});

describe('shardvault backup', () => {
  it('create --wait follows a backup to SUCCESS and exits 0; status and list show it', async () => {
    // The key from AUTHENTICATION_APIKEY_ALLOWED_KEYS (its first), as on the server's machine.
    const created = await cli(['backup', 'create', 'filesystem', 'cli-1', '--url', url, '--wait', '--compression', 'BestSpeed', '--interval', '100'], {
      AUTHENTICATION_APIKEY_ALLOWED_KEYS: `${KEY},second-key`,
    });
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toContain(`backup cli-1 started on filesystem: books, films (${path.join(backupsDir, 'cli-1')})`);
    expect(created.stderr).not.toContain('\r'); // no bar drawn into a pipe, plain lines
    expect(created.stdout).toMatch(/^backup cli-1 SUCCESS: \d+\/\d+ shards, 550 documents, [\d.]+ (B|kB|MB) in [\d.]+ s\n$/);
    expect(fs.existsSync(path.join(backupsDir, 'cli-1', 'backup_config.json'))).toBe(true);

    const status = await cli(['backup', 'status', 'filesystem', 'cli-1', '--url', url]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('backup cli-1 on filesystem: SUCCESS');
    expect(status.stdout).toMatch(/progress: +\d+\/\d+ shards, 550 documents/);
    const json = await cli(['backup', 'status', 'filesystem', 'cli-1', '--url', url, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ id: 'cli-1', status: 'SUCCESS', classes: ['books', 'films'], progress: { docs: 550 } });
    // The options every API command takes may come before the command, as global options do.
    for (const before of [['--url', url, '--json'], [`--url=${url}`, '--json']]) {
      const first = await cli([...before, 'backup', 'status', 'filesystem', 'cli-1']);
      expect(first.code, first.stderr).toBe(0);
      expect(JSON.parse(first.stdout)).toMatchObject({ id: 'cli-1', status: 'SUCCESS' });
    }

    const list = await cli(['backup', 'list', 'filesystem', '--url', url]);
    expect(list.code).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^ID +STATUS +STARTED +COMPLETED +CLASSES$/);
    expect(list.stdout).toMatch(/^cli-1 +SUCCESS +\S+ +\S+ +books,films$/m);
  });

  it('refuses a restore over classes that exist with one line and exit 1', async () => {
    const res = await cli(['backup', 'restore', 'filesystem', 'cli-1', '--url', url, '--wait']);
    expect(res.code).toBe(1);
    expect(res.stdout).toBe('');
    expect(res.stderr).toBe(
      'shardvault: classes "books", "films" already exist: delete before restoring [HTTP 422 from POST /v1/backups/filesystem/cli-1/restore]\n',
    );
  });

  it('restore --include --wait brings one class back and exits 0', async () => {
    expect((await api('DELETE', '/books')).status).toBe(200);
    const res = await cli(['backup', 'restore', 'filesystem', 'cli-1', '--url', url, '--include', 'books', '--wait', '--interval', '100']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^restore cli-1 SUCCESS: \d+\/\d+ shards, 400 documents/);
    const info = await api('GET', '/books/:info');
    expect(info.status).toBe(200);
    expect(JSON.stringify(info.body)).toContain('400');
    const doc = await api('GET', '/books/7');
    expect(doc.body).toMatchObject({ _id: 7, title: 'Book 7' });
    const status = await cli(['backup', 'status', 'filesystem', 'cli-1', '--restore', '--url', url, '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ status: 'SUCCESS', classes: ['books'] });
  });

  it('restore --wait of a damaged backup ends FAILED: exit 1 and the reason on stderr', async () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(backupsDir, 'cli-1', 'node-1', 'backup.json'), 'utf8')) as { shards: { key: string; index: string }[] };
    const shard = manifest.shards.find((s) => s.index === 'films')!;
    fs.appendFileSync(path.join(backupsDir, shard.key), 'not what was written');
    expect((await api('DELETE', '/films')).status).toBe(200);

    const res = await cli(['backup', 'restore', 'filesystem', 'cli-1', '--url', url, '--include', 'films', '--wait', '--interval', '100']);
    expect(res.code).toBe(1);
    expect(res.stdout).toBe('');
    expect(res.stderr).toMatch(/^shardvault: restore cli-1 FAILED: .* — .*(checksum|sha256)/m);
    expect((await api('GET', '/films/:info')).status).toBe(404);
  });

  it('answers API refusals, a missing key and an unreachable API with one line and exit 1', async () => {
    const badId = await cli(['backup', 'create', 'filesystem', 'Not_Valid', '--url', url]);
    expect(badId).toMatchObject({ code: 1, stdout: '' });
    expect(badId.stderr).toMatch(/^shardvault: invalid backup id "Not_Valid": use only lowercase letters.*\[HTTP 422 from POST \/v1\/backups\/filesystem\]\n$/);

    const unknown = await cli(['backup', 'status', 'filesystem', 'never-made', '--url', url]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^shardvault: backup "never-made" not found in backend filesystem .*\[HTTP 404 .*\]\n$/);

    const finished = await cli(['backup', 'cancel', 'filesystem', 'cli-1', '--url', url]);
    expect(finished.code).toBe(1);
    expect(finished.stderr).toMatch(/has already finished \(SUCCESS\)/);

    const noKey = await cli(['backup', 'list', 'filesystem', '--url', url], {});
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toMatch(/^shardvault: missing API key.*\(set SHARDVAULT_API_KEY\) \[HTTP 401 from GET \/v1\/backups\/filesystem\]\n$/);
    const wrongKey = await cli(['backup', 'list', 'filesystem', '--url', url], { SHARDVAULT_API_KEY: 'wrong' });
    expect(wrongKey.stderr).toMatch(/^shardvault: invalid API key/);

    const port = await freePort();
    const away = await cli(['backup', 'list', 'filesystem', '--url', `http://127.0.0.1:${port}`]);
    expect(away.code).toBe(1);
    expect(away.stderr).toBe(`shardvault: cannot reach the API at http://127.0.0.1:${port} (ECONNREFUSED); is it running? (--url names another)\n`);
  });

  it('refuses bad arguments with exit 2 before calling the API', async () => {
    for (const args of [
      ['backup'],
      ['backup', 'create', 'filesystem'],
      ['backup', 'frobnicate', 'filesystem', 'x'],
      ['backup', 'create', 'filesystem', 'x', '--include', 'a', '--exclude', 'b'],
      ['backup', 'list', 'filesystem', '--wait'],
      ['backup', 'restore', 'filesystem', 'x', '--node-mapping', 'a:b'],
      ['backup', 'create', 'filesystem', 'x', '--bogus'],
    ]) {
      const res = await cli([...args, '--url', 'http://127.0.0.1:9']);
      expect(res.code, args.join(' ')).toBe(2);
      expect(res.stderr, args.join(' ')).toMatch(/^shardvault backup: .+\nRun "shardvault backup --help" for usage\.\n$/);
    }
    const unknown = await cli(['backup', 'watch', 'filesystem', 'x', '--url', 'http://127.0.0.1:9']);
    expect(unknown.stderr).toContain('unknown command "watch": use create, status, restore, list, cancel, verify, delete');
    const help = await cli(['backup', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('shardvault backup create  BACKEND ID');
    expect(help.stdout).toContain('shardvault backup delete');
  });

  it('draws a progress bar on a terminal (in-process, stderr posing as a TTY)', async () => {
    let drawn = '';
    const stderr = Object.assign(
      new Writable({
        write(chunk, _enc, cb) {
          drawn += String(chunk);
          cb();
        },
      }),
      { isTTY: true, columns: 120 },
    );
    let out = '';
    const stdout = new Writable({
      write(chunk, _enc, cb) {
        out += String(chunk);
        cb();
      },
    });
    const code = await main(['backup', 'create', 'filesystem', 'cli-tty', '--url', url, '--include', 'books', '--wait', '--interval', '50'], {
      stdin: process.stdin,
      stdout,
      stderr,
      env: { SHARDVAULT_API_KEY: KEY },
    });
    expect(code, drawn).toBe(0);
    expect(out).toMatch(/^backup cli-tty SUCCESS: /);
    expect(drawn).toMatch(/\rbackup cli-tty (STARTED|TRANSFERRING|TRANSFERRED|SUCCESS) \[[#.]+\] \d+\/\d+ shards  [\d,]+ docs  [\d.]+ (B|kB|MB)/);
    expect(drawn).toMatch(/\rbackup cli-tty SUCCESS \[#+\] (\d+)\/\1 shards  400 docs /);
    expect(drawn.endsWith('\r\x1b[K')).toBe(true); // erased before the final line

    expect(
      progressBar({
        kind: 'backup',
        id: 'b1',
        status: { id: 'b1', backend: 'filesystem', path: '/x', status: 'TRANSFERRING', classes: ['A'], startedAt: '2026-12-03T00:00:00Z', progress: { shardsDone: 3, shardsTotal: 6, docs: 1200, bytes: 1_234_567 } },
        rate: 400_000,
        elapsedMs: 2100,
        width: 100,
      }),
    ).toBe(`backup b1 TRANSFERRING [${'#'.repeat(12)}${'.'.repeat(11)}] 3/6 shards  1,200 docs  1.2 MB  400.0 kB/s  2.1 s`);
  });

  it('schedule set, show, list, run and delete through the API; bad input refused naming the field', async () => {
    const set = await cli(['schedule', 'set', 'cli-nightly', '--url', url, '--cron', '0 3 * * *', '--timezone', 'Europe/Berlin', '--backend', 'filesystem', '--include', 'books', '--keep-daily', '7', '--keep-last', '2']);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/^schedule cli-nightly\n {2}when: {9}cron "0 3 \* \* \*" \(Europe\/Berlin\)\n {2}backend: {6}filesystem, include books\n {2}retention: {4}keeps last 2, daily 7\n {2}next run: {5}\d{4}-/);

    const run = await cli(['schedule', 'run', 'cli-nightly', '--url', url, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const { id } = JSON.parse(run.stdout) as { id: string };
    expect(id).toMatch(/^cli-nightly-\d{8}-\d{6}$/);
    let shown: Outcome;
    const deadline = Date.now() + 60_000;
    do {
      await new Promise((r) => setTimeout(r, 200));
      shown = await cli(['schedule', 'show', 'cli-nightly', '--url', url]);
    } while (!shown.stdout.includes('last success') && Date.now() < deadline);
    expect(shown.stdout).toContain(`  last run:     ${id} SUCCESS in `);
    expect(shown.stdout).toContain('  runs:         1 SUCCESS, 0 FAILED, 0 CANCELED, 0 SKIPPED');

    const list = await cli(['schedule', 'list', '--url', url]);
    expect(list.stdout).toMatch(new RegExp(`^cli-nightly +cron "0 3 \\* \\* \\*" Europe/Berlin +filesystem +next \\S+ +last ${id} SUCCESS\n$`));

    const bad = await cli(['schedule', 'set', 'cli-nightly', '--url', url, '--every', '1h', '--backend', 'filesystem', '--max-age', 'forever']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^shardvault: retention\.maxAge "forever" is not a duration.*\[HTTP 422 from PUT \/v1\/backup-schedules\/cli-nightly\]\n$/);
    const usage = await cli(['schedule', 'set', 'cli-nightly', '--keep-daily', 'seven']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^shardvault schedule: --keep-daily takes a whole number, got "seven"/);

    expect((await cli(['schedule', 'delete', 'cli-nightly', '--url', url])).stdout).toBe('schedule cli-nightly deleted (its backups stay)\n');
    const gone = await cli(['schedule', 'show', 'cli-nightly', '--url', url]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/backup schedule "cli-nightly" not found \[HTTP 404/);
  });
});
