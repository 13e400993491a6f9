import type { Bucket, File, FileMetadata, Storage } from '@google-cloud/storage';
import { randomUUID } from 'node:crypto';
import { addAbortSignal, PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CancelledError, ShardvaultError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Backend, CallOptions, ObjectInfo, ReadOptions } from './backend.ts';
import { meterBody } from './bodies.ts';
import { bucketError, collectDirectoryPages, collectPages, deleteListed, markerRoundTrip, type BucketFault } from './common-steps.ts';
import { accessCheckKey, basePrefix, validateDirectoryPrefix, validateKey, validatePrefix } from './keys.ts';
import { describeError, httpStatus, withRetry, type RetryOptions } from './retry.ts';
import { gcsSdk } from './sdk.ts';

export interface GcsBackendOptions {
  bucket: string;
  /** Object-name prefix inside the bucket (`BACKUP_GCS_PATH` or a request's `config.Path`); may be empty. */
  path: string;
  /** `GOOGLE_CLOUD_PROJECT`; defaults to `shardvault` when an emulator is used. */
  projectId?: string;
  /** `STORAGE_EMULATOR_HOST` (`host:port` or a URL); set, it replaces Google's endpoint and auth. */
  emulatorHost?: string;
  logger?: Logger;
  /** Checksum the client computes while uploading/downloading and compares with the server's. Default crc32c. */
  validation?: 'crc32c' | false;
  /** Objects per listing page (max 1000). Default 1000; tests use small pages to exercise pagination. */
  listPageSize?: number;
  /** Deletes in flight at once in deletePrefix (GCS has no multi-object delete in this client). Default 16. */
  deleteConcurrency?: number;
  /** Backoff of list/delete/exists/read start (withRetry). */
  retry?: Pick<RetryOptions, 'attempts' | 'baseMs' | 'maxMs'>;
}

/** Custom metadata naming the write that produced an object, so cleanup never deletes another's. */
const WRITE_ID = 'shardvault-write-id';

/**
 * A Google Cloud Storage bucket (or the Firebase/Cloud Storage emulator): `<bucket>/<path>/<key>`.
 *
 * write uses a resumable upload session streamed in a single request (no chunkSize: the
 * client then buffers nothing but the chunk in flight, and the emulator only understands
 * single-request sessions); GCS makes the object visible when the session is finalised, so an
 * aborted or failed upload leaves nothing. Each write tags its object with a write id; if the
 * object was finalised anyway (abort after the last byte), exactly that generation is deleted.
 * The client compares its CRC32C with the server's (validation) and deletes a mismatching
 * object itself; that surfaces as IntegrityError.
 *
 * Retries: the GCS client's own retries are off (it would not retry a resumable upload without
 * an ifGenerationMatch precondition anyway); list, deletePrefix, exists and the start of read
 * use withRetry. A streamed write cannot be replayed, so a failed write rejects and the
 * caller (the job) retries it.
 */
export class GcsBackend implements Backend {
  readonly name = 'gcs' as const;
  readonly bucketName: string;
  /** `<path>/` or empty. */
  readonly base: string;
  private readonly storage: Storage;
  private readonly bucket: Bucket;
  private readonly endpointLabel: string;
  private readonly logger: Logger | undefined;
  private readonly validation: 'crc32c' | false;
  private readonly listPageSize: number;
  private readonly deleteConcurrency: number;
  private readonly retry: RetryOptions;

  constructor(options: GcsBackendOptions) {
    this.bucketName = options.bucket;
    this.base = basePrefix(options.path);
    this.logger = options.logger;
    this.validation = options.validation ?? 'crc32c';
    this.listPageSize = Math.min(1000, Math.max(1, options.listPageSize ?? 1000));
    this.deleteConcurrency = Math.max(1, options.deleteConcurrency ?? 16);
    this.retry = { ...options.retry, logger: options.logger };
    const apiEndpoint = options.emulatorHost ? gcsEmulatorUrl(options.emulatorHost) : undefined;
    const projectId = options.projectId ?? (apiEndpoint ? 'shardvault' : undefined);
    this.endpointLabel = apiEndpoint ? `emulator ${apiEndpoint}` : 'Google Cloud Storage';
    this.storage = new (gcsSdk().Storage)({
      ...(projectId ? { projectId } : {}),
      ...(apiEndpoint ? { apiEndpoint } : {}),
      retryOptions: { autoRetry: false },
    });
    this.bucket = this.storage.bucket(options.bucket);
  }

  locate(key: string): string {
    return `gs://${this.bucketName}/${this.base}${key}`;
  }

  async write(key: string, body: Readable, options: CallOptions = {}): Promise<{ bytes: number }> {
    validateKey(key);
    const { signal } = options;
    const name = this.base + key;
    if (signal?.aborted) {
      body.destroy();
      throw new CancelledError(`gcs write ${key} was cancelled`);
    }
    const writeId = randomUUID();
    const file = this.bucket.file(name);
    const meter = meterBody(body);
    const upload = file.createWriteStream({
      resumable: true,
      validation: this.validation,
      contentType: 'application/octet-stream',
      metadata: { metadata: { [WRITE_ID]: writeId } },
    });
    try {
      await pipeline(meter.stream, upload, signal ? { signal } : {});
    } catch (err) {
      meter.stream.destroy();
      await this.removeIfWritten(file, writeId);
      const bodyError = meter.bodyError();
      if (bodyError !== undefined && !signal?.aborted) throw bodyError;
      throw this.mapError(err, `write ${key}`, { signal });
    }
    if (signal?.aborted) {
      await this.removeIfWritten(file, writeId);
      throw new CancelledError(`gcs write ${key} was cancelled`);
    }
    const bytes = meter.bytes();
    this.logger?.debug({ key: this.locate(key), bytes }, 'gcs write');
    return { bytes };
  }

  async read(key: string, options: ReadOptions = {}): Promise<Readable> {
    validateKey(key);
    const { signal, range } = options;
    let metadata: FileMetadata;
    try {
      [metadata] = await withRetry(() => this.bucket.file(this.base + key).getMetadata(), {
        ...this.retry,
        signal,
        label: `gcs read ${key}`,
      });
    } catch (err) {
      throw this.mapError(err, `read ${key}`, { key, signal });
    }
    // Pin the generation seen above, so a concurrent overwrite cannot splice two objects.
    const generation = metadata.generation; // an int64 as a string: kept a string, never a lossy number
    const source = this.bucket
      .file(this.base + key, generation === undefined ? {} : { generation })
      // A part of an object has no checksum of its own to validate.
      .createReadStream(range ? { start: range.start, end: range.start + range.length - 1, validation: false } : { validation: this.validation });
    const out = new PassThrough();
    source.on('error', (err) => out.destroy(this.mapError(err, `read ${key}`, { key, signal })));
    out.on('close', () => {
      if (!source.destroyed) source.destroy();
    });
    source.pipe(out);
    return signal ? addAbortSignal(signal, out) : out;
  }

  /** One page of objects under base + prefix (with `delimiter`, the response lists its prefixes too). */
  private async listPage(prefix: string, pageToken: string | undefined, signal: AbortSignal | undefined, delimiter?: string) {
    const [files, next, response] = await withRetry(
      () =>
        this.bucket.getFiles({
          prefix: this.base + prefix,
          ...(delimiter ? { delimiter } : {}),
          autoPaginate: false,
          maxResults: this.listPageSize,
          ...(pageToken ? { pageToken } : {}),
        }),
      { ...this.retry, signal, label: `gcs list ${prefix}` },
    );
    // The GCS client does not watch the signal between pages.
    if (signal?.aborted) throw new CancelledError(`gcs list ${prefix} was cancelled`);
    return {
      files,
      prefixes: (response as { prefixes?: string[] } | undefined)?.prefixes ?? [],
      next: (next as { pageToken?: string } | null | undefined)?.pageToken || undefined,
    };
  }

  async list(prefix: string, options: CallOptions = {}): Promise<ObjectInfo[]> {
    validatePrefix(prefix);
    const { signal } = options;
    try {
      return await collectPages(this.base, async (token) => {
        const { files, next } = await this.listPage(prefix, token, signal);
        return { objects: files.map((f) => ({ name: f.name, size: Number(f.metadata.size ?? 0) })), next };
      });
    } catch (err) {
      throw this.mapError(err, `list ${prefix}`, { prefix, signal });
    }
  }

  async listDirectories(prefix: string, options: CallOptions = {}): Promise<string[]> {
    validateDirectoryPrefix(prefix);
    const { signal } = options;
    try {
      return await collectDirectoryPages(this.base, prefix, (token) => this.listPage(prefix, token, signal, '/'));
    } catch (err) {
      throw this.mapError(err, `list ${prefix}`, { prefix, signal });
    }
  }

  async deletePrefix(prefix: string, options: CallOptions = {}): Promise<number> {
    const { signal } = options;
    const deleted = await deleteListed(this, prefix, options, {
      batch: 1,
      concurrency: this.deleteConcurrency,
      remove: ([key]) =>
        withRetry(() => this.bucket.file(this.base + key).delete({ ignoreNotFound: true }), { ...this.retry, signal, label: `gcs delete ${key}` }).then(() => undefined),
      mapError: (err) => this.mapError(err, `delete ${prefix}`, { prefix, signal }),
    });
    this.logger?.debug({ prefix: this.locate(prefix), deleted }, 'gcs deletePrefix');
    return deleted;
  }

  async exists(key: string, options: CallOptions = {}): Promise<boolean> {
    validateKey(key);
    const { signal } = options;
    try {
      const [found] = await withRetry(() => this.bucket.file(this.base + key).exists(), {
        ...this.retry,
        signal,
        label: `gcs exists ${key}`,
      });
      return found;
    } catch (err) {
      throw this.mapError(err, `exists ${key}`, { key, signal });
    }
  }

  async checkAccess(options: CallOptions = {}): Promise<void> {
    const { signal } = options;
    const key = accessCheckKey();
    let attempted = false;
    try {
      await withRetry(() => this.bucket.getFiles({ prefix: this.base, autoPaginate: false, maxResults: 1 }), {
        ...this.retry,
        signal,
        label: 'gcs access check',
      });
      attempted = true;
      await markerRoundTrip(this, key, options);
    } catch (err) {
      throw this.mapError(err, 'access check', { signal });
    } finally {
      if (attempted) {
        await this.bucket
          .file(this.base + key)
          .delete({ ignoreNotFound: true })
          .catch((err: unknown) => this.logger?.warn({ error: describeError(err) }, 'gcs access-check marker not deleted'));
      }
    }
  }

  /**
   * After a failed or aborted write: if an object carrying this write's id became visible
   * (the session was finalised before the failure was noticed), delete exactly that generation.
   */
  private async removeIfWritten(file: File, writeId: string): Promise<void> {
    try {
      let metadata: FileMetadata | undefined = file.metadata;
      if (metadata?.metadata?.[WRITE_ID] !== writeId) {
        try {
          [metadata] = await withRetry(() => this.bucket.file(file.name).getMetadata(), { ...this.retry, label: `gcs check ${file.name}` });
        } catch (err) {
          if (httpStatus(err) === 404) return;
          throw err;
        }
      }
      if (metadata?.metadata?.[WRITE_ID] !== writeId || metadata.generation === undefined) return;
      await this.bucket.file(file.name).delete({ ignoreNotFound: true, ifGenerationMatch: metadata.generation });
      this.logger?.debug({ key: `gs://${this.bucketName}/${file.name}` }, 'gcs removed the object of a failed write');
    } catch (err) {
      if (httpStatus(err) === 412) return; // a newer write replaced it: not ours to delete
      this.logger?.warn({ key: `gs://${this.bucketName}/${file.name}`, error: describeError(err) }, 'gcs cleanup after failed write failed');
    }
  }

  private mapError(err: unknown, what: string, ctx: { key?: string; prefix?: string; signal?: AbortSignal | undefined }): ShardvaultError {
    const description = {
      name: this.name,
      bucket: this.bucketName,
      endpoint: this.endpointLabel,
      refusedHint: "check the service account's credentials (GOOGLE_APPLICATION_CREDENTIALS) and its roles on the bucket",
      locate: (key: string) => this.locate(key),
    };
    return bucketError(description, err, what, ctx, (e): BucketFault | undefined => {
      const status = httpStatus(e);
      const code = (e as { code?: unknown }).code;
      const message = e instanceof Error ? e.message : '';
      if (status === 404 && (!ctx.key || /specified bucket does not exist|no such bucket|bucket_not_found/i.test(message))) return { fault: 'no-bucket' };
      if (status === 404) return { fault: 'not-found' };
      if (status === 401 || status === 403) return { fault: 'refused', detail: `HTTP ${status}` };
      if (code === 'CONTENT_DOWNLOAD_MISMATCH' || code === 'FILE_NO_UPLOAD' || code === 'FILE_NO_UPLOAD_DELETE') {
        return { fault: 'checksum', detail: `CRC32C of the bytes sent and stored differ (${code})` };
      }
      return undefined;
    });
  }
}

/** STORAGE_EMULATOR_HOST as a URL; emulators speak plain HTTP, so `host:port` gets `http://`. */
function gcsEmulatorUrl(host: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(host) ? host : `http://${host}`;
  return withScheme.replace(/\/+$/, '');
}
