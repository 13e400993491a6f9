/**
 * The CLI as a real child process (`node bin/shardvault.js …`), with the commands of Xapiand's
 * backups page and of issue 5 run as written, from a scratch working directory; and the same
 * flags with `--url` against an API (in this process, listening on a port) with API keys on.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../shared/redis-server.ts';
import { Store } from '../../shared/store/store.ts';
import { main } from '../../cli/main.ts';
import { createProgress } from '../../cli/progress.ts';
import { useTestApi } from '../support/api.ts';
import { tempDir } from '../support/temp.ts';
import { ROOT } from '../support/process.ts';

const run = promisify(execFile);
const REPO = ROOT;
const BIN = path.join(REPO, 'bin', 'shardvault.js');
const NODES = ['node-1', 'node-2', 'node-3'];

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

let scratch: { dir: string; cleanup: () => void };
let work: string;
let source: string;

/** Run a command line through /bin/sh, with each `shardvault` command standing for `node bin/shardvault.js`. */
async function sh(command: string, env: Record<string, string> = {}, cwd = work): Promise<Outcome> {
  const line = command.replace(/(^|[;&|]\s*)shardvault(?= )/g, (_, before: string) => `${before}${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)}`);
  try {
    const { stdout, stderr } = await run('/bin/sh', ['-c', line], {
      cwd,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const TWEETS = [
  { user: 'Kronuz', postDate: '2016-11-15T13:12:00', message: 'Trying out Xapiand, so far, so good... so what!', _id: 1 },
  { user: 'Kronuz', postDate: '2016-10-15T10:31:18', message: 'Another tweet, will it be indexed?', _id: 2 },
];

/** Everything a restore could change about an index, for before/after comparisons. */
function snapshot(dataDir: string, index: string): unknown {
  const store = new Store({ dataDir, nodes: NODES });
  try {
    const rec = store.getIndex(index);
    if (!rec) return { exists: false, indexes: store.listIndexes().map((r) => r.name).sort() };
    return {
      schema: store.describeSchema(index),
      metadata: store.listMetadata(index),
      docs: store.listDocuments(index, { limit: 1000 }),
      indexes: store.listIndexes().map((r) => r.name).sort(),
    };
  } finally {
    void store.close();
  }
}

beforeAll(async () => {
  scratch = tempDir('shardvault-cli-');
  work = scratch.dir;
  source = path.join(work, 'data');
  const store = new Store({ dataDir: source, nodes: NODES });
  await store.putSchema('twitter', { _id: { _type: 'integer' }, user: { _type: 'keyword' }, postDate: { _type: 'datetime' } }, { shards: 5 });
  await store.putDocuments('twitter', TWEETS);
  await store.putMetadata('twitter', 'owner', { name: 'Kronuz', since: 2016 });
  await store.putMetadata('twitter', 'language', 'en');
  await store.close();
});
afterAll(() => scratch.cleanup());

describe('shardvault CLI: dump and restore (issue 5, Xapiand backups page)', () => {
  it('ends quietly with 141 when the reader of its output goes away, as SIGPIPE would', async () => {
    const child = spawn(process.execPath, [BIN, '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    // The reading end closes before the command writes (`shardvault … | head` once head is done).
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(stderr).toBe('');
    expect(code).toBe(141);
  });

  it('refuses the local flags when CLUSTER_NODES names nodes on their own hosts, pointing to --url', async () => {
    const nodes = { CLUSTER_NODES: 'node-1=http://127.0.0.1:9,node-2=http://127.0.0.1:9,node-3=http://127.0.0.1:9', CLUSTER_SECRET: 's'.repeat(32) };
    const dumped = await sh(`shardvault --dump=twitter --out=remote-nodes.docs --data-dir=${JSON.stringify(source)}`, nodes);
    expect(dumped.code).toBe(2);
    expect(dumped.stderr).toContain('CLUSTER_NODES names nodes on their own hosts');
    expect(dumped.stderr).toContain('--url=');
    expect(fs.existsSync(path.join(work, 'remote-nodes.docs'))).toBe(false);
    const restored = await sh(`shardvault --restore=elsewhere --in=remote-nodes.docs --data-dir=${JSON.stringify(source)}`, nodes);
    expect(restored.code).toBe(2);
    expect(fs.existsSync(path.join(source, 'node-1', 'elsewhere'))).toBe(false);
  });

  it('answers --help from the repository with node bin/shardvault.js', async () => {
    const help = await sh(`${JSON.stringify(process.execPath)} bin/shardvault.js --help`, {}, REPO);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--dump-metadata=INDEX');
    expect(help.stdout).toContain('--strict');
    expect(help.stdout).toContain('--url=URL');
    const bad = await sh('shardvault --dump=twitter --in=x');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--in is for --restore/);
    const unknown = await sh('shardvault --frobnicate');
    expect(unknown.code).toBe(2);
  });

  it('runs the three dumps as written', async () => {
    const env = { DATA_DIR: source };
    for (const [cmd, file] of [
      ['shardvault --dump-metadata=twitter --out=twitter.meta', 'twitter.meta'],
      ['shardvault --dump-schema=twitter --out=twitter.schm', 'twitter.schm'],
      ['shardvault --dump=twitter --out=twitter.docs', 'twitter.docs'],
      ['shardvault --dump="twitter" --out="twitter.msgpack"', 'twitter.msgpack'], // Xapiand's own line
    ] as const) {
      const out = await sh(cmd, env);
      expect(out.code, out.stderr).toBe(0);
      expect(fs.readFileSync(path.join(work, file)).subarray(0, 6).toString()).toBe('SVDUMP');
    }
    expect((await sh('shardvault --dump=twitter --out=twitter.docs', env)).stderr).toMatch(/dumped 2 documents of index twitter/);
    expect(fs.readdirSync(work).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it('restores the three files into an empty data directory: metadata, schema and documents come back', async () => {
    const env = { DATA_DIR: path.join(work, 'empty') };
    for (const file of ['twitter.meta', 'twitter.schm', 'twitter.docs']) {
      const out = await sh(`shardvault --restore=twitter --in=${file}`, env);
      expect(out.code, out.stderr).toBe(0);
    }
    const restored = snapshot(path.join(work, 'empty'), 'twitter');
    expect(restored).toEqual(snapshot(source, 'twitter'));
    expect(restored).toMatchObject({
      metadata: { owner: { name: 'Kronuz', since: 2016 }, language: 'en' },
      schema: { user: { _type: 'keyword' }, postDate: { _type: 'datetime' }, _id: { _type: 'integer' } },
    });
    const store = new Store({ dataDir: path.join(work, 'empty'), nodes: NODES });
    expect(store.requireIndex('twitter').shards).toBe(5); // the source's shard count
    expect(store.getDocument('twitter', 1).postDate).toEqual(new Date('2016-11-15T13:12:00Z'));
    await store.close();

    // Xapiand's own line: --restore="twitter" --in="twitter.msgpack"
    const xapiand = await sh('shardvault --restore="twitter" --in="twitter.msgpack"', { DATA_DIR: path.join(work, 'xapiand') });
    expect(xapiand.code, xapiand.stderr).toBe(0);
    expect(snapshot(path.join(work, 'xapiand'), 'twitter')).toMatchObject({ docs: (restored as { docs: unknown }).docs });
  });

  it('restores a gzip-compressed dump (a backup shard object is one)', async () => {
    const out = await sh('gzip -c twitter.docs > twitter.docs.gz && shardvault --restore=gz --in=twitter.docs.gz', { DATA_DIR: path.join(work, 'gz') });
    expect(out.code, out.stderr).toBe(0);
    expect(snapshot(path.join(work, 'gz'), 'gz')).toMatchObject({ docs: (snapshot(source, 'twitter') as { docs: unknown }).docs });
  });

  it('dumps to stdout and restores from stdin, with --data-dir and --nodes instead of the environment', async () => {
    const dump = await sh(`shardvault --dump=twitter --data-dir=${source} --nodes=node-1,node-2,node-3 > piped.docs`);
    expect(dump.code, dump.stderr).toBe(0);
    const restore = await sh(`shardvault --restore=copy --data-dir=${path.join(work, 'piped')} --nodes=a,b < piped.docs`);
    expect(restore.code, restore.stderr).toBe(0);
    expect(restore.stderr).toMatch(/restored 2 documents into index copy from stdin \(a docs dump of index twitter/);
    const store = new Store({ dataDir: path.join(work, 'piped'), nodes: ['a', 'b'] });
    expect(store.info('copy')).toMatchObject({ docs: 2, nodes: ['a', 'b'] });
    await store.close();
  });

  it('refuses a bad header, a wrong checksum and a truncated file, changing nothing', async () => {
    const good = fs.readFileSync(path.join(work, 'twitter.docs'));
    const flipped = Buffer.from(good);
    flipped[flipped.indexOf('Another tweet')] = 'a'.charCodeAt(0);
    fs.writeFileSync(path.join(work, 'checksum.docs'), flipped);
    fs.writeFileSync(path.join(work, 'truncated.docs'), good.subarray(0, good.length - 20));
    fs.writeFileSync(path.join(work, 'header.docs'), Buffer.concat([Buffer.from('XXDUMP'), good.subarray(6)]));
    const before = snapshot(source, 'twitter');
    for (const [file, message] of [
      ['header.docs', /not a shardvault dump \(bad header\)/],
      ['checksum.docs', /checksum mismatch/],
      ['truncated.docs', /truncated/],
    ] as const) {
      for (const target of ['twitter', 'fresh']) {
        const out = await sh(`shardvault --restore=${target} --in=${file}`, { DATA_DIR: source });
        expect(out.code).toBe(1);
        expect(out.stderr).toMatch(/restore refused, nothing was changed/);
        expect(out.stderr).toMatch(message);
      }
    }
    expect(snapshot(source, 'twitter')).toEqual(before);
    expect(snapshot(source, 'fresh')).toEqual({ exists: false, indexes: ['twitter'] });
    const piped = await sh('shardvault --restore=fresh < truncated.docs', { DATA_DIR: source });
    expect(piped.code).toBe(1);
    expect(snapshot(source, 'fresh')).toEqual({ exists: false, indexes: ['twitter'] });
  });

  it('reports documents that do not fit the target schema (index, position, _id) and keeps the others; --strict refuses them all', async () => {
    const dataDir = path.join(work, 'mixed');
    const store = new Store({ dataDir, nodes: NODES });
    await store.putSchema('mixed', { _id: { _type: 'keyword' } });
    await store.putDocuments('mixed', [{ _id: '7', user: 'a' }, { _id: 'abc', user: 'b' }, { _id: '8', user: 'c' }]);
    await store.putSchema('typed', { _id: { _type: 'integer' } });
    await store.close();
    expect((await sh('shardvault --dump=mixed --out=mixed.docs', { DATA_DIR: dataDir })).code).toBe(0);

    const strict = await sh('shardvault --restore=typed --in=mixed.docs --strict', { DATA_DIR: dataDir });
    expect(strict.code).toBe(1);
    expect(strict.stderr).toMatch(/1 document\(s\) do not fit the schema of index typed, so nothing was restored \(strict\).*_id "abc"/);
    expect(snapshot(dataDir, 'typed')).toMatchObject({ docs: [] });

    const lenient = await sh('shardvault --restore=typed --in=mixed.docs', { DATA_DIR: dataDir });
    expect(lenient.code).toBe(3);
    expect(lenient.stderr).toMatch(/refused document #\d \(_id "abc"\) of index typed: field _id: expected an integer, got "abc"/);
    expect(lenient.stderr).toMatch(/restored 2 documents into index typed .*1 document refused/);
    expect(snapshot(dataDir, 'typed')).toMatchObject({ docs: [{ _id: 7, user: 'a' }, { _id: 8, user: 'c' }] });
  });

  it('works on the data directory while another process (the server) holds it open and writes', async () => {
    const dataDir = path.join(work, 'live');
    const server = new Store({ dataDir, nodes: NODES });
    try {
      await server.putDocuments('live', TWEETS);
      const dump = await sh('shardvault --dump=live --out=live.docs', { DATA_DIR: dataDir });
      expect(dump.code, dump.stderr).toBe(0);
      await server.putDocuments('live', [{ _id: 3, user: 'later' }]);
      const restore = await sh('shardvault --restore=live_copy --in=live.docs', { DATA_DIR: dataDir });
      expect(restore.code, restore.stderr).toBe(0);
      // The running process sees what the CLI wrote.
      expect(server.info('live_copy').docs).toBe(2);
      expect(server.getDocument('live_copy', 2)).toMatchObject({ message: 'Another tweet, will it be indexed?' });
    } finally {
      await server.close();
    }
  });

  it('restores a foreign schema into an empty data directory, recreating its .schemas document', async () => {
    const dataDir = path.join(work, 'foreign');
    const store = new Store({ dataDir, nodes: NODES });
    await store.putSchema('new_twitter', {
      _type: 'foreign/object', _endpoint: '.schemas/00000000-0000-1000-8000-010000000000', description: 'Twitter Schema',
      schema: { _type: 'object', _id: { _type: 'integer' }, user: { _type: 'keyword' }, postDate: { _type: 'datetime' }, message: { _type: 'text' } },
    });
    await store.close();
    expect((await sh('shardvault --dump-schema=new_twitter --out=new_twitter.schm', { DATA_DIR: dataDir })).code).toBe(0);
    const restored = await sh('shardvault --restore=new_twitter --in=new_twitter.schm', { DATA_DIR: path.join(work, 'foreign2') });
    expect(restored.code, restored.stderr).toBe(0);
    expect(snapshot(path.join(work, 'foreign2'), 'new_twitter')).toEqual(snapshot(dataDir, 'new_twitter'));
  });

  it('fails clearly on an unknown index and a missing data directory, leaving no file behind', async () => {
    const missing = await sh('shardvault --dump=nope --out=nope.docs', { DATA_DIR: source });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/index "nope" not found/);
    expect(fs.existsSync(path.join(work, 'nope.docs'))).toBe(false);
    const noData = await sh('shardvault --dump=twitter --out=x.docs', { DATA_DIR: path.join(work, 'no-such-dir') });
    expect(noData.code).toBe(1);
    expect(noData.stderr).toMatch(/no data directory/);
    expect(fs.existsSync(path.join(work, 'no-such-dir'))).toBe(false);
  });
});

describe('shardvault CLI: dump and restore through the API (--url)', { timeout: 180_000 }, () => {
  const KEY = 'dump-cli-key';
  const t = useTestApi({ AUTHENTICATION_APIKEY_ENABLED: 'true', AUTHENTICATION_APIKEY_ALLOWED_KEYS: KEY, HOST: '127.0.0.1', PORT: '0' });
  let url: string;
  /** Only the key: no DATA_DIR, so nothing local could be opened by mistake. */
  const withKey = { SHARDVAULT_API_KEY: KEY };
  const books = Array.from({ length: 3000 }, (_, i) => ({ _id: i + 1, title: `Book ${i + 1}`, body: 'lorem ipsum '.repeat(10) }));

  /** Everything a restore could change about an index of the API's store. */
  const apiSnapshot = (index: string) => ({
    schema: t.store.describeSchema(index),
    metadata: t.store.listMetadata(index),
    docs: t.store.listDocuments(index, { limit: 5000 }),
    shards: t.store.requireIndex(index).shards,
  });

  beforeAll(async () => {
    url = `http://127.0.0.1:${(await t.api.start()).port}`;
    await t.store.putSchema('books', { _id: { _type: 'integer' }, title: { _type: 'keyword' } }, { shards: 4 });
    await t.store.putDocuments('books', books);
    await t.store.putMetadata('books', 'owner', { name: 'Kronuz', since: 2016 });
    await t.store.putMetadata('books', 'language', 'en');
  });
  afterAll(async () => {
    await t.api.stop();
  });

  it('dumps an index through the API and restores it through the API into another index: the same documents, schema, metadata and shard count', async () => {
    for (const [flag, file] of [['--dump-metadata', 'books.meta'], ['--dump-schema', 'books.schm'], ['--dump', 'books.docs']] as const) {
      const out = await sh(`shardvault ${flag}=books --out=${file} --url=${url}`, withKey);
      expect(out.code, out.stderr).toBe(0);
      expect(fs.readFileSync(path.join(work, file)).subarray(0, 6).toString()).toBe('SVDUMP');
    }
    const again = await sh(`shardvault --dump=books --out=books.docs --url=${url}`, withKey);
    expect(again.stderr).toMatch(new RegExp(`^shardvault: dumped 3,000 documents of index books at ${url} to books\\.docs \\([\\d,]+ bytes, sha256 [0-9a-f]{64}\\)\\n$`));
    expect(fs.readdirSync(work).filter((f) => f.includes('.tmp'))).toEqual([]);

    for (const file of ['books.meta', 'books.schm', 'books.docs']) {
      const out = await sh(`shardvault --restore=books_copy --in=${file} --url=${url}`, withKey);
      expect(out.code, out.stderr).toBe(0);
    }
    expect(apiSnapshot('books_copy')).toEqual(apiSnapshot('books'));
    expect(apiSnapshot('books_copy')).toMatchObject({ shards: 4, metadata: { language: 'en' } });
    expect(t.store.info('books_copy').docs).toBe(3000);

    // Piped, as a local dump and restore can be: stdout of one into stdin of the other.
    const piped = await sh(`shardvault --dump=books --url=${url} | shardvault --restore=books_piped --url=${url}`, withKey);
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stderr).toMatch(new RegExp(`restored 3,000 documents into index books_piped at ${url} from stdin \\(a docs dump of index books made .*; 0 documents refused; the index holds 3,000 documents`));
    expect(t.store.listDocuments('books_piped', { limit: 5000 })).toEqual(apiSnapshot('books').docs);
  });

  it('writes the same files as a local dump: a dump made through the API restores into a data directory', async () => {
    const dataDir = path.join(work, 'from-api');
    for (const file of ['books.schm', 'books.meta', 'books.docs']) {
      const out = await sh(`shardvault --restore=books --in=${file}`, { DATA_DIR: dataDir });
      expect(out.code, out.stderr).toBe(0);
    }
    const store = new Store({ dataDir, nodes: NODES });
    try {
      expect(store.describeSchema('books')).toEqual(t.store.describeSchema('books'));
      expect(store.listMetadata('books')).toEqual(t.store.listMetadata('books'));
      expect(store.info('books')).toMatchObject({ docs: 3000, shards: 4 });
    } finally {
      await store.close();
    }
  });

  it('--dump-schema through the API writes the schema the API answers, foreign schemas as their PUT body', async () => {
    await t.store.putSchema('new_books', {
      _type: 'foreign/object', _endpoint: '.schemas/00000000-0000-1000-8000-020000000000', description: 'Book Schema',
      schema: { _type: 'object', _id: { _type: 'integer' }, title: { _type: 'keyword' } },
    });
    const out = await sh(`shardvault --dump-schema=new_books --out=new_books.schm --url=${url}`, withKey);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stderr).toMatch(/dumped 1 schema of index new_books at/);
    const restored = await sh('shardvault --restore=new_books --in=new_books.schm', { DATA_DIR: path.join(work, 'foreign-api') });
    expect(restored.code, restored.stderr).toBe(0);
    const store = new Store({ dataDir: path.join(work, 'foreign-api'), nodes: NODES });
    try {
      expect(store.describeSchema('new_books')).toEqual(t.store.describeSchema('new_books'));
    } finally {
      await store.close();
    }
  });

  it("a wrong or missing API key: exit 1 and the backup commands' line, no file written", async () => {
    const wrong = await sh(`shardvault --dump=books --out=wrong.docs --url=${url}`, { SHARDVAULT_API_KEY: 'not-the-key' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toBe('shardvault: invalid API key (set SHARDVAULT_API_KEY) [HTTP 401 from POST /books/:dump]\n');
    expect(fs.existsSync(path.join(work, 'wrong.docs'))).toBe(false);
    const none = await sh(`shardvault --dump-schema=books --out=none.schm --url=${url}`);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^shardvault: missing API key.*\(set SHARDVAULT_API_KEY\) \[HTTP 401 from GET \/books\/:info\]\n$/);
    const restore = await sh(`shardvault --restore=books_wrong --in=books.docs --url=${url}`, { SHARDVAULT_API_KEY: 'not-the-key' });
    expect(restore.code).toBe(1);
    expect(restore.stderr).toBe('shardvault: invalid API key (set SHARDVAULT_API_KEY) [HTTP 401 from POST /books_wrong/:restore]\n');
    expect(t.store.getIndex('books_wrong')).toBeUndefined();
  });

  it('an unknown index, a bad dump file and an unreachable API: one line each, exit 1, nothing left behind', async () => {
    const missing = await sh(`shardvault --dump=nope --out=nope.docs --url=${url}`, withKey);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^shardvault: index "nope" not found \[HTTP 404 from POST \/nope\/:dump\]\n$/);
    expect(fs.existsSync(path.join(work, 'nope.docs'))).toBe(false);

    // Refused locally, before anything is sent.
    fs.writeFileSync(path.join(work, 'not-a-dump.json'), '[{"_id": 1}]');
    const bad = await sh(`shardvault --restore=books_bad --in=not-a-dump.json --url=${url}`, withKey);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^shardvault: restore refused, nothing was changed: not a shardvault dump/);
    expect(t.store.getIndex('books_bad')).toBeUndefined();

    const port = await freePort();
    const away = await sh(`shardvault --dump=books --out=away.docs --url=http://127.0.0.1:${port}`, withKey);
    expect(away.code).toBe(1);
    expect(away.stderr).toBe(`shardvault: cannot reach the API at http://127.0.0.1:${port} (ECONNREFUSED); is it running? (--url names another)\n`);
    expect(fs.existsSync(path.join(work, 'away.docs'))).toBe(false);
    const awayRestore = await sh(`shardvault --restore=books --in=books.docs --url=http://127.0.0.1:${port}`, withKey);
    expect(awayRestore.code).toBe(1);
    expect(awayRestore.stderr).toMatch(/^shardvault: cannot reach the API at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);

    const usage = await sh(`shardvault --dump=books --url=${url} --data-dir=x`, withKey);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/--url works through the API; --data-dir and --nodes are for a local data directory/);
    expect((await sh(`shardvault --restore=books --in=books.docs --strict --url=${url}`, withKey)).code).toBe(2);
  });

  it('draws the progress bar in bytes on a terminal: received for a dump, sent out of the file size for a restore', async () => {
    let drawn = '';
    const stderr = Object.assign(new Writable({ write: (chunk, _enc, done) => ((drawn += String(chunk)), done()) }), { isTTY: true, columns: 120 });
    const stdout = new Writable({ write: (_chunk, _enc, done) => done() });
    const io = { stdin: new PassThrough(), stdout, stderr, env: withKey };
    const file = path.join(work, 'bar.docs');
    // The first update draws at once (later ones at most every 100 ms), so even a fast run shows it.
    expect(await main(['--dump=books', `--out=${file}`, `--url=${url}`], io)).toBe(0);
    expect(drawn).toMatch(new RegExp(`\\rdumping books from ${url} [\\d.]+ (B|kB|MB) `));
    expect(drawn).toMatch(/\r\x1b\[K[^\r]*shardvault: dumped 3,000 documents/);
    drawn = '';
    expect(await main(['--restore=books_bar', `--in=${file}`, `--url=${url}`], io)).toBe(0);
    const size = fs.statSync(file).size;
    const shown = size < 1e6 ? `${(size / 1000).toFixed(1)} kB` : `${(size / 1e6).toFixed(1)} MB`;
    // The total is the file's size: "sending …bar.docs to URL [###…] 42% 190.0 kB/450.3 kB".
    expect(drawn).toMatch(new RegExp(`\\rsending \\S+bar\\.docs to ${url} \\[[#.]+\\] \\d+% [\\d.]+ (B|kB|MB)/${shown.replace('.', '\\.')} `));
    expect(drawn).toMatch(/\r\x1b\[Kshardvault: restored 3,000 documents into index books_bar/);
  });

  it('a dump the API breaks off halfway (connection lost, or an answer that ends early) fails and leaves no output file', async () => {
    const whole = fs.readFileSync(path.join(work, 'books.docs'));
    // Stands for an API whose answer stops partway: it sends the first half of a real dump.
    const broken = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(whole.subarray(0, whole.length >> 1), () => {
        if (req.url?.startsWith('/cut/')) res.socket?.destroy();
        else res.end(); // a clean end: only the dump's own trailer check tells it is short
      });
    });
    await new Promise<void>((resolve) => broken.listen(0, '127.0.0.1', resolve));
    const brokenUrl = `http://127.0.0.1:${(broken.address() as AddressInfo).port}`;
    try {
      const cut = await sh(`shardvault --dump=cut --out=cut.docs --url=${brokenUrl}`, withKey);
      expect(cut.code).toBe(1);
      expect(cut.stderr).toMatch(new RegExp(`^shardvault: the API at ${brokenUrl} stopped sending the dump of cut after [\\d,]+ bytes`));
      const short = await sh(`shardvault --dump=short --out=short.docs --url=${brokenUrl}`, withKey);
      expect(short.code).toBe(1);
      expect(short.stderr).toMatch(/^shardvault: dump failed: dump is truncated/);
      expect(fs.readdirSync(work).filter((f) => f.startsWith('cut.') || f.startsWith('short.'))).toEqual([]);
    } finally {
      await new Promise<void>((resolve) => broken.close(() => resolve()));
    }
  });
});

describe('progress bar', () => {
  it('draws on a terminal only, and erases itself', () => {
    const written: string[] = [];
    const tty = { isTTY: true, columns: 80, write: (s: string) => written.push(s) > 0 };
    const bar = createProgress(tty, { label: 'dumping twitter', unit: 'docs', total: 1000 });
    bar.update(500);
    bar.done();
    expect(written[0]).toMatch(/^\rdumping twitter \[#+\.+\] 50% 500\/1,000 /);
    expect(written.at(-1)).toBe('\r\x1b[K');
    const pipe = { isTTY: false, write: (s: string) => written.push(s) > 0 };
    const silent = createProgress(pipe, { label: 'x', unit: 'bytes' });
    silent.update(1);
    silent.done();
    expect(written).toHaveLength(2);
  });
});
