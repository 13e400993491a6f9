/**
 * One suite every Backend passes, run against real servers started here: the filesystem (a temp
 * directory), s3rver (test/support/s3-server.ts) and the Cloud Storage emulator from
 * firebase-tools (test/support/gcs-emulator.ts). Both servers run in child processes, so the
 * memory measured in this process is the backend code's own.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../shared/config.ts';
import { CancelledError, NotFoundError, ValidationError } from '../../shared/errors.ts';
import type { Backend, BackendName } from '../../shared/backends/backend.ts';
import { FilesystemBackend } from '../../shared/backends/filesystem.ts';
import { GcsBackend } from '../../shared/backends/gcs.ts';
import { createBackend, enabledBackends, parseBackendName } from '../../shared/backends/index.ts';
import { PermanentBackendError } from '../../shared/errors.ts';
import { S3Backend, s3EndpointUrl } from '../../shared/backends/s3.ts';
import { startGcsEmulator } from '../support/gcs-emulator.ts';
import { startS3Server } from '../support/s3-server.ts';
import { collectGarbage } from '../support/gc.ts';

const MIB = 1024 * 1024;

/** What the suite needs from each backend's world. */
interface Harness {
  config: Config['backends'];
  /** The same location as createBackend(name, config), listing two objects per page. */
  paginated(): Backend;
  /** A backend that cannot work (missing bucket / unwritable root) and how its error must read. */
  unusable(): { backend: Backend; message: RegExp };
  /** Files on disk under a prefix, temporaries included (filesystem only). */
  rawFiles?(prefix: string): Promise<string[]>;
  /** A backend with refused credentials and the secret that must not appear in errors. */
  refused?(): { backend: Backend; secret: string };
  stop(): Promise<void>;
}

const harnesses: Record<BackendName, () => Promise<Harness>> = {
  async filesystem() {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'shardvault-fs-backend-'));
    const root = path.join(dir, 'backups');
    const blocker = path.join(dir, 'not-a-directory');
    await writeFile(blocker, 'a file where the root directory should be');
    return {
      config: { filesystem: { path: root } },
      paginated: () => new FilesystemBackend({ root }),
      unusable: () => ({
        // Running as root, permissions cannot make a directory unwritable; a file in the way can.
        backend: new FilesystemBackend({ root: path.join(blocker, 'backups') }),
        message: /filesystem root ".*not-a-directory\/backups" is not writable: .*ENOTDIR/,
      }),
      rawFiles: async (prefix) => {
        const entries = await readdir(path.join(root, prefix), { recursive: true }).catch(() => []);
        return entries.map(String);
      },
      stop: () => rm(dir, { recursive: true, force: true }),
    };
  },
  async s3() {
    const server = await startS3Server();
    const s3 = {
      bucket: server.bucket,
      path: 'conformance',
      // host:port without a scheme, as BACKUP_S3_ENDPOINT usually is; the scheme comes from useSSL.
      endpoint: new URL(server.endpoint).host,
      useSSL: false,
      region: server.region,
      accessKeyId: server.accessKeyId,
      secretAccessKey: server.secretAccessKey,
    };
    return {
      config: { filesystem: { path: '/nonexistent' }, s3 },
      paginated: () => new S3Backend({ ...s3, listPageSize: 2 }),
      unusable: () => ({
        backend: new S3Backend({ ...s3, bucket: 'no-such-bucket' }),
        message: /s3 bucket "no-such-bucket" does not exist/,
      }),
      refused: () => {
        const secret = `wrong-secret-${randomUUID()}`;
        return { backend: new S3Backend({ ...s3, accessKeyId: 'NOT-A-KEY', secretAccessKey: secret }), secret };
      },
      stop: () => server.stop(),
    };
  },
  async gcs() {
    const emulator = await startGcsEmulator();
    const gcs = { bucket: emulator.bucket, path: 'conformance', projectId: emulator.projectId, emulatorHost: emulator.host };
    return {
      config: { filesystem: { path: '/nonexistent' }, gcs },
      paginated: () => new GcsBackend({ ...gcs, listPageSize: 2 }),
      unusable: () => ({
        backend: new GcsBackend({ ...gcs, bucket: 'no-such-bucket' }),
        message: /gcs bucket "no-such-bucket" does not exist/,
      }),
      stop: () => emulator.stop(),
    };
  },
};

/** A random stream of `total` bytes made on the fly (1 MiB at a time), hashed as it is produced. */
function generated(total: number, onProgress?: (sent: number) => void) {
  const hash = createHash('sha256');
  let sent = 0;
  const stream = new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const chunk = randomBytes(Math.min(MIB, total - sent));
      sent += chunk.length;
      hash.update(chunk);
      this.push(chunk);
      onProgress?.(sent);
    },
  });
  return { stream, digest: () => hash.digest('hex'), sent: () => sent };
}

async function sha256Of(stream: Readable): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const text = async (stream: Readable): Promise<string> => (await readAll(stream)).toString();

const body = (s: string | Buffer) => Readable.from([Buffer.from(s)]);

/** Peak growth of live Buffer memory (arrayBuffers) plus heap while fn runs, sampled every 250 ms. */
async function peakMemoryGrowth<T>(fn: () => Promise<T>): Promise<{ result: T; peakMiB: number }> {
  collectGarbage();
  const base = process.memoryUsage();
  const baseline = base.arrayBuffers + base.heapUsed;
  let peak = 0;
  const sample = () => {
    collectGarbage();
    const m = process.memoryUsage();
    peak = Math.max(peak, m.arrayBuffers + m.heapUsed - baseline);
  };
  const timer = setInterval(sample, 250);
  try {
    const result = await fn();
    return { result, peakMiB: peak / MIB };
  } finally {
    clearInterval(timer);
  }
}

describe.each(['filesystem', 's3', 'gcs'] as const)('%s backend', (name) => {
  let harness: Harness;
  let backend: Backend;
  /** A fresh prefix per test, so tests never see each other's objects. */
  const fresh = () => `t-${randomUUID().slice(0, 8)}/`;

  beforeAll(async () => {
    harness = await harnesses[name]();
    backend = createBackend(name, harness.config);
  }, 90_000);

  afterAll(async () => {
    await harness?.stop();
  }, 30_000);

  it('round-trips a 100 MiB stream: same sha256, same size, flat memory', async () => {
    const key = `${fresh()}node-1/index/0`;
    const source = generated(100 * MIB);
    const { result: written, peakMiB: writePeak } = await peakMemoryGrowth(() => backend.write(key, source.stream));
    expect(written.bytes).toBe(100 * MIB);
    const { result: back, peakMiB: readPeak } = await peakMemoryGrowth(async () => sha256Of(await backend.read(key)));
    expect(back.bytes).toBe(100 * MIB);
    expect(back.sha256).toBe(source.digest());
    expect(await backend.list(key)).toEqual([{ key, size: 100 * MIB }]);
    // Holding the object would cost >= 100 MiB; a few parts/chunks in flight stay well under
    // (measured: S3 ~40 MiB with partSize 8 MiB × (queueSize 2 + 1), the others < 35 MiB).
    expect(writePeak).toBeLessThan(64);
    expect(readPeak).toBeLessThan(64);
  }, 120_000);

  it('stores an empty object and overwrites an existing one', async () => {
    const p = fresh();
    expect(await backend.write(`${p}empty`, Readable.from([]))).toEqual({ bytes: 0 });
    expect(await text(await backend.read(`${p}empty`))).toBe('');
    await backend.write(`${p}manifest.json`, body('{"status":"STARTED"}'));
    await backend.write(`${p}manifest.json`, body('{"status":"SUCCESS"}'));
    expect(await text(await backend.read(`${p}manifest.json`))).toBe('{"status":"SUCCESS"}');
    expect(await backend.list(p)).toEqual([
      { key: `${p}empty`, size: 0 },
      { key: `${p}manifest.json`, size: 20 },
    ]);
  }, 30_000);

  it('lists by prefix: nested keys, sorted by key, sizes right, string-prefix semantics', async () => {
    const p = fresh();
    const objects: Record<string, string> = {
      [`${p}b/node-2/idx/1`]: 'x'.repeat(7),
      [`${p}a/backup_config.json`]: '{}',
      [`${p}b/node-1/idx/0`]: 'y'.repeat(1000),
      [`${p}b/node-1/backup.json`]: 'z'.repeat(3),
      [`${p}bb/other`]: 'w',
    };
    for (const [key, value] of Object.entries(objects)) await backend.write(key, body(value));
    const expected = (keys: string[]) => keys.map((key) => ({ key, size: Buffer.byteLength(objects[key]!) }));

    expect(await backend.list(`${p}b/`)).toEqual(
      expected([`${p}b/node-1/backup.json`, `${p}b/node-1/idx/0`, `${p}b/node-2/idx/1`]),
    );
    expect(await backend.list(`${p}b`)).toEqual(
      expected([`${p}b/node-1/backup.json`, `${p}b/node-1/idx/0`, `${p}b/node-2/idx/1`, `${p}bb/other`]),
    );
    expect(await backend.list(`${p}b/node-1/b`)).toEqual(expected([`${p}b/node-1/backup.json`]));
    expect(await backend.list(p)).toEqual(expected(Object.keys(objects).sort()));
    expect(await backend.list(`${p}nothing-here/`)).toEqual([]);
    expect(await backend.list(`${fresh()}`)).toEqual([]);
    // Across pages of two (S3 continuation tokens, GCS page tokens), the same answer.
    expect(await harness.paginated().list(p)).toEqual(await backend.list(p));
  }, 30_000);

  it('lists the directories one level under a prefix, without what lies deeper, across pages', async () => {
    const p = fresh();
    for (const key of [`${p}b/node-1/idx/0`, `${p}a/backup_config.json`, `${p}.repository/packs/0a/x`, `${p}c/d/e`, `${p}top-level-file`, `${p}bb/x`]) {
      await backend.write(key, body('v'));
    }
    expect(await backend.listDirectories(p)).toEqual(['.repository', 'a', 'b', 'bb', 'c']);
    expect(await backend.listDirectories(`${p}b/`)).toEqual(['node-1']);
    expect(await backend.listDirectories(`${p}.repository/packs/`)).toEqual(['0a']);
    expect(await backend.listDirectories(`${p}a/`)).toEqual([]);
    expect(await backend.listDirectories(`${p}nothing-here/`)).toEqual([]);
    expect(await harness.paginated().listDirectories(p)).toEqual(['.repository', 'a', 'b', 'bb', 'c']);
    await expect(backend.listDirectories(`${p}b`)).rejects.toThrow(ValidationError);
  }, 30_000);

  it('deletePrefix deletes everything under the prefix, nothing else, and counts it', async () => {
    const p = fresh();
    const keys = [`${p}gone/node-1/a/0`, `${p}gone/node-1/a/1`, `${p}gone/node-2/backup.json`, `${p}gone/top`, `${p}kept/x`, `${p}gonex`];
    for (const key of keys) await backend.write(key, body(key));
    expect(await backend.deletePrefix(`${p}gone/`)).toBe(4);
    expect((await backend.list(p)).map((o) => o.key)).toEqual([`${p}gonex`, `${p}kept/x`]);
    expect(await backend.exists(`${p}gone/top`)).toBe(false);
    expect(await backend.deletePrefix(`${p}gone/`)).toBe(0);
    if (harness.rawFiles) {
      // Directories emptied by the delete are gone as well.
      expect(await harness.rawFiles(p)).toEqual(expect.not.arrayContaining(['gone']));
      expect((await harness.rawFiles(p)).sort()).toEqual(['gonex', 'kept', 'kept/x']);
    }
    await expect(backend.deletePrefix('')).rejects.toBeInstanceOf(ValidationError);
  }, 30_000);

  it('an abort mid-upload leaves nothing visible', async () => {
    const p = fresh();
    const key = `${p}node-1/index/0`;
    const controller = new AbortController();
    // Abort after 24 MiB: S3 has multipart parts stored by then, GCS a session with bytes in it.
    const source = generated(100 * MIB, (sent) => {
      if (sent >= 24 * MIB && !controller.signal.aborted) setImmediate(() => controller.abort());
    });
    await expect(backend.write(key, source.stream, { signal: controller.signal })).rejects.toBeInstanceOf(CancelledError);
    expect(source.sent()).toBeLessThan(100 * MIB);
    expect(source.stream.destroyed).toBe(true);
    expect(await backend.list(p)).toEqual([]);
    expect(await backend.exists(key)).toBe(false);
    await expect(backend.read(key)).rejects.toBeInstanceOf(NotFoundError);
    if (harness.rawFiles) expect((await harness.rawFiles(p)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  }, 60_000);

  it('an already-aborted signal writes nothing', async () => {
    const p = fresh();
    await expect(backend.write(`${p}x`, body('x'), { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(CancelledError);
    expect(await backend.list(p)).toEqual([]);
  }, 30_000);

  it("a body that fails mid-stream rejects with the body's own error and leaves nothing visible", async () => {
    const p = fresh();
    const key = `${p}broken`;
    const boom = new Error('source failed after 12 MiB');
    let sent = 0;
    const failing = new Readable({
      read() {
        if (sent >= 12 * MIB) return void this.destroy(boom);
        sent += MIB;
        this.push(randomBytes(MIB));
      },
    });
    await expect(backend.write(key, failing)).rejects.toBe(boom);
    expect(await backend.list(p)).toEqual([]);
    expect(await backend.exists(key)).toBe(false);
    if (harness.rawFiles) expect(await harness.rawFiles(p)).toEqual([]);
  }, 60_000);

  it('reads a byte range: from the start, in the middle, to the end; a missing object is NotFoundError', async () => {
    const key = `${fresh()}packs/ab/pack`;
    const bytes = Buffer.from(Array.from({ length: 3 * 4096 + 100 }, (_, i) => (i * 7 + (i >> 12)) & 0xff));
    await backend.write(key, Readable.from([bytes]));
    const range = async (start: number, length: number) => readAll(await backend.read(key, { range: { start, length } }));
    expect(await range(0, 10)).toEqual(bytes.subarray(0, 10));
    expect(await range(4096, 4096)).toEqual(bytes.subarray(4096, 8192));
    expect(await range(3 * 4096, 100)).toEqual(bytes.subarray(3 * 4096));
    expect(await range(5, bytes.length - 5)).toEqual(bytes.subarray(5));
    await expect(backend.read(`${key}-missing`, { range: { start: 0, length: 10 } })).rejects.toBeInstanceOf(NotFoundError);
  }, 30_000);

  it('a read its reader stops early ends alone: the other reads in flight come whole', async () => {
    // A restore reads several ranges at once; a cancelled or failed one must not take the others'
    // connections with it (the GCS client destroyed every socket of its shared agent, and the
    // other downloads stalled until the request timeout).
    const p = fresh();
    const source = generated(16 * MIB);
    await backend.write(`${p}kept`, source.stream);
    await backend.write(`${p}stopped`, generated(16 * MIB).stream);
    // The kept read is paused mid-body (its first chunk taken) while the others start and stop.
    const kept = (await backend.read(`${p}kept`))[Symbol.asyncIterator]();
    const hash = createHash('sha256');
    let bytes = 0;
    const take = (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
    };
    take((await kept.next()).value as Buffer);
    for (let i = 0; i < 3; i++) {
      const stopped = await backend.read(`${p}stopped`, i === 1 ? { range: { start: 4096, length: 8 * MIB } } : {});
      for await (const _ of stopped) break;
    }
    for (let r = await kept.next(); !r.done; r = await kept.next()) take(r.value as Buffer);
    expect({ bytes, sha256: hash.digest('hex') }).toEqual({ bytes: 16 * MIB, sha256: source.digest() });
  }, 60_000);

  it('a missing object: read rejects with NotFoundError naming it, exists is false', async () => {
    const key = `${fresh()}missing/object`;
    const err = await backend.read(key).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toContain(backend.locate(key));
    expect(await backend.exists(key)).toBe(false);
  }, 30_000);

  it('checkAccess succeeds and leaves no marker behind', async () => {
    const before = await backend.list('');
    await backend.checkAccess();
    expect(await backend.list('')).toEqual(before);
  }, 30_000);

  it(`checkAccess fails clearly for ${name === 'filesystem' ? 'an unwritable root' : 'a missing bucket'}`, async () => {
    const { backend: unusable, message } = harness.unusable();
    const err = await unusable.checkAccess().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentBackendError);
    expect((err as Error).message).toMatch(message);
    // The same cause surfaces from ordinary calls, without retrying.
    const started = Date.now();
    await expect(unusable.write('x/y', body('y'))).rejects.toBeInstanceOf(PermanentBackendError);
    expect(Date.now() - started).toBeLessThan(5_000);
  }, 30_000);

  it.runIf(name === 's3')('refused credentials fail permanently and never echo the secret', async () => {
    const { backend: refused, secret } = harness.refused!();
    const err = await refused.checkAccess().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentBackendError);
    expect((err as Error).message).toMatch(/refused for bucket ".*" \(InvalidAccessKeyId/);
    expect(JSON.stringify(err, Object.getOwnPropertyNames(err))).not.toContain(secret);
    expect(String((err as Error).stack)).not.toContain(secret);
  }, 30_000);

  it('rejects keys that could escape the root or alias another key', async () => {
    const bad = ['../escape', 'a/../../b', '/etc/passwd', 'a\\..\\b', 'a\0b', 'C:/x', 'a//b', './a', 'a/./b', 'x.tmp', ''];
    for (const key of bad) {
      await expect(backend.write(key, body('x')), key).rejects.toBeInstanceOf(ValidationError);
      await expect(backend.read(key), key).rejects.toBeInstanceOf(ValidationError);
    }
    await expect(backend.list('../')).rejects.toBeInstanceOf(ValidationError);
    await expect(backend.deletePrefix('a/../')).rejects.toBeInstanceOf(ValidationError);
    await expect(backend.exists('/abs')).rejects.toBeInstanceOf(ValidationError);
  }, 30_000);

  it('locate names where a key lives', () => {
    const where = backend.locate('b1/node-1/backup.json');
    if (name === 'filesystem') expect(where).toBe(path.join(harness.config.filesystem.path, 'b1/node-1/backup.json'));
    if (name === 's3') expect(where).toBe(`s3://${harness.config.s3!.bucket}/conformance/b1/node-1/backup.json`);
    if (name === 'gcs') expect(where).toBe(`gs://${harness.config.gcs!.bucket}/conformance/b1/node-1/backup.json`);
    // A backup's directory (Weaviate answers it as `path`) and the root can be located too.
    expect(backend.locate('b1/')).toMatch(/[/:]conformance\/b1\/?$|\/backups\/b1$/);
  });

  it('accepts unusual but safe keys', async () => {
    const p = fresh();
    const keys = [`${p}..data`, `${p}.hidden/x`, `${p}with space/ünïcødé`, `${p}a:b@c=d+e`];
    for (const key of keys) await backend.write(key, body(key));
    expect((await backend.list(p)).map((o) => o.key)).toEqual(
      [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
    );
    for (const key of keys) expect(await text(await backend.read(key))).toBe(key);
  }, 30_000);
});

describe('createBackend', () => {
  const backends: Config['backends'] = {
    filesystem: { path: '/var/backups/shardvault' },
    s3: { bucket: 'cfg-bucket', path: 'cfg/path', endpoint: 'minio:9000', useSSL: false, region: 'us-east-1' },
    gcs: { bucket: 'cfg-gcs', path: '', emulatorHost: 'localhost:9199' },
  };

  it('parses backend names, gcp as an alias of gcs', () => {
    expect(parseBackendName('filesystem')).toBe('filesystem');
    expect(parseBackendName('s3')).toBe('s3');
    expect(parseBackendName('gcs')).toBe('gcs');
    expect(parseBackendName('gcp')).toBe('gcs');
    expect(() => parseBackendName('azure')).toThrow(/^unknown backend "azure"; use filesystem, s3 or gcs$/);
    expect(() => createBackend('ftp' as BackendName, backends)).toThrow(ValidationError);
  });

  it('lists the enabled backends; filesystem always is', () => {
    expect(enabledBackends(backends)).toEqual(['filesystem', 's3', 'gcs']);
    expect(enabledBackends({ filesystem: { path: '/b' } })).toEqual(['filesystem']);
  });

  it('refuses a backend that is not configured, naming the variable', () => {
    const only = { filesystem: { path: '/b' } };
    const s3 = () => createBackend('s3', only);
    expect(s3).toThrow(ValidationError);
    expect(s3).toThrow('backend "s3" is not enabled: set BACKUP_S3_BUCKET');
    expect(() => createBackend('gcs', only)).toThrow('backend "gcs" is not enabled: set BACKUP_GCS_BUCKET');
    try {
      createBackend('gcs', only);
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
    }
  });

  it('applies Weaviate config.Bucket / config.Path overrides', () => {
    expect(createBackend('s3', backends).locate('k')).toBe('s3://cfg-bucket/cfg/path/k');
    expect(createBackend('s3', backends, { bucket: 'other-bucket', path: '/tenant-a/' }).locate('k')).toBe(
      's3://other-bucket/tenant-a/k',
    );
    expect(createBackend('gcs', backends, { path: 'x/y' }).locate('k')).toBe('gs://cfg-gcs/x/y/k');
    expect(createBackend('gcs', backends, { bucket: 'my_bucket.v2' }).locate('k')).toBe('gs://my_bucket.v2/k');
    expect(createBackend('filesystem', backends, { path: 'tenant-a/daily' }).locate('k')).toBe(
      '/var/backups/shardvault/tenant-a/daily/k',
    );
    expect(createBackend('filesystem', backends, { bucket: '', path: '' }).locate('k')).toBe('/var/backups/shardvault/k');
  });

  it('rejects bad overrides with a ValidationError naming the field', () => {
    const cases: Array<[BackendName, { bucket?: string; path?: string }, RegExp]> = [
      ['s3', { bucket: 'Bad_Bucket' }, /^config\.Bucket: "Bad_Bucket" is not a valid s3 bucket name/],
      ['s3', { bucket: 'a..b' }, /^config\.Bucket:/],
      ['s3', { bucket: '192.168.1.1' }, /^config\.Bucket:/],
      ['gcs', { bucket: 'goog-bucket' }, /^config\.Bucket:/],
      ['gcs', { bucket: 'ab' }, /^config\.Bucket:/],
      ['s3', { path: 'a/../b' }, /^config\.Path "a\/\.\.\/b" must not contain "\." or "\.\." segments/],
      ['gcs', { path: '..' }, /^config\.Path/],
      ['s3', { path: 'a\\b' }, /^config\.Path .*backslashes/],
      ['filesystem', { path: '../../etc' }, /^config\.Path/],
      ['filesystem', { path: '/etc' }, /^config\.Path "\/etc" must be a relative path/],
      ['filesystem', { bucket: 'b' }, /^config\.Bucket: the filesystem backend has no buckets/],
    ];
    for (const [name, overrides, message] of cases) {
      expect(() => createBackend(name, backends, overrides), JSON.stringify(overrides)).toThrow(message);
      expect(() => createBackend(name, backends, overrides)).toThrow(ValidationError);
    }
  });

  it('builds the S3 endpoint from BACKUP_S3_ENDPOINT and BACKUP_S3_USE_SSL', () => {
    expect(s3EndpointUrl('minio:9000', false)).toBe('http://minio:9000');
    expect(s3EndpointUrl('minio:9000', true)).toBe('https://minio:9000');
    expect(s3EndpointUrl('http://127.0.0.1:4568/', true)).toBe('http://127.0.0.1:4568');
    expect(() => s3EndpointUrl('ftp://x', false)).toThrow(/BACKUP_S3_ENDPOINT/);
  });
});
