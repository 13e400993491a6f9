import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { addAbortSignal, Readable } from 'node:stream';
import { CancelledError, ConfigError, ShardvaultError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Backend, CallOptions, ObjectInfo, ReadOptions } from './backend.ts';
import { failedWriteError, meterBody, relayBody } from './bodies.ts';
import { bucketError, collectDirectoryPages, collectPages, deleteListed, markerRoundTrip, type BucketFault } from './common-steps.ts';
import { accessCheckKey, basePrefix, validateDirectoryPrefix, validateKey, validatePrefix } from './keys.ts';
import { describeError, httpStatus, withRetry, type RetryOptions } from './retry.ts';
import { s3Sdk, s3Upload } from './sdk.ts';
import { isSilenceError, SilenceError, silenceFault, watchSilence } from './silence.ts';

export interface S3BackendOptions {
  bucket: string;
  /** Key prefix inside the bucket (`BACKUP_S3_PATH` or a request's `config.Path`); may be empty. */
  path: string;
  /** `host:port` or a URL; unset means AWS itself. */
  endpoint?: string;
  /** Scheme for an endpoint given without one. */
  useSSL: boolean;
  region: string;
  /** Both or neither; neither means the SDK's default chain (env, profile, instance role). */
  accessKeyId?: string;
  secretAccessKey?: string;
  logger?: Logger;
  /** Multipart part size in bytes; at least 5 MiB. Default 8 MiB. Memory per write ≈ partSize × (queueSize + 1). */
  partSize?: number;
  /** Parts uploaded at once per write. Default 2. */
  queueSize?: number;
  /** SDK attempts per multipart part / PutObject (the SDK holds the part's bytes). Default 4. */
  uploadMaxAttempts?: number;
  /** ListObjectsV2 page size (max 1000). Default 1000; tests use small pages to exercise pagination. */
  listPageSize?: number;
  /** Backoff of list/delete/exists/read start (withRetry). */
  retry?: Pick<RetryOptions, 'attempts' | 'baseMs' | 'maxMs'>;
  /**
   * Longest a request may go without a byte moving (BACKUP_S3_REQUEST_TIMEOUT_SECONDS); it is
   * then abandoned with a TimeoutError and retried. Default 120 000.
   */
  requestTimeoutMs?: number;
}

const MIB = 1024 * 1024;
const DELETE_BATCH = 1000;

/**
 * An S3 bucket (AWS or a compatible server: MinIO, s3rver, Ceph…): `<bucket>/<path>/<key>`.
 *
 * write streams through lib-storage's Upload: multipart with partSize parts, queueSize at a
 * time, so memory stays at a few parts whatever the object size; the object appears only when
 * CompleteMultipartUpload (or, under one part, PutObject) succeeds. On abort or a failing body
 * the upload is aborted (AbortMultipartUpload) and the call rejects only after that, so nothing
 * becomes visible. If the abort lands after the object was completed, the object is deleted.
 *
 * Retries: parts are retried by the SDK (uploadMaxAttempts; it holds each part's buffer). The
 * body stream itself cannot be replayed, so a write whose part fails for good rejects and the
 * caller (the job) retries the whole write. list, deletePrefix, exists and the start of read
 * use withRetry (full-jitter backoff) on a client that does not retry by itself.
 */
const REFUSED_CODES = ['AccessDenied', 'AllAccessDisabled', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken'];
const CHECKSUM_CODES = ['BadDigest', 'InvalidDigest', 'XAmzContentChecksumMismatch'];
/** Longest the SDK waits for a connection to be established. */
const CONNECTION_TIMEOUT_MS = 10_000;

export class S3Backend implements Backend {
  readonly name = 's3' as const;
  readonly bucket: string;
  /** `<path>/` or empty. */
  readonly base: string;
  private readonly client: S3Client;
  private readonly uploadClient: S3Client;
  /**
   * GetObject's client: no socket timeout, which would count a reader's own pauses (its buffers
   * full) as the server's silence; the time until the answer starts is timed by getObject, the
   * body's silence by watchSilence while its reader keeps up.
   */
  private readonly readClient: S3Client;
  private readonly endpointLabel: string;
  private readonly region: string;
  private readonly logger: Logger | undefined;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly listPageSize: number;
  private readonly retry: RetryOptions;
  private readonly requestTimeoutMs: number;

  constructor(options: S3BackendOptions) {
    this.bucket = options.bucket;
    this.base = basePrefix(options.path);
    this.region = options.region;
    this.logger = options.logger;
    this.partSize = Math.max(5 * MIB, options.partSize ?? 8 * MIB);
    this.queueSize = Math.max(1, options.queueSize ?? 2);
    this.listPageSize = Math.min(1000, Math.max(1, options.listPageSize ?? 1000));
    this.retry = { ...options.retry, logger: options.logger };
    this.requestTimeoutMs = options.requestTimeoutMs ?? 120_000;
    const config = s3ClientConfig({ ...options, requestTimeoutMs: this.requestTimeoutMs });
    this.endpointLabel = config.endpoint ? redactUrl(String(config.endpoint)) : `AWS region ${options.region}`;
    // Single requests are retried by withRetry (logged, abortable), so the SDK does not retry them.
    this.client = new (s3Sdk().S3Client)({ ...config, maxAttempts: 1 });
    // Upload parts can only be retried by the SDK, which still holds the part's bytes.
    this.uploadClient = new (s3Sdk().S3Client)({
      ...config,
      maxAttempts: Math.max(1, options.uploadMaxAttempts ?? 4),
      requestHandler: this.client.config.requestHandler,
    });
    this.readClient = new (s3Sdk().S3Client)({ ...config, maxAttempts: 1, requestHandler: { connectionTimeout: CONNECTION_TIMEOUT_MS } });
  }

  locate(key: string): string {
    return `s3://${this.bucket}/${this.base}${key}`;
  }

  async write(key: string, body: Readable, options: CallOptions = {}): Promise<{ bytes: number }> {
    validateKey(key);
    const { signal } = options;
    const Key = this.base + key;
    if (signal?.aborted) {
      body.destroy();
      throw new CancelledError(`s3 write ${key} was cancelled`);
    }
    const meter = meterBody(body);
    // On abort the body feed is cut: Upload's reader fails, and Upload aborts the multipart
    // upload before done() rejects (Upload.abort() instead rejects at once and leaves in-flight
    // requests — CompleteMultipartUpload included — running, so an object could still appear).
    const onAbort = () => meter.stream.destroy(abortError());
    signal?.addEventListener('abort', onAbort, { once: true });
    const upload = new (s3Upload().Upload)({
      client: this.uploadClient,
      params: { Bucket: this.bucket, Key, Body: meter.stream, ContentType: 'application/octet-stream' },
      partSize: this.partSize,
      queueSize: this.queueSize,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (err) {
      throw failedWriteError(meter, err, signal, (e) => this.mapError(e, `write ${key}`, { signal }));
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    if (signal?.aborted) {
      await this.deleteQuietly(Key);
      throw new CancelledError(`s3 write ${key} was cancelled`);
    }
    const bytes = meter.bytes();
    this.logger?.debug({ key: this.locate(key), bytes }, 's3 write');
    return { bytes };
  }

  async read(key: string, options: ReadOptions = {}): Promise<Readable> {
    validateKey(key);
    const { signal, range } = options;
    try {
      const body = await withRetry(() => this.getObject(key, range, signal), { ...this.retry, signal, label: `s3 read ${key}` });
      const mapped = relayBody(body, (err) => this.mapError(err, `read ${key}`, { key, signal }));
      watchSilence(body, mapped, this.requestTimeoutMs);
      return signal ? addAbortSignal(signal, mapped) : mapped;
    } catch (err) {
      throw this.mapError(err, `read ${key}`, { key, signal });
    }
  }

  /**
   * GetObject's body, on the read client: abandoned with a SilenceError when its answer has not
   * started within the request timeout (the read client has no socket timeout: see readClient).
   */
  private async getObject(key: string, range: ReadOptions['range'], signal: AbortSignal | undefined): Promise<Readable> {
    const abort = new AbortController();
    const onAbort = () => abort.abort(signal!.reason);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    let silent = false;
    const timer = setTimeout(() => {
      silent = true;
      abort.abort();
    }, this.requestTimeoutMs);
    try {
      const out = await this.readClient.send(
        new (s3Sdk().GetObjectCommand)({ Bucket: this.bucket, Key: this.base + key, ...(range ? { Range: `bytes=${range.start}-${range.start + range.length - 1}` } : {}) }),
        { abortSignal: abort.signal },
      );
      if (!(out.Body instanceof Readable)) throw new Error('GetObject answered without a body stream');
      return out.Body;
    } catch (err) {
      if (silent) throw new SilenceError(this.requestTimeoutMs);
      throw err;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** One page of ListObjectsV2 under base + prefix (with `delimiter`, its common prefixes too). */
  private listPage(prefix: string, token: string | undefined, signal: AbortSignal | undefined, delimiter?: string) {
    return withRetry(
      () =>
        this.client.send(
          new (s3Sdk().ListObjectsV2Command)({
            Bucket: this.bucket,
            Prefix: this.base + prefix,
            ...(delimiter ? { Delimiter: delimiter } : {}),
            MaxKeys: this.listPageSize,
            ContinuationToken: token,
          }),
          { abortSignal: signal },
        ),
      { ...this.retry, signal, label: `s3 list ${prefix}` },
    );
  }

  async list(prefix: string, options: CallOptions = {}): Promise<ObjectInfo[]> {
    validatePrefix(prefix);
    const { signal } = options;
    try {
      return await collectPages(this.base, async (token) => {
        const page = await this.listPage(prefix, token, signal);
        return {
          objects: (page.Contents ?? []).map((o) => ({ name: o.Key, size: o.Size ?? 0 })),
          next: page.IsTruncated ? page.NextContinuationToken : undefined,
        };
      });
    } catch (err) {
      throw this.mapError(err, `list ${prefix}`, { prefix, signal });
    }
  }

  async listDirectories(prefix: string, options: CallOptions = {}): Promise<string[]> {
    validateDirectoryPrefix(prefix);
    const { signal } = options;
    try {
      return await collectDirectoryPages(this.base, prefix, async (token) => {
        const page = await this.listPage(prefix, token, signal, '/');
        return { prefixes: (page.CommonPrefixes ?? []).map((p) => p.Prefix), next: page.IsTruncated ? page.NextContinuationToken : undefined };
      });
    } catch (err) {
      throw this.mapError(err, `list ${prefix}`, { prefix, signal });
    }
  }

  async deletePrefix(prefix: string, options: CallOptions = {}): Promise<number> {
    const { signal } = options;
    const deleted = await deleteListed(this, prefix, options, {
      batch: DELETE_BATCH,
      concurrency: 1,
      remove: (keys) =>
        withRetry(
          async () => {
            const out = await this.client.send(
              new (s3Sdk().DeleteObjectsCommand)({ Bucket: this.bucket, Delete: { Objects: keys.map((k) => ({ Key: this.base + k })), Quiet: true } }),
              { abortSignal: signal },
            );
            const failed = out.Errors ?? [];
            if (failed.length > 0) {
              // Deleting again is harmless, so a transient per-key failure retries the batch.
              const first = failed[0];
              throw Object.assign(
                new Error(`${failed.length} of ${keys.length} deletes failed, first ${first?.Key}: ${first?.Message ?? ''}`),
                { name: first?.Code ?? 'DeleteObjectsError', Code: first?.Code },
              );
            }
          },
          { ...this.retry, signal, label: `s3 delete ${prefix}` },
        ),
      mapError: (err) => this.mapError(err, `delete ${prefix}`, { prefix, signal }),
    });
    this.logger?.debug({ prefix: this.locate(prefix), deleted }, 's3 deletePrefix');
    return deleted;
  }

  async exists(key: string, options: CallOptions = {}): Promise<boolean> {
    validateKey(key);
    const { signal } = options;
    try {
      await withRetry(
        () => this.client.send(new (s3Sdk().HeadObjectCommand)({ Bucket: this.bucket, Key: this.base + key }), { abortSignal: signal }),
        { ...this.retry, signal, label: `s3 exists ${key}` },
      );
      return true;
    } catch (err) {
      // HEAD has no body, so a missing bucket also answers a bare 404: exists is false then too.
      if (httpStatus(err) === 404 && !signal?.aborted) return false;
      throw this.mapError(err, `exists ${key}`, { key, signal });
    }
  }

  async checkAccess(options: CallOptions = {}): Promise<void> {
    const { signal } = options;
    const key = accessCheckKey();
    let attempted = false;
    try {
      await withRetry(
        () =>
          this.client.send(new (s3Sdk().ListObjectsV2Command)({ Bucket: this.bucket, Prefix: this.base, MaxKeys: 1 }), {
            abortSignal: signal,
          }),
        { ...this.retry, signal, label: 's3 access check' },
      );
      attempted = true;
      await markerRoundTrip(this, key, options);
    } catch (err) {
      throw this.mapError(err, 'access check', { signal });
    } finally {
      if (attempted) await this.deleteQuietly(this.base + key);
    }
  }

  /** Closes the HTTP connections; the backend is unusable afterwards. */
  close(): void {
    this.client.destroy();
    this.uploadClient.destroy();
  }

  private async deleteQuietly(Key: string): Promise<void> {
    try {
      await withRetry(() => this.client.send(new (s3Sdk().DeleteObjectCommand)({ Bucket: this.bucket, Key })), {
        ...this.retry,
        label: `s3 delete ${Key}`,
      });
    } catch (err) {
      this.logger?.warn({ key: `s3://${this.bucket}/${Key}`, error: describeError(err) }, 's3 cleanup delete failed');
    }
  }

  private mapError(err: unknown, what: string, ctx: { key?: string; prefix?: string; signal?: AbortSignal | undefined }): ShardvaultError {
    const description = {
      name: this.name,
      bucket: this.bucket,
      endpoint: this.endpointLabel,
      refusedHint: 'check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the bucket policy',
      locate: (key: string) => this.locate(key),
    };
    return bucketError(description, err, what, ctx, (e): BucketFault | undefined => {
      const { name, Code } = e as { name?: unknown; Code?: unknown };
      const code = typeof Code === 'string' ? Code : typeof name === 'string' ? name : '';
      const status = httpStatus(e);
      const detail = code || `HTTP ${status}`;
      if (code === 'NoSuchBucket' || (status === 404 && !ctx.key && code !== 'NoSuchKey')) return { fault: 'no-bucket' };
      if (code === 'NoSuchKey' || code === 'NotFound' || status === 404) return { fault: 'not-found' };
      if (REFUSED_CODES.includes(code) || status === 401 || status === 403) return { fault: 'refused', detail };
      if (code === 'PermanentRedirect' || code === 'AuthorizationHeaderMalformed' || status === 301) {
        return { fault: 'misplaced', detail: `is not in AWS_REGION "${this.region}" (${detail})` };
      }
      if (CHECKSUM_CODES.includes(code)) return { fault: 'checksum', detail: `the server rejected the data's checksum (${code})` };
      if (isSilenceError(e) || (code === 'TimeoutError' && /of inactivity/.test(e instanceof Error ? e.message : ''))) return silenceFault(this.requestTimeoutMs, 'BACKUP_S3_REQUEST_TIMEOUT_SECONDS');
      return undefined;
    });
  }
}

/**
 * S3Client settings from shardvault's config: path-style addressing for custom endpoints (MinIO
 * and friends rarely have wildcard DNS), checksums only where S3 requires them (many
 * S3-compatible servers reject the SDK's default CRC32 trailers on streamed uploads), static
 * credentials only when both halves are configured.
 */
function s3ClientConfig(
  options: Pick<S3BackendOptions, 'endpoint' | 'useSSL' | 'region' | 'accessKeyId' | 'secretAccessKey' | 'requestTimeoutMs'>,
): S3ClientConfig {
  if (Boolean(options.accessKeyId) !== Boolean(options.secretAccessKey)) {
    throw new ConfigError('invalid configuration: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together');
  }
  const endpoint = options.endpoint ? s3EndpointUrl(options.endpoint, options.useSSL) : undefined;
  return {
    region: options.region,
    ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...(options.accessKeyId && options.secretAccessKey
      ? { credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey } }
      : {}),
    // connectionTimeout: to establish the socket; socketTimeout: longest silence on it. (Not
    // requestTimeout: since @smithy/node-http-handler 4.x that is a total time until the
    // answer starts, which only logs a warning unless told to throw, and would cut a slow part.)
    requestHandler: { connectionTimeout: CONNECTION_TIMEOUT_MS, socketTimeout: options.requestTimeoutMs },
  };
}

/**
 * BACKUP_S3_ENDPOINT as a URL: `minio:9000` gets `https://` or `http://` from BACKUP_S3_USE_SSL;
 * a value that already has a scheme keeps it.
 */
export function s3EndpointUrl(endpoint: string, useSSL: boolean): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `${useSSL ? 'https' : 'http'}://${endpoint}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ConfigError(`invalid configuration: BACKUP_S3_ENDPOINT: ${JSON.stringify(endpoint)} is not host:port or a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`invalid configuration: BACKUP_S3_ENDPOINT: scheme must be http or https, not ${url.protocol}`);
  }
  return url.href.replace(/\/$/, '');
}

function abortError(): Error {
  return Object.assign(new Error('The operation was aborted'), { name: 'AbortError', code: 'ABORT_ERR' });
}

function redactUrl(u: string): string {
  try {
    const url = new URL(u);
    url.username = '';
    url.password = '';
    return url.href.replace(/\/$/, '');
  } catch {
    return '[endpoint]';
  }
}
