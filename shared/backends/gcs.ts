import type { Bucket, File, FileMetadata, Storage, StorageOptions } from '@google-cloud/storage';
import { randomUUID } from 'node:crypto';
import http, { Agent, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { addAbortSignal, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { CancelledError, ShardvaultError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Backend, CallOptions, ObjectInfo, ReadOptions } from './backend.ts';
import { peekBytes } from '../dump/byte-streams.ts';
import { failedWriteError, meterBody, readSmall, relayBody } from './bodies.ts';
import { bucketError, collectDirectoryPages, collectPages, deleteListed, markerRoundTrip, type BucketFault } from './common-steps.ts';
import { accessCheckKey, basePrefix, validateDirectoryPrefix, validateKey, validatePrefix } from './keys.ts';
import { describeError, httpStatus, withRetry, type RetryOptions } from './retry.ts';
import { gcsSdk } from './sdk.ts';
import { isSilenceError, SilenceError, silenceAgent, silenced, silenceFault, watchSilence } from './silence.ts';

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
 * object itself; that surfaces as IntegrityError. A whole object read is checked against the
 * CRC32C of its metadata the same way (a byte range has none of its own).
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
 * moving is never cut. Requests go through three HTTP stacks, each watched where it lets a
 * request be failed and its socket freed (silence.ts):
 * - the resumable upload (session start and the streamed PUT) goes through gaxios, which takes
 *   an agent (given to it as a request interceptor): silenceAgent's sockets are destroyed after
 *   that much idle time, which fails the request and the upload through the client's own error
 *   path. Behind HTTP(S)_PROXY the upload's requests go through a silenced agent for the proxy
 *   (the client runs the interceptor before gaxios would choose its own proxy agent, which an
 *   agent given to it replaces: proxyFor decides as gaxios does). A watchdog on the body stream
 *   could not do that: destroying the write stream does not reach the request in flight (the
 *   client destroys its upload without an error, so nothing aborts it), and the socket stayed
 *   parked;
 * - the JSON requests (metadata, list, exists, delete) go through the client's teeny-request
 *   (node-fetch), which takes no agent but a `timeout` (the Storage option): the time until the
 *   answer starts and, for a JSON answer, to read it; on expiry node-fetch aborts the request.
 *   Those answers are small, so there the two are the same thing;
 * - the media request (read's bytes) is made here (openMedia) on an agent of its own, through
 *   the proxy proxyFor names: the client's download destroyed the shared agent of all its
 *   requests whenever one download failed or its reader stopped, stalling every other download
 *   in flight. Its body has a watchdog (watchSilence) that destroys it after that long without
 *   a byte while its reader keeps up (a reader's own pause is not the server's silence).
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
  /** Where requests go: Google's endpoint or the emulator's. */
  private readonly endpoint: string;
  /** The agent of the media downloads this backend makes itself (openMedia), for the proxy HTTP(S)_PROXY names now. */
  private readonly mediaAgent: () => Agent;

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
    this.endpoint = endpoint.replace(/\/+$/, '');
    const { protocol } = new URL(endpoint);
    const ms = this.requestTimeoutMs;
    const uploadAgent = agentFor(endpoint, silenceAgent(protocol, ms), (proxy) => silenced(new HttpsProxyAgent(proxy), ms));
    // Not silenced: a download's silence is the server's, watched by watchSilence, not its reader's pauses.
    this.mediaAgent = agentFor(endpoint, new (protocol === 'https:' ? https.Agent : http.Agent)({ keepAlive: true }), (proxy) => new HttpsProxyAgent(proxy));
    this.storage = new (gcsSdk().Storage)({
      ...(projectId ? { projectId } : {}),
      ...(apiEndpoint ? { apiEndpoint } : {}),
      retryOptions: { autoRetry: false },
      timeout: this.requestTimeoutMs,
      interceptors_: [withAgent(uploadAgent, ms)],
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
    try {
      // The media request is retried until its answer starts (as S3's GetObject is): a reset
      // or a 5xx before the first byte failed the read at once.
      const out = await withRetry(() => this.openMedia(key, metadata, range, signal), { ...this.retry, signal, label: `gcs read ${key}` });
      return signal ? addAbortSignal(signal, out) : out;
    } catch (err) {
      throw this.mapError(err, `read ${key}`, { key, signal });
    }
  }

  /**
   * The media download of the generation of `key` that `metadata` describes (pinned, so a
   * concurrent overwrite cannot splice two objects), made here rather than by the client: the
   * client ends any failed or stopped download by destroying the shared agent of every request
   * it sends (a node-fetch leak it works around), which left every other download of this
   * process in flight without its socket, stalled until its silence timeout. Here a download
   * owns its socket: stopping or failing one ends that one only. Resolves once a 2xx answer
   * started; a whole object's bytes are checked against its CRC32C (validation) as they end.
   */
  private async openMedia(key: string, metadata: FileMetadata, range: ReadOptions['range'], signal: AbortSignal | undefined): Promise<Readable> {
    const url = new URL(`${this.endpoint}/storage/v1/b/${encodeURIComponent(this.bucketName)}/o/${encodeURIComponent(this.base + key)}`);
    url.searchParams.set('alt', 'media');
    if (metadata.generation !== undefined) url.searchParams.set('generation', String(metadata.generation));
    const headers: Record<string, string> = { ...(await this.authHeaders()), 'Cache-Control': 'no-store' };
    if (range) headers.Range = `bytes=${range.start}-${range.start + range.length - 1}`;
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = (url.protocol === 'https:' ? https : http).request(url, { headers, agent: this.mediaAgent(), ...(signal ? { signal } : {}) });
      // Until the answer starts, silence is the time it takes (then watchSilence watches the body).
      const silent = setTimeout(() => req.destroy(new SilenceError(this.requestTimeoutMs)), this.requestTimeoutMs);
      req.once('response', (answer: IncomingMessage) => {
        clearTimeout(silent);
        resolve(answer);
      });
      req.once('error', (err) => {
        clearTimeout(silent);
        reject(err);
      });
      req.end();
    });
    const status = res.statusCode ?? 0;
    if (status >= 300) {
      const body = await readSmall(res).catch(() => Buffer.alloc(0));
      let message = body.toString('utf8');
      try {
        message = (JSON.parse(message) as { error?: { message?: string } }).error?.message ?? message;
      } catch {
        // Not JSON: the body as it is.
      }
      throw Object.assign(new Error(message || `HTTP ${status}`), { code: status });
    }
    // Checked as the bytes pass, before the relay passes their end on.
    const expected = !range && this.validation === 'crc32c' ? metadata.crc32c : undefined;
    const crc = expected === undefined ? undefined : new (gcsSdk().CRC32C)();
    if (crc) {
      res.on('data', (chunk: Buffer) => crc.update(chunk));
      res.once('end', () => {
        if (crc.toString() === expected) return;
        const mismatch = Object.assign(new Error(`the bytes read have CRC32C ${crc.toString()}, the object's metadata says ${expected}`), { code: 'CONTENT_DOWNLOAD_MISMATCH' });
        out.destroy(this.mapError(mismatch, `read ${key}`, { key, signal }));
      });
    }
    const out = relayBody(res, (err) => this.mapError(err, `read ${key}`, { key, signal }));
    watchSilence(res, out, this.requestTimeoutMs);
    return out;
  }

  /** Headers that authenticate a request this backend makes itself; none to an emulator (as the client does). */
  private async authHeaders(): Promise<Record<string, string>> {
    const storage = this.storage as unknown as { customEndpoint?: boolean; useAuthWithCustomEndpoint?: boolean };
    if (storage.customEndpoint && !storage.useAuthWithCustomEndpoint) return {};
    return (await this.storage.authClient.getRequestHeaders()) as Record<string, string>;
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
      if (code === 'CONTENT_DOWNLOAD_MISMATCH') return { fault: 'checksum', detail: message };
      if (code === 'FILE_NO_UPLOAD' || code === 'FILE_NO_UPLOAD_DELETE') {
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
 * The agent a request to `endpoint` takes as the environment is now: `own`, or behind a proxy
 * (HTTP(S)_PROXY, unless NO_PROXY names the endpoint: proxyFor) one agent per proxy, made by
 * `make` the first time — as the client would have given it one of its own had no agent been set.
 */
function agentFor(endpoint: string, own: Agent, make: (proxy: string) => Agent): () => Agent {
  const proxies = new Map<string, Agent>();
  return () => {
    const proxy = proxyFor(endpoint);
    if (!proxy) return own;
    let agent = proxies.get(proxy);
    if (!agent) proxies.set(proxy, (agent = make(proxy)));
    return agent;
  };
}

/**
 * A request interceptor that gives every request a silenced agent (silence.ts): an agent chosen
 * for it already is silenced as it is; any other gets `pick()`'s (agentFor, its agents silenced).
 * (The upload runs its interceptors on options without the request's address, so the backend's
 * endpoint decides.) Its type says it turns one kind of options into another, but the client
 * hands each interceptor the previous one's result and passes the last on: it is the same
 * object throughout.
 */
function withAgent(pick: () => Agent, ms: number): Interceptor {
  return {
    request: (reqOpts) => {
      const chosen = (reqOpts as { agent?: unknown }).agent;
      const agent = chosen instanceof Agent ? silenced(chosen, ms) : pick();
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
