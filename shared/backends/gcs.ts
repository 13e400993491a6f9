import type { Bucket, File, FileMetadata, Storage, StorageOptions } from '@google-cloud/storage';
import { randomUUID } from 'node:crypto';
import { Agent } from 'node:http';
import { addAbortSignal, PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { CancelledError, ShardvaultError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Backend, CallOptions, ObjectInfo, ReadOptions } from './backend.ts';
import { peekBytes } from '../dump/byte-streams.ts';
import { failedWriteError, meterBody } from './bodies.ts';
import { bucketError, collectDirectoryPages, collectPages, deleteListed, markerRoundTrip, type BucketFault } from './common-steps.ts';
import { accessCheckKey, basePrefix, validateDirectoryPrefix, validateKey, validatePrefix } from './keys.ts';
import { describeError, httpStatus, withRetry, type RetryOptions } from './retry.ts';
import { gcsSdk } from './sdk.ts';
import { isSilenceError, silenceAgent, silenced, silenceFault, watchSilence } from './silence.ts';

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
  /**
   * A write whose body ends within this many bytes is held in memory and retried on a transient
   * failure (withRetry); a longer body is streamed once. Default 8 MiB (as S3's part size).
   */
  replayBytes?: number;
  /** Backoff of write (held bodies), list, delete, exists and read start (withRetry). */
  retry?: Pick<RetryOptions, 'attempts' | 'baseMs' | 'maxMs'>;
  /**
   * Longest a request may go without a byte moving (BACKUP_GCS_REQUEST_TIMEOUT_SECONDS); it is
   * then abandoned with a transient error and retried. Default 120 000.
   */
  requestTimeoutMs?: number;
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
 * (metadata, then the media request until its answer starts) use withRetry. A write whose body
 * ends within replayBytes is held and retried the same way, each try a fresh session; a longer
 * body is streamed once and cannot be replayed, so its failure rejects and the caller (the
 * job) retries it. With its retries off the upload fails a 5xx with a bare
 * `Retry limit exceeded - status: N` error (googleapis/google-cloud-node#7346);
 * withUploadStatus gives it back its status, so it is classified like any other answer.
 *
 * A request is abandoned once nothing has moved on it for requestTimeoutMs
 * (BACKUP_GCS_REQUEST_TIMEOUT_SECONDS), as S3's client does (socketTimeout); a transfer that keeps
 * moving is never cut. The client sends its requests through two HTTP stacks, so it takes three
 * parts (silence.ts), each where the client lets a request be failed and its socket freed:
 * - the resumable upload (session start and the streamed PUT) goes through gaxios, which takes
 *   an agent (given to it as a request interceptor): silenceAgent's sockets are destroyed after
 *   that much idle time, which fails the request and the upload through the client's own error
 *   path. Behind HTTP(S)_PROXY the upload's requests go through a silenced agent for the proxy
 *   (the client runs the interceptor before gaxios would choose its own proxy agent, which an
 *   agent given to it replaces: proxyFor decides as gaxios does). A watchdog on the body stream
 *   could not do that: destroying the write stream does not reach the request in flight (the
 *   client destroys its upload without an error, so nothing aborts it), and the socket stayed
 *   parked;
 * - the JSON requests (metadata, list, exists, delete) and the media request go through
 *   teeny-request (node-fetch), which takes no agent but a `timeout` (the Storage option):
 *   the time until the answer starts and, for a JSON answer, to read it; on expiry node-fetch
 *   aborts the request. Those answers are small, so there the two are the same thing;
 * - node-fetch does not watch a body that is streamed, so the media body has a watchdog
 *   (watchSilence) that destroys it after that long without a byte while its reader keeps up;
 *   the client then destroys its shared agent's sockets, as it does on any failed download.
 * An abandoned request fails as a transient error naming the object and the setting, retried
 * like a reset (withRetry, or the job).
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
  private readonly replayBytes: number;
  private readonly requestTimeoutMs: number;

  constructor(options: GcsBackendOptions) {
    this.bucketName = options.bucket;
    this.base = basePrefix(options.path);
    this.logger = options.logger;
    this.validation = options.validation ?? 'crc32c';
    this.listPageSize = Math.min(1000, Math.max(1, options.listPageSize ?? 1000));
    this.deleteConcurrency = Math.max(1, options.deleteConcurrency ?? 16);
    this.retry = { ...options.retry, logger: options.logger };
    this.replayBytes = Math.max(0, options.replayBytes ?? 8 * 1024 * 1024);
    this.requestTimeoutMs = options.requestTimeoutMs ?? 120_000;
    const apiEndpoint = options.emulatorHost ? gcsEmulatorUrl(options.emulatorHost) : undefined;
    const projectId = options.projectId ?? (apiEndpoint ? 'shardvault' : undefined);
    this.endpointLabel = apiEndpoint ? `emulator ${apiEndpoint}` : 'Google Cloud Storage';
    // The upload's requests (gaxios) get the agent; teeny-request ignores it and takes `timeout`.
    const endpoint = apiEndpoint ?? 'https://storage.googleapis.com';
    const agent = silenceAgent(new URL(endpoint).protocol, this.requestTimeoutMs);
    this.storage = new (gcsSdk().Storage)({
      ...(projectId ? { projectId } : {}),
      ...(apiEndpoint ? { apiEndpoint } : {}),
      retryOptions: { autoRetry: false },
      timeout: this.requestTimeoutMs,
      interceptors_: [withAgent(agent, endpoint, this.requestTimeoutMs)],
    });
    this.bucket = this.storage.bucket(options.bucket);
  }

  locate(key: string): string {
    return `gs://${this.bucketName}/${this.base}${key}`;
  }

  async write(key: string, body: Readable, options: CallOptions = {}): Promise<{ bytes: number }> {
    validateKey(key);
    const { signal } = options;
    if (signal?.aborted) {
      body.destroy();
      throw new CancelledError(`gcs write ${key} was cancelled`);
    }
    const meter = meterBody(body);
    const onAbort = () => meter.stream.destroy(signal?.reason instanceof Error ? signal.reason : new CancelledError(`gcs write ${key} was cancelled`));
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      // A body that ends within replayBytes is held, so a transient failure of its session
      // start or upload is retried here (as the S3 SDK retries a part it holds); a longer one
      // is streamed once, and a failure rejects for the caller (the job) to retry.
      const { head, stream } = await peekBytes(meter.stream, this.replayBytes + 1);
      if (head.length <= this.replayBytes) {
        await withRetry(() => this.upload(key, Readable.from(head.length ? [head] : [], { objectMode: false }), signal), {
          ...this.retry,
          signal,
          label: `gcs write ${key}`,
        });
      } else {
        await this.upload(key, Readable.from(stream, { objectMode: false }), signal);
      }
    } catch (err) {
      throw failedWriteError(meter, err, signal, (e) => this.mapError(e, `write ${key}`, { signal }));
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    const bytes = meter.bytes();
    this.logger?.debug({ key: this.locate(key), bytes }, 'gcs write');
    return { bytes };
  }

  /** One resumable upload of `source` to key, tagged with a fresh write id; removes its object if it fails or is cancelled. */
  private async upload(key: string, source: Readable, signal: AbortSignal | undefined): Promise<void> {
    const writeId = randomUUID();
    const file = this.bucket.file(this.base + key);
    const upload = file.createWriteStream({
      resumable: true,
      validation: this.validation,
      contentType: 'application/octet-stream',
      metadata: { metadata: { [WRITE_ID]: writeId } },
    });
    try {
      await pipeline(source, upload, signal ? { signal } : {});
    } catch (err) {
      source.destroy();
      await this.removeIfWritten(file, writeId);
      throw this.mapError(err, `write ${key}`, { signal });
    }
    if (signal?.aborted) {
      await this.removeIfWritten(file, writeId);
      throw new CancelledError(`gcs write ${key} was cancelled`);
    }
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
    const file = this.bucket.file(this.base + key, generation === undefined ? {} : { generation });
    // A part of an object has no checksum of its own to validate.
    const readOptions = range ? { start: range.start, end: range.start + range.length - 1, validation: false as const } : { validation: this.validation };
    try {
      // The media request is retried until its answer starts (as S3's GetObject is): a reset
      // or a 5xx before the first byte failed the read at once.
      const out = await withRetry(() => this.openMedia(file, readOptions, key, signal), { ...this.retry, signal, label: `gcs read ${key}` });
      return signal ? addAbortSignal(signal, out) : out;
    } catch (err) {
      throw this.mapError(err, `read ${key}`, { key, signal });
    }
  }

  /** Starts the media download of `file`; resolves once a 2xx answer arrived, rejects with the SDK's error otherwise. */
  private openMedia(file: File, readOptions: Parameters<File['createReadStream']>[0], key: string, signal: AbortSignal | undefined): Promise<Readable> {
    return new Promise<Readable>((resolve, reject) => {
      const source = file.createReadStream(readOptions);
      if (signal) addAbortSignal(signal, source);
      const out = new PassThrough();
      const failed = (err: unknown) => {
        out.destroy();
        reject(err);
      };
      source.once('error', failed);
      source.once('response', (res: { statusCode?: number; status?: number }) => {
        const status = res.statusCode ?? res.status ?? 200;
        if (status >= 300) return; // the SDK's error for this answer follows
        source.off('error', failed);
        source.on('error', (err) => out.destroy(this.mapError(err, `read ${key}`, { key, signal })));
        watchSilence(source, out, this.requestTimeoutMs);
        resolve(out);
      });
      out.on('close', () => {
        if (!source.destroyed) source.destroy();
      });
      source.pipe(out);
    });
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
    err = withUploadStatus(err);
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
      if (isSilenceError(e)) return silenceFault(this.requestTimeoutMs, 'BACKUP_GCS_REQUEST_TIMEOUT_SECONDS');
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

/**
 * The resumable upload (its retries off) fails a request it would have retried with a bare
 * `Error('Retry limit exceeded - status: 500 …')` (or `Retry total time limit exceeded`): the
 * HTTP status is only in the message, so the error looked permanent and a write hit by one 500
 * or 503 failed its job instead of being retried. Returns an error carrying that status (the
 * original as its cause), so the usual classification applies; anything else unchanged.
 */
export function withUploadStatus(err: unknown): unknown {
  if (!(err instanceof Error) || httpStatus(err) !== undefined) return err;
  const match = /^Retry (?:total time )?limit exceeded - status: (\d{3})\b/.exec(err.message);
  if (!match) return err;
  return Object.assign(new Error(err.message, { cause: err }), { name: 'GcsUploadError', status: Number(match[1]) });
}

type Interceptor = NonNullable<StorageOptions['interceptors_']>[number];

/**
 * A request interceptor that gives every request to `endpoint` a silenced agent (silence.ts):
 * an agent chosen for it already is silenced as it is; behind a proxy (HTTP(S)_PROXY, unless
 * NO_PROXY names the endpoint: proxyFor) a request gets a silenced agent for that proxy, as the
 * client would have given it one of its own had no agent been set; any other gets `own`. (The
 * upload runs its interceptors on options without the request's address, so the backend's
 * endpoint decides.) Its type says it turns one kind of options into another, but the client
 * hands each interceptor the previous one's result and passes the last on: it is the same
 * object throughout.
 */
function withAgent(own: Agent, endpoint: string, ms: number): Interceptor {
  const proxies = new Map<string, Agent>();
  const through = (proxy: string): Agent => {
    let agent = proxies.get(proxy);
    if (!agent) proxies.set(proxy, (agent = silenced(new HttpsProxyAgent(proxy), ms)));
    return agent;
  };
  return {
    request: (reqOpts) => {
      const chosen = (reqOpts as { agent?: unknown }).agent;
      let agent: Agent;
      if (chosen instanceof Agent) agent = silenced(chosen, ms);
      else {
        const proxy = proxyFor(endpoint);
        agent = proxy ? through(proxy) : own;
      }
      return Object.assign(reqOpts, { agent }) as unknown as ReturnType<Interceptor['request']>;
    },
  };
}

/**
 * The proxy a request to `url` goes through: HTTPS_PROXY, https_proxy, HTTP_PROXY or http_proxy
 * (the first set, for any scheme), unless NO_PROXY (else no_proxy) names the URL's origin, host
 * or whole address, or a domain (`.example.com`, `*.example.com`) its host ends in — as gaxios 6
 * decides it (its `urlMayUseProxy`), whose choice an agent given to it replaces.
 */
export function proxyFor(url: string): string | undefined {
  const env = process.env;
  const proxy = env.HTTPS_PROXY || env.https_proxy || env.HTTP_PROXY || env.http_proxy;
  if (!proxy) return undefined;
  const candidate = new URL(url);
  for (const rule of (env.NO_PROXY ?? env.no_proxy ?? '').split(',').map((r) => r.trim())) {
    if (rule.startsWith('*.') || rule.startsWith('.')) {
      if (candidate.hostname.endsWith(rule.replace(/^\*\./, '.'))) return undefined;
    } else if (rule === candidate.origin || rule === candidate.hostname || rule === candidate.href) return undefined;
  }
  return proxy;
}

/** STORAGE_EMULATOR_HOST as a URL; emulators speak plain HTTP, so `host:port` gets `http://`. */
function gcsEmulatorUrl(host: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(host) ? host : `http://${host}`;
  return withScheme.replace(/\/+$/, '');
}
