/**
 * The CLI as a real child process (`node bin/shardvault.js …`), with the commands of Xapiand's
 * backups page and of issue 5 run as written, from a scratch working directory.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store } from '../../shared/store/store.ts';
import { createProgress } from '../../cli/progress.ts';
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
  it('answers --help from the repository with node bin/shardvault.js', async () => {
    const help = await sh(`${JSON.stringify(process.execPath)} bin/shardvault.js --help`, {}, REPO);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--dump-metadata=INDEX');
    expect(help.stdout).toContain('--strict');
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
