/**
 * A real S3 server for tests: s3rver (a Koa implementation of the S3 REST API storing objects
 * on disk) on 127.0.0.1, a free port, a fresh temp directory, one bucket.
 *
 * It runs in a child process of its own, started from this very file, because:
 * - s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 (Node >= 17)
 *   only offers with `--openssl-legacy-provider`; without it every truncated listing (i.e.
 *   pagination) answers 500. The flag is given to the child only.
 * - its objects and logger stay out of the test process, so tests can assert that *our*
 *   memory stays flat while 100 MiB stream through.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, rm, rmdir, unlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';

export interface S3Server {
  /** `http://127.0.0.1:<port>`; use with `forcePathStyle`. */
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Stops the server and deletes its directory. */
  stop(): Promise<void>;
}

export interface StartS3ServerOptions {
  /** Bucket created before the server answers. Default `shardvault-test`. */
  bucket?: string;
  /** An access key the server accepts besides its built-in S3RVER (it checks the id, not SigV4 signatures). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

const THIS_FILE = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(THIS_FILE), '../..');
const CHILD_FLAG = 'SHARDVAULT_S3RVER_CHILD';
/** s3rver's built-in account. */
const ACCESS_KEY = 'S3RVER';

type ChildMessage = { type: 'ready'; port: number } | { type: 'error'; message: string };

export async function startS3Server(options: StartS3ServerOptions = {}): Promise<S3Server> {
  const bucket = options.bucket ?? 'shardvault-test';
  const child = fork(THIS_FILE, [JSON.stringify({ bucket, credentials: options.credentials })], {
    cwd: ROOT,
    execArgv: ['--openssl-legacy-provider', '--import', 'tsx'],
    env: { ...process.env, [CHILD_FLAG]: '1' },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  const port = await waitForReady(child, 's3rver', 30_000);
  // A server that dies under a test fails its requests with ECONNREFUSED; say why it died.
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  let stopping = false;
  child.once('exit', (code, signal) => {
    if (!stopping) console.error(`s3rver (the test S3 server) exited during the tests with ${code ?? signal}${stderr ? `:\n${stderr}` : ''}`);
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    region: 'us-east-1',
    accessKeyId: options.credentials?.accessKeyId ?? ACCESS_KEY,
    secretAccessKey: options.credentials?.secretAccessKey ?? ACCESS_KEY,
    stop: () => {
      stopping = true;
      return stopChild(child);
    },
  };
}

/** Resolves with the port the child reports, rejects with its stderr if it fails or exits. */
export function waitForReady(child: ChildProcess, what: string, timeoutMs: number): Promise<number> {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-8000);
  });
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      cleanup();
      if (child.exitCode === null && child.signalCode === null) {
        // A child that reported an error cleans up and exits by itself; only a hung one is killed.
        const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
        child.once('exit', () => clearTimeout(kill));
      }
      reject(new Error(`${what} did not start: ${why}${stderr ? `\n${stderr}` : ''}`));
    };
    const onMessage = (m: ChildMessage) => {
      if (m.type === 'ready') {
        cleanup();
        resolve(m.port);
      } else fail(m.message);
    };
    const onExit = (code: number | null, signal: string | null) => fail(`exited with ${code ?? signal}`);
    const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** Asks the child to stop, waits for it to exit; kills it (this child only) if it hangs. */
export async function stopChild(child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (child.connected) child.send({ type: 'stop' });
  else child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

// --- child side ---------------------------------------------------------------------------

interface S3rverOptions {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  configureBuckets: Array<{ name: string }>;
}
interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
type S3rverConstructor = new (options: S3rverOptions) => S3rverInstance;

interface ListOptions {
  delimiter?: string;
  prefix?: string;
}
interface ListResult {
  objects: unknown[];
  commonPrefixes: string[];
  isTruncated: boolean;
}
interface S3Object {
  bucket: string;
  key: string;
  content: Buffer | Readable;
  metadata: Record<string, string>;
}
interface FilesystemStore {
  getBucketPath(bucket: string): string;
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5: string): Promise<void>;
}
interface StoreClass {
  prototype: {
    listObjects(this: FilesystemStore, bucket: string, options: ListOptions): Promise<ListResult>;
    putObject(this: FilesystemStore, object: S3Object): Promise<{ size: number; md5: string }>;
    putPart(this: FilesystemStore, bucket: string, uploadId: string, partNumber: number, content: Readable): Promise<{ size: number; md5: string }>;
    deleteObject(this: FilesystemStore, bucket: string, key: string): Promise<void>;
  };
}

/** True when a directory of s3rver's store holds an object somewhere below it. */
async function holdsObject(dir: string): Promise<boolean> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  if (entries.some((e) => e.isFile() && e.name.endsWith('._S3rver_object'))) return true;
  for (const e of entries) if (e.isDirectory() && (await holdsObject(path.join(dir, e.name)))) return true;
  return false;
}

/**
 * s3rver 3.7 prunes its directory walk below a would-be common prefix before it has seen an
 * object there, so with the delimiter `/` a "directory" whose objects all lie two or more
 * levels deeper is missing from CommonPrefixes (`b/` of `b/node-1/idx/0`), where S3 lists
 * it. Its common prefixes are taken here from the store's directories instead (each that
 * holds an object), as S3 answers them: every one, on the first page.
 */
function listEveryCommonPrefix(store: StoreClass): void {
  const listObjects = store.prototype.listObjects;
  store.prototype.listObjects = async function (bucket, options) {
    const own = await listObjects.call(this, bucket, options);
    if (options.delimiter !== '/') return own;
    const prefix = options.prefix ?? '';
    const cut = prefix.lastIndexOf('/') + 1;
    const [dirPart, namePart] = [prefix.slice(0, cut), prefix.slice(cut)];
    const dir = path.join(this.getBucketPath(bucket), ...dirPart.split('/').filter(Boolean));
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    const commonPrefixes: string[] = [];
    for (const e of entries) {
      if (e.isDirectory() && e.name.startsWith(namePart) && (await holdsObject(path.join(dir, e.name)))) commonPrefixes.push(`${dirPart}${e.name}/`);
    }
    return { ...own, commonPrefixes: commonPrefixes.sort() };
  };
}

const errorCode = (err: unknown) => (err as NodeJS.ErrnoException).code;

/**
 * Writes an object's or a part's content, answering its size and MD5. s3rver 3.7 creates the
 * object's directory, then opens the file with a stream that has no 'error' listener, while a
 * delete of the directory's last object removes the directory: the open then fails ENOENT and
 * that unhandled error kills the whole server. Here the file is opened before it is written
 * (again, after creating the directory again, if the directory went in between; an open file
 * keeps its directory from being removed) and every error of the copy fails this request only.
 */
async function writeContent(file: string, content: Buffer | Readable): Promise<{ size: number; md5: string }> {
  for (let attempt = 1; ; attempt++) {
    await mkdir(path.dirname(file), { recursive: true });
    const handle = await open(file, 'w').catch((err: unknown) => {
      if (errorCode(err) === 'ENOENT' && attempt < 5) return undefined;
      throw err;
    });
    if (!handle) continue;
    const md5 = createHash('md5');
    let size = 0;
    const count = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        md5.update(chunk);
        size += chunk.length;
        callback(null, chunk);
      },
    });
    await pipeline(Buffer.isBuffer(content) ? Readable.from([content]) : content, count, handle.createWriteStream());
    return { size, md5: md5.digest('hex') };
  }
}

/**
 * s3rver 3.7 races its own writes and deletes in one directory (see writeContent); and a
 * delete whose directory a concurrent delete already removed failed reading it, on every
 * retry. Writes go through writeContent; a delete removes the directories it empties and stops
 * at the first that is gone or not empty.
 */
function raceFreeWrites(store: StoreClass): void {
  store.prototype.putObject = async function (object) {
    const written = await writeContent(this.getResourcePath(object.bucket, object.key, 'object'), object.content);
    await this.putMetadata(object.bucket, object.key, object.metadata, written.md5);
    return written;
  };
  store.prototype.putPart = async function (bucket, uploadId, partNumber, content) {
    const file = path.join(this.getResourcePath(bucket, undefined, 'uploads'), uploadId, String(partNumber));
    const written = await writeContent(file, content);
    await writeFile(`${file}.md5`, written.md5);
    return written;
  };
  store.prototype.deleteObject = async function (bucket, key) {
    const gone = (err: unknown) => {
      if (errorCode(err) !== 'ENOENT') throw err;
    };
    await Promise.all(['object', 'object.md5', 'metadata.json'].map((r) => unlink(this.getResourcePath(bucket, key, r)).catch(gone)));
    const dirs = key.split('/').slice(0, -1);
    for (; dirs.length; dirs.pop()) {
      const removed = await rmdir(path.join(this.getBucketPath(bucket), ...dirs)).then(
        () => true,
        (err: unknown) => {
          if (errorCode(err) === 'ENOENT' || errorCode(err) === 'ENOTEMPTY') return false;
          throw err;
        },
      );
      if (!removed) return;
    }
  };
}

async function childMain(): Promise<void> {
  const send = (m: ChildMessage) => process.send?.(m);
  let directory: string | undefined;
  let server: S3rverInstance | undefined;
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    await server?.close().catch(() => undefined);
    if (directory) await rm(directory, { recursive: true, force: true });
    process.exit(0);
  };
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'stop') void shutdown();
  });
  // The test process went away without stopping us: do not linger.
  process.on('disconnect', () => void shutdown());
  try {
    const { bucket, credentials } = JSON.parse(process.argv[2] ?? '{}') as {
      bucket: string;
      credentials?: { accessKeyId: string; secretAccessKey: string };
    };
    directory = await mkdtemp(path.join(os.tmpdir(), 'shardvault-s3rver-'));
    const require = createRequire(import.meta.url);
    const S3rver = require('s3rver') as S3rverConstructor;
    const store = require('s3rver/lib/stores/filesystem.js') as StoreClass;
    listEveryCommonPrefix(store);
    raceFreeWrites(store);
    if (credentials) {
      const account = require('s3rver/lib/models/account.js') as { DUMMY_ACCOUNT: { createKeyPair(id: string, secret: string): void } };
      account.DUMMY_ACCOUNT.createKeyPair(credentials.accessKeyId, credentials.secretAccessKey);
    }
    server = new S3rver({
      address: '127.0.0.1',
      port: 0,
      silent: true,
      directory,
      configureBuckets: [{ name: bucket }],
    });
    const { port } = await server.run();
    send({ type: 'ready', port });
  } catch (err) {
    send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    await shutdown();
  }
}

if (process.env[CHILD_FLAG] === '1' && process.argv[1] === THIS_FILE && process.send) {
  void childMain();
}
