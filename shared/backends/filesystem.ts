import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream, type Dirent } from 'node:fs';
import { mkdir, open, readdir, rename, rm, rmdir, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { addAbortSignal, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CancelledError, IntegrityError, NotFoundError, ShardvaultError, ValidationError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Backend, CallOptions, ObjectInfo } from './backend.ts';
import { describeError, fallbackBackendError, PermanentBackendError } from './retry.ts';

// ---------------------------------------------------------------------------------------------
// Key rules shared by every backend. They live here because the filesystem is where a bad key
// becomes a security problem; S3 and GCS apply the same rules so that a backup written to one
// backend can be copied to any other unchanged.
// ---------------------------------------------------------------------------------------------

/** Longest key accepted, in UTF-8 bytes (S3's limit, which includes the configured path). */
export const MAX_KEY_BYTES = 1024;

/** Suffix of in-progress filesystem writes; keys may not end with it. */
export const TMP_SUFFIX = '.tmp';

/**
 * Throws ValidationError unless key is a `/`-separated relative path: non-empty, no leading
 * `/`, no drive letter, no backslash, no NUL or other control character, no empty, `.` or
 * `..` segment, not ending in `.tmp` (reserved for in-progress writes), at most 1024 bytes.
 */
export function validateKey(key: string, field = 'key'): void {
  if (typeof key !== 'string' || key.length === 0) {
    throw new ValidationError(`${field} must be a non-empty string`);
  }
  checkRelativePath(key, field, false);
  if (key.endsWith(TMP_SUFFIX)) {
    throw new ValidationError(`${field} ${quote(key)} must not end in "${TMP_SUFFIX}" (reserved for in-progress writes)`);
  }
}

/** Like validateKey, but the empty prefix (everything) and a trailing `/` are allowed. */
export function validatePrefix(prefix: string, field = 'prefix'): void {
  if (typeof prefix !== 'string') throw new ValidationError(`${field} must be a string`);
  if (prefix.length === 0) return;
  checkRelativePath(prefix, field, true);
}

/**
 * Checks a relative, `/`-separated path (also used for `config.Path` overrides). With
 * allowTrailingSlash, `a/b/` is accepted; `a//b` never is.
 */
export function checkRelativePath(value: string, field: string, allowTrailingSlash: boolean): void {
  if (Buffer.byteLength(value, 'utf8') > MAX_KEY_BYTES) {
    throw new ValidationError(`${field} is longer than ${MAX_KEY_BYTES} bytes`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    throw new ValidationError(`${field} ${quote(value)} must not contain NUL or other control characters`);
  }
  if (value.includes('\\')) {
    throw new ValidationError(`${field} ${quote(value)} must not contain backslashes; use "/"`);
  }
  if (value.startsWith('/') || /^[A-Za-z]:/.test(value)) {
    throw new ValidationError(`${field} ${quote(value)} must be a relative path, not an absolute one`);
  }
  const segments = value.split('/');
  if (allowTrailingSlash && segments.length > 1 && segments.at(-1) === '') segments.pop();
  for (const segment of segments) {
    if (segment === '') throw new ValidationError(`${field} ${quote(value)} must not contain empty segments ("//")`);
    if (segment === '.' || segment === '..') {
      throw new ValidationError(`${field} ${quote(value)} must not contain "." or ".." segments`);
    }
  }
}

/** deletePrefix refuses the empty prefix: one wrong call must not empty a whole bucket or root. */
export function validateDeletePrefix(prefix: string): void {
  validatePrefix(prefix);
  if (prefix === '') throw new ValidationError('refusing to delete every object: prefix must not be empty');
}

/** A configured path as a key prefix: `a/b/` → `a/b/`, `/a/b` → `a/b/`, `` → ``. */
export function basePrefix(p: string): string {
  const trimmed = p.replace(/^\/+|\/+$/g, '');
  return trimmed ? `${trimmed}/` : '';
}

/** Sorts by the UTF-8 bytes of the key, the order S3 and GCS list in. */
export function sortByKey<T extends { key: string }>(items: T[]): T[] {
  const keyed = items.map((item) => ({ bytes: Buffer.from(item.key, 'utf8'), item }));
  keyed.sort((a, b) => Buffer.compare(a.bytes, b.bytes));
  return keyed.map((k) => k.item);
}

function quote(value: string): string {
  const s = JSON.stringify(value);
  return s.length > 120 ? `${s.slice(0, 117)}..."` : s;
}

/** A fresh, valid key for the marker object checkAccess writes and deletes. */
export function accessCheckKey(): string {
  return `.shardvault-access-check-${randomUUID()}`;
}

/** Longest a write may keep the event loop busy before letting timers and I/O run. */
const YIELD_EVERY_MS = 20;

/**
 * Pipes a write's body through a byte counter. If the body itself fails (the caller's data
 * source, not the backend), bodyError() answers that error so write can rethrow it unchanged
 * instead of blaming the backend. When the counter closes early (sink failed, aborted), the
 * body is destroyed so its producer stops.
 *
 * It also yields to the event loop at least every 20 ms. On a fast link some clients (the GCS
 * one in particular) move the whole body through process.nextTick and promise callbacks
 * without ever returning to the event loop, which starves timers for the entire upload:
 * abort signals fired from timers, job-lock renewals, health checks.
 */
export function meterBody(body: Readable): { stream: Transform; bytes: () => number; bodyError: () => unknown } {
  let bytes = 0;
  let failed: unknown;
  let lastYield = Date.now();
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      if (Date.now() - lastYield < YIELD_EVERY_MS) return callback(null, chunk);
      setImmediate(() => {
        lastYield = Date.now();
        callback(null, chunk);
      });
    },
  });
  body.once('error', (err) => {
    failed ??= err;
    stream.destroy(err);
  });
  stream.once('close', () => {
    if (!body.destroyed && !body.readableEnded) body.destroy();
  });
  body.pipe(stream);
  return { stream, bytes: () => bytes, bodyError: () => failed };
}

/** Reads a small stream fully; only for checkAccess markers, never for backup objects. */
export async function readSmall(stream: Readable, limit = 64 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    size += buf.length;
    if (size > limit) {
      stream.destroy();
      throw new IntegrityError(`access-check marker is larger than ${limit} bytes`);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

// ---------------------------------------------------------------------------------------------

export interface FilesystemBackendOptions {
  /** Absolute (or cwd-relative) directory everything lives under; created on first write. */
  root: string;
  logger?: Logger;
}

/** Errors that say the root (or a directory on a key's way) cannot be written; never retried. */
const UNWRITABLE = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EEXIST', 'ENOSPC', 'EDQUOT', 'ENAMETOOLONG', 'EISDIR']);

/**
 * Backups in a local (or mounted) directory: `<root>/<key>`.
 *
 * write streams to `<final>.<random>.tmp` in the target directory, fsyncs the file, renames
 * it over the final name and fsyncs the directory, so a reader sees the old object or the
 * whole new one; a failed or aborted write deletes its temporary file. list skips `*.tmp`
 * files. A key may not be both an object and a "directory" of other keys here (S3 and GCS
 * allow `a` next to `a/b`; a filesystem cannot).
 */
export class FilesystemBackend implements Backend {
  readonly name = 'filesystem' as const;
  readonly root: string;
  private readonly logger: Logger | undefined;

  constructor(options: FilesystemBackendOptions) {
    this.root = path.resolve(options.root);
    this.logger = options.logger;
  }

  /** The absolute path of a key, or of a prefix (`b1/`), or the root itself for ``. */
  locate(key: string): string {
    validatePrefix(key, 'key');
    return path.join(this.root, ...key.split('/').filter(Boolean));
  }

  async write(key: string, body: Readable, options: CallOptions = {}): Promise<{ bytes: number }> {
    validateKey(key);
    const { signal } = options;
    const final = this.pathOf(key);
    const tmp = `${final}.${randomBytes(6).toString('hex')}${TMP_SUFFIX}`;
    const meter = meterBody(body);
    try {
      if (signal?.aborted) throw new CancelledError(`filesystem write ${key} was cancelled`);
      await mkdir(path.dirname(final), { recursive: true });
      // `wx`: never reuse a name; `flush`: fsync before the stream closes (pipeline waits for it).
      await pipeline(meter.stream, createWriteStream(tmp, { flags: 'wx', flush: true }), signal ? { signal } : {});
      if (signal?.aborted) throw new CancelledError(`filesystem write ${key} was cancelled`);
      await rename(tmp, final);
      await syncDirectory(path.dirname(final));
      return { bytes: meter.bytes() };
    } catch (err) {
      meter.stream.destroy();
      await rm(tmp, { force: true }).catch(() => undefined);
      const bodyError = meter.bodyError();
      if (bodyError !== undefined && !signal?.aborted) throw bodyError;
      throw this.mapError(err, `write ${key}`, signal);
    }
  }

  async read(key: string, options: CallOptions = {}): Promise<Readable> {
    validateKey(key);
    const file = this.pathOf(key);
    let handle: FileHandle | undefined;
    try {
      if (options.signal?.aborted) throw new CancelledError(`filesystem read ${key} was cancelled`);
      handle = await open(file, 'r');
      if (!(await handle.stat()).isFile()) throw Object.assign(new Error('not a file'), { code: 'EISDIR' });
    } catch (err) {
      await handle?.close().catch(() => undefined);
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') {
        throw new NotFoundError(`object not found: ${file}`);
      }
      throw this.mapError(err, `read ${key}`, options.signal);
    }
    const stream = handle.createReadStream();
    return options.signal ? addAbortSignal(options.signal, stream) : stream;
  }

  async list(prefix: string, options: CallOptions = {}): Promise<ObjectInfo[]> {
    validatePrefix(prefix);
    try {
      const { files } = await this.walk(prefix, options.signal);
      return sortByKey(files.filter((f) => !f.tmp).map(({ key, size }) => ({ key, size })));
    } catch (err) {
      throw this.mapError(err, `list ${prefix}`, options.signal);
    }
  }

  async deletePrefix(prefix: string, options: CallOptions = {}): Promise<number> {
    validateDeletePrefix(prefix);
    const { signal } = options;
    try {
      const { files, dirs } = await this.walk(prefix, signal);
      let deleted = 0;
      // Leftover temporaries under the prefix go too (a crashed write's), but are not counted.
      for (const file of files) {
        if (signal?.aborted) throw new CancelledError(`filesystem delete ${prefix} was cancelled`);
        try {
          await rm(this.pathOf(file.key, true));
          if (!file.tmp) deleted++;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
      await this.removeEmptyDirectories(files.map((f) => path.dirname(this.pathOf(f.key, true))), dirs);
      this.logger?.debug({ prefix, deleted }, 'filesystem deletePrefix');
      return deleted;
    } catch (err) {
      throw this.mapError(err, `delete ${prefix}`, signal);
    }
  }

  async exists(key: string, options: CallOptions = {}): Promise<boolean> {
    validateKey(key);
    if (options.signal?.aborted) throw new CancelledError(`filesystem exists ${key} was cancelled`);
    try {
      return (await stat(this.pathOf(key))).isFile();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      throw this.mapError(err, `exists ${key}`, options.signal);
    }
  }

  async checkAccess(options: CallOptions = {}): Promise<void> {
    const key = accessCheckKey();
    const payload = Buffer.from(`shardvault access check ${new Date().toISOString()}\n`);
    try {
      await this.write(key, Readable.from([payload]), options);
      const back = await readSmall(await this.read(key, options));
      if (!back.equals(payload)) throw new IntegrityError(`read back ${back.length} bytes that differ from the marker written`);
      await rm(this.pathOf(key));
    } catch (err) {
      await rm(this.pathOf(key), { force: true }).catch(() => undefined);
      if (err instanceof CancelledError) throw err;
      throw new PermanentBackendError(
        `filesystem root "${this.root}" is not writable: ${describeError(err instanceof ShardvaultError && err.cause ? err.cause : err)}`,
        { cause: err },
      );
    }
  }

  /** `<root>/<key>` with the key's segments as path segments; never outside root. */
  private pathOf(key: string, trusted = false): string {
    if (!trusted) validateKey(key);
    const full = path.join(this.root, ...key.split('/'));
    const rel = path.relative(this.root, full);
    if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
      throw new ValidationError(`key ${quote(key)} resolves outside the backup root`);
    }
    return full;
  }

  /**
   * Every regular file whose key starts with prefix (temporaries flagged), and every directory
   * inside the prefix. Starts at the deepest directory the prefix names; does not follow
   * symlinks.
   */
  private async walk(
    prefix: string,
    signal: AbortSignal | undefined,
  ): Promise<{ files: Array<{ key: string; size: number; tmp: boolean }>; dirs: string[] }> {
    const files: Array<{ key: string; size: number; tmp: boolean }> = [];
    const dirs: string[] = [];
    const slash = prefix.lastIndexOf('/');
    const startRel = slash > 0 ? prefix.slice(0, slash) : '';
    const visit = async (dirRel: string): Promise<void> => {
      if (signal?.aborted) throw new CancelledError(`filesystem listing ${prefix} was cancelled`);
      const dir = dirRel ? path.join(this.root, ...dirRel.split('/')) : this.root;
      let entries: Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return;
        throw err;
      }
      const sized: Array<Promise<void>> = [];
      for (const entry of entries) {
        const key = dirRel ? `${dirRel}/${entry.name}` : entry.name;
        if (entry.isDirectory()) {
          const asDir = `${key}/`;
          if (asDir.startsWith(prefix)) dirs.push(key);
          if (asDir.startsWith(prefix) || prefix.startsWith(asDir)) await visit(key);
        } else if (entry.isFile() && key.startsWith(prefix)) {
          const tmp = entry.name.endsWith(TMP_SUFFIX);
          sized.push(
            stat(path.join(dir, entry.name)).then(
              (s) => void files.push({ key, size: s.size, tmp }),
              (err: NodeJS.ErrnoException) => {
                if (err.code !== 'ENOENT') throw err; // deleted while listing
              },
            ),
          );
        }
      }
      await Promise.all(sized);
    };
    await visit(startRel);
    return { files, dirs };
  }

  /** rmdir, deepest first, each given directory and its now-empty parents, stopping at root. */
  private async removeEmptyDirectories(fileDirs: string[], dirKeys: string[]): Promise<void> {
    const candidates = new Set<string>();
    for (const start of [...fileDirs, ...dirKeys.map((k) => this.pathOf(k, true))]) {
      for (let dir = start; dir !== this.root && dir.startsWith(this.root + path.sep); dir = path.dirname(dir)) {
        candidates.add(dir);
      }
    }
    const deepestFirst = [...candidates].sort((a, b) => b.split(path.sep).length - a.split(path.sep).length);
    for (const dir of deepestFirst) {
      try {
        await rmdir(dir);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOENT' && code !== 'EBUSY') throw err;
      }
    }
  }

  private mapError(err: unknown, what: string, signal: AbortSignal | undefined): ShardvaultError {
    if (err instanceof ShardvaultError) return err;
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (code && UNWRITABLE.has(code)) {
      return new PermanentBackendError(`filesystem ${what} failed under root "${this.root}": ${describeError(err)}`, {
        cause: err,
      });
    }
    return fallbackBackendError(err, `filesystem ${what}`, signal);
  }
}

/** fsync a directory so a rename in it survives a crash; best effort (not every FS allows it). */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // EISDIR/EINVAL/EPERM on some filesystems: the rename itself already happened.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
