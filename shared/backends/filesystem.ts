import { randomBytes } from 'node:crypto';
import { createWriteStream, type Dirent } from 'node:fs';
import { mkdir, open, readdir, rename, rm, rmdir, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { addAbortSignal, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { syncDirectory } from '../durable.ts';
import { CancelledError, NotFoundError, PermanentBackendError, ShardvaultError, ValidationError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Backend, CallOptions, ObjectInfo, ReadOptions } from './backend.ts';
import { meterBody } from './bodies.ts';
import { markerRoundTrip } from './common-steps.ts';
import { accessCheckKey, quote, sortByKey, TMP_SUFFIX, validateDeletePrefix, validateDirectoryPrefix, validateKey, validatePrefix } from './keys.ts';
import { describeError, fallbackBackendError } from './retry.ts';

export interface FilesystemBackendOptions {
  /** Absolute (or cwd-relative) directory everything lives under; created on first write. */
  root: string;
  logger?: Logger;
}

/**
 * Temporaries of `final` left by a write whose process died (SIGKILL, power loss) before it
 * could delete them: `<final>.<12 hex>.tmp`. A key is written again by the job that retries
 * the dead one, so that write removes them; nothing else would (list skips them, and only
 * deletePrefix of a failed or cancelled backup reaches them).
 */
async function removeCrashedTemporaries(final: string): Promise<void> {
  const base = path.basename(final);
  let names: string[];
  try {
    names = await readdir(path.dirname(final));
  } catch {
    return;
  }
  const prefix = `${base}.`;
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith(TMP_SUFFIX) || !/^[0-9a-f]{12}$/.test(name.slice(prefix.length, -TMP_SUFFIX.length))) continue;
    const file = path.join(path.dirname(final), name);
    // A write still streaming into its temporary touches it all the time; a dead one's stays still.
    const st = await stat(file).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > CRASHED_AFTER_MS) await rm(file, { force: true }).catch(() => undefined);
  }
}

/** A temporary not written to for this long belongs to a dead write. */
const CRASHED_AFTER_MS = 5000;

/** Errors that say the root (or a directory on a key's way) cannot be written; never retried. */
const UNWRITABLE = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EEXIST', 'ENOSPC', 'EDQUOT', 'ENAMETOOLONG', 'EISDIR']);

/**
 * Backups in a local (or mounted) directory: `<root>/<key>`.
 *
 * write streams to `<final>.<random>.tmp` in the target directory, fsyncs the file, renames
 * it over the final name and fsyncs the directory, so a reader sees the old object or the
 * whole new one; a failed or aborted write deletes its temporary file, and the temporaries
 * of a write whose process died are deleted by the next write of that key. list skips `*.tmp`
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

  async localFile(key: string, options: CallOptions = {}): Promise<{ path: string; size: number }> {
    validateKey(key);
    const file = this.pathOf(key);
    try {
      if (options.signal?.aborted) throw new CancelledError(`filesystem read ${key} was cancelled`);
      const info = await stat(file);
      if (!info.isFile()) throw Object.assign(new Error('not a file'), { code: 'EISDIR' });
      return { path: file, size: info.size };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') throw new NotFoundError(`object not found: ${file}`);
      throw this.mapError(err, `read ${key}`, options.signal);
    }
  }

  async write(key: string, body: Readable, options: CallOptions = {}): Promise<{ bytes: number }> {
    validateKey(key);
    const { signal } = options;
    const final = this.pathOf(key);
    const tmp = `${final}.${randomBytes(6).toString('hex')}${TMP_SUFFIX}`;
    const meter = meterBody(body);
    try {
      if (signal?.aborted) throw new CancelledError(`filesystem write ${key} was cancelled`);
      const handle = await createInDirectory(tmp);
      await removeCrashedTemporaries(final);
      // `flush`: fsync before the stream closes (pipeline waits for it).
      await pipeline(meter.stream, createWriteStream(tmp, { fd: handle, flush: true }), signal ? { signal } : {});
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

  async read(key: string, options: ReadOptions = {}): Promise<Readable> {
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
    const { range } = options;
    const stream = handle.createReadStream(range ? { start: range.start, end: range.start + range.length - 1 } : {});
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

  async listDirectories(prefix: string, options: CallOptions = {}): Promise<string[]> {
    validateDirectoryPrefix(prefix);
    try {
      const dir = prefix ? path.join(this.root, ...prefix.slice(0, -1).split('/')) : this.root;
      const entries = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return [];
        throw err;
      });
      return entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
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

  async sweepAbandonedWrites(prefix: string, options: CallOptions = {}): Promise<number> {
    validatePrefix(prefix);
    const { files } = await this.walk(prefix, options.signal);
    let swept = 0;
    for (const file of files.filter((f) => f.tmp)) {
      const full = this.pathOf(file.key, true);
      const st = await stat(full).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > CRASHED_AFTER_MS) {
        await rm(full, { force: true });
        swept++;
      }
    }
    return swept;
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
    try {
      await markerRoundTrip(this, key, options);
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

/**
 * Create a new file (`wx`: never reuse a name) and the directories above it. A concurrent
 * deletePrefix removes directories it leaves empty, possibly between the mkdir and the open, or
 * inside the recursive mkdir between one directory and the next down: either fails with ENOENT
 * and both are tried again. Nothing of the body has been read yet, so nothing is lost.
 */
async function createInDirectory(file: string): Promise<FileHandle> {
  for (let attempt = 0; ; attempt++) {
    try {
      await mkdir(path.dirname(file), { recursive: true });
      return await open(file, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 5) throw err;
    }
  }
}
