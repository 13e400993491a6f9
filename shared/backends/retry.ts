import { setTimeout as sleep } from 'node:timers/promises';
import { CancelledError, PermanentBackendError, ShardvaultError, UnavailableError } from '../errors.ts';
import type { Logger } from '../logger.ts';

export interface RetryOptions {
  /** Stops waiting and retrying; the call then rejects with CancelledError. */
  signal?: AbortSignal;
  /** Total tries, the first included. Default 4. */
  attempts?: number;
  /** Backoff ceiling of the first retry, in ms; doubles each retry (full jitter). Default 200. */
  baseMs?: number;
  /** Largest backoff ceiling, in ms. Default 5000. */
  maxMs?: number;
  /** Retries are logged at warn with the error's code, never its payload. */
  logger?: Logger;
  /** What is being retried, for the log line (e.g. `s3 list backups/`). */
  label?: string;
  /** Which errors are worth another try. Default isTransientError. */
  isTransient?: (err: unknown) => boolean;
}

const RETRY_DEFAULTS = { attempts: 4, baseMs: 200, maxMs: 5000 } as const;

/**
 * Runs fn until it succeeds, it fails with a permanent error, or the attempts are used up;
 * between tries it sleeps a random time in [0, min(maxMs, baseMs * 2^retry)) ("full jitter").
 * The last error is rethrown unchanged so the caller can map it; an abort (before, during
 * or between tries) rejects with CancelledError.
 *
 * Only idempotent, replayable work belongs here: a listing, a delete, a HEAD, the start of
 * a read. A streamed write cannot be replayed once its body has been consumed, so backends
 * do not wrap writes in withRetry; S3 multipart parts are retried by the SDK itself (it
 * holds each part's buffer) and GCS upload-session requests by the GCS client.
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = Math.max(1, options.attempts ?? RETRY_DEFAULTS.attempts);
  const baseMs = options.baseMs ?? RETRY_DEFAULTS.baseMs;
  const maxMs = options.maxMs ?? RETRY_DEFAULTS.maxMs;
  const isTransient = options.isTransient ?? isTransientError;
  const { signal } = options;

  for (let attempt = 1; ; attempt++) {
    throwIfAborted(signal, options.label);
    try {
      return await fn(attempt);
    } catch (err) {
      if (signal?.aborted) throw cancelled(signal, options.label, err);
      if (attempt >= attempts || !isTransient(err)) throw err;
      const ceiling = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
      const delayMs = Math.floor(Math.random() * ceiling);
      options.logger?.warn(
        { attempt, attempts, delayMs, error: describeError(err) },
        `${options.label ?? 'backend call'} failed with a transient error; retrying`,
      );
      try {
        await sleep(delayMs, undefined, signal ? { signal } : undefined);
      } catch {
        throw cancelled(signal, options.label, err);
      }
    }
  }
}

function throwIfAborted(signal: AbortSignal | undefined, label: string | undefined): void {
  if (signal?.aborted) throw cancelled(signal, label);
}

function cancelled(signal: AbortSignal | undefined, label: string | undefined, cause?: unknown): CancelledError {
  const reason: unknown = signal?.reason;
  const why = reason instanceof Error && reason.message ? `: ${reason.message}` : '';
  return new CancelledError(`${label ?? 'backend call'} was cancelled${why}`, { cause: cause ?? reason });
}

/** HTTP statuses worth another try: request timeout, too many requests, server-side trouble. */
const TRANSIENT_STATUS = new Set([408, 429, 500, 502, 503, 504]);

/** Network-level failures: the peer went away or did not answer in time. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ECONNREFUSED', 'ECONNABORTED', 'EAI_AGAIN', 'ENETUNREACH',
  'EHOSTUNREACH', 'ENETDOWN', 'ESOCKETTIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ERR_STREAM_PREMATURE_CLOSE', 'EBUSY', 'EMFILE', 'ENFILE',
]);

/** Error names/codes that S3 (and compatibles) use for throttling and server trouble. */
const TRANSIENT_NAMES = new Set([
  'TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'SlowDown', 'Throttling', 'ThrottlingException',
  'TooManyRequestsException', 'RequestLimitExceeded', 'InternalError', 'ServiceUnavailable', 'ServiceUnavailableException',
]);

/** Never retried: retrying cannot make these succeed. */
const PERMANENT_NAMES = new Set([
  'NoSuchBucket', 'AccessDenied', 'AllAccessDisabled', 'InvalidAccessKeyId', 'SignatureDoesNotMatch',
  'InvalidBucketName', 'NoSuchKey', 'NotFound', 'BadDigest', 'InvalidDigest', 'XAmzContentChecksumMismatch',
  'CONTENT_DOWNLOAD_MISMATCH', 'FILE_NO_UPLOAD', 'FILE_NO_UPLOAD_DELETE', 'AbortError', 'EACCES', 'EPERM',
  'EROFS', 'ENOSPC', 'ENOTDIR', 'EISDIR', 'ENOENT',
]);

/**
 * True for failures a retry may fix: HTTP 408/429/5xx (not 501), connection resets, timeouts,
 * refused connections, "socket hang up", throttling codes. False for everything that says the
 * request itself is wrong (403, 404, NoSuchBucket, AccessDenied, InvalidAccessKeyId, checksum
 * mismatch, shardvault's own ValidationError/IntegrityError/NotFoundError/PermanentBackendError,
 * aborts) and for anything unrecognised. Looks through `cause` chains (fetch wraps the socket
 * error there).
 */
export function isTransientError(err: unknown): boolean {
  return classify(err, 0) === 'transient';
}

type Verdict = 'transient' | 'permanent' | 'unknown';

function classify(err: unknown, depth: number): Verdict {
  if (err === null || typeof err !== 'object' || depth > 5) return 'unknown';
  if (err instanceof ShardvaultError) return err.retryable ? 'transient' : 'permanent';

  const e = err as Record<string, unknown>;
  const names = [e.name, e.code, e.Code, e.errno].filter((v): v is string => typeof v === 'string');
  if (names.some((n) => PERMANENT_NAMES.has(n))) return 'permanent';

  const status = httpStatus(err);
  if (status !== undefined) {
    if (TRANSIENT_STATUS.has(status)) return 'transient';
    if (status >= 400) return 'permanent';
  }
  if (names.some((n) => TRANSIENT_CODES.has(n) || TRANSIENT_NAMES.has(n))) return 'transient';

  const message = typeof e.message === 'string' ? e.message : '';
  if (/checksum|digest mismatch|crc32c mismatch|md5 mismatch/i.test(message)) return 'permanent';
  if (/socket hang up|ECONNRESET|ETIMEDOUT|EPIPE|timed? ?out|network socket disconnected/i.test(message)) {
    return 'transient';
  }

  const nested = classify(e.cause, depth + 1);
  if (nested !== 'unknown') return nested;
  if (Array.isArray(e.errors)) {
    for (const inner of e.errors) {
      const v = classify(inner, depth + 1);
      if (v !== 'unknown') return v;
    }
  }
  return 'unknown';
}

/**
 * The HTTP status a remote service answered, as carried by an error from the AWS SDK (`$metadata.httpStatusCode`), the GCS
 * client (`code` as a number, or `response.status`), or anything with `status`/`statusCode`.
 */
export function httpStatus(err: unknown): number | undefined {
  // A ShardvaultError's status is the answer shardvault gives, not one a service gave us.
  if (err === null || typeof err !== 'object' || err instanceof ShardvaultError) return undefined;
  const e = err as Record<string, unknown>;
  const meta = e.$metadata as { httpStatusCode?: unknown } | undefined;
  const response = e.response as { status?: unknown; statusCode?: unknown } | undefined;
  for (const v of [meta?.httpStatusCode, e.statusCode, e.status, response?.status, response?.statusCode, e.code]) {
    if (typeof v === 'number' && v >= 100 && v <= 599) return v;
  }
  return undefined;
}

/**
 * A one-line, credential-free description of any error for logs and error messages:
 * name, code and status, plus the message (SDK messages do not echo credentials).
 */
export function describeError(err: unknown): string {
  if (!(err instanceof Error) && (err === null || typeof err !== 'object')) return String(err);
  const e = err as Record<string, unknown>;
  const parts: string[] = [];
  const name = typeof e.name === 'string' ? e.name : undefined;
  const code = typeof e.Code === 'string' ? e.Code : typeof e.code === 'string' ? e.code : undefined;
  if (name) parts.push(name);
  if (code && code !== name) parts.push(code);
  const status = httpStatus(err);
  if (status !== undefined) parts.push(`HTTP ${status}`);
  const message = typeof e.message === 'string' ? e.message.split('\n')[0]?.slice(0, 300) : undefined;
  return `${parts.join(' ')}${message ? `: ${message}` : ''}` || 'unknown error';
}

/**
 * Shared tail of every backend's error mapping: aborts become CancelledError, shardvault
 * errors pass through, exhausted transient failures become UnavailableError (503), anything
 * else a PermanentBackendError. Backend-specific cases (missing bucket, missing key,
 * access denied) are handled by the caller before this.
 */
export function fallbackBackendError(err: unknown, what: string, signal?: AbortSignal): ShardvaultError {
  if (err instanceof ShardvaultError) return err;
  if (signal?.aborted || isAbortError(err)) {
    return new CancelledError(`${what} was cancelled`, { cause: err });
  }
  if (isTransientError(err)) {
    return new UnavailableError(`${what} failed: ${describeError(err)}`, { cause: err });
  }
  return new PermanentBackendError(`${what} failed: ${describeError(err)}`, { cause: err });
}

export function isAbortError(err: unknown): boolean {
  if (err === null || typeof err !== 'object') return false;
  const e = err as { name?: unknown; code?: unknown };
  return e.name === 'AbortError' || e.code === 'ABORT_ERR';
}
