/**
 * A small HTTP client for shardvault's /v1/backups and /v1/backup-schedules API, used by
 * `shardvault backup …` and `shardvault schedule …`; its request layer (connect) also carries
 * the streamed `:dump`/`:restore` of the dump/restore flags with `--url`.
 * Answers are parsed with the wire contract's schemas (shared/backups/contract.ts), the same
 * the API answers by, so an API of another version that answers differently is reported, not
 * half-understood. Failures are ApiError with one line that says what went wrong: the API's own
 * message (`{"error":[{"message":…}]}`) with its HTTP status, or why the API could not be reached.
 */
import { Readable } from 'node:stream';
import { z } from 'zod';
import {
  backupListSchema,
  operationStartedSchema,
  operationStatusSchema,
  verifyReportSchema,
  deleteResultSchema,
  type BackupListItem,
  type DeleteResult,
  type OperationStarted,
  type OperationStatus,
  type VerifyReport,
} from '../shared/backups/contract.ts';
import type { Overrides } from '../shared/backups/validate.ts';
import { scheduleListSchema, scheduleRunSchema, scheduleViewSchema, type ScheduleView } from '../shared/schedules/contract.ts';
import type { OperationKind } from '../shared/jobs/operation.ts';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

/** The API key of the environment: SHARDVAULT_API_KEY, else the first of AUTHENTICATION_APIKEY_ALLOWED_KEYS. */
export function apiKeyFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  const own = env.SHARDVAULT_API_KEY?.trim();
  if (own) return own;
  return env.AUTHENTICATION_APIKEY_ALLOWED_KEYS?.split(',').map((k) => k.trim()).find(Boolean);
}

export class ApiError extends Error {
  constructor(
    message: string,
    /** The HTTP status; undefined when the API was not reached. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** Whether asking again later may work (the API is away, restarting or overloaded). */
  get transient(): boolean {
    return this.status === undefined || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

export interface BackupClient {
  readonly url: string;
  create(backend: string, body: Record<string, unknown>): Promise<OperationStarted>;
  restore(backend: string, id: string, body: Record<string, unknown>): Promise<OperationStarted>;
  status(kind: OperationKind, backend: string, id: string, overrides?: Overrides): Promise<OperationStatus>;
  list(backend: string, overrides?: Overrides): Promise<BackupListItem[]>;
  cancel(kind: OperationKind, backend: string, id: string, overrides?: Overrides): Promise<void>;
  verify(backend: string, id: string, overrides?: Overrides): Promise<VerifyReport>;
  delete(backend: string, id: string, overrides?: Overrides): Promise<DeleteResult>;
  schedules: {
    set(name: string, body: Record<string, unknown>): Promise<ScheduleView>;
    get(name: string): Promise<ScheduleView>;
    list(): Promise<ScheduleView[]>;
    run(name: string): Promise<{ schedule: string; id: string; dueAt: string }>;
    remove(name: string): Promise<void>;
  };
}

export interface ClientOptions {
  url?: string;
  apiKey?: string;
  /** Per request (default 30 s). */
  timeoutMs?: number;
}

/** What a request may carry besides its method and path. */
export interface SendInit {
  headers?: Record<string, string>;
  /** A JSON value (sent as application/json), or a byte stream sent as it is read (a dump file). */
  body?: { json: unknown } | { stream: Readable; contentType: string };
  query?: Overrides;
  /**
   * Give up when the whole exchange has not ended in this time; undefined waits as long as it
   * takes (a dump of millions of documents streams for minutes).
   */
  timeoutMs?: number;
}

/**
 * One API, reached over HTTP: the request layer under BackupClient and under the CLI's
 * dump/restore through `--url`. `send` answers a 2xx Response whose body is the caller's to
 * read (so a dump can stream to a file); every failure is an ApiError, worded the same way
 * for every command.
 */
export interface ApiConnection {
  readonly url: string;
  send(method: string, path: string, init?: SendInit): Promise<Response>;
  /** A request answered with JSON, checked with `schema`. */
  json<T>(schema: z.ZodType<T>, method: string, path: string, init?: SendInit): Promise<T>;
}

export function connect(options: ClientOptions = {}): ApiConnection {
  const base = (options.url ?? DEFAULT_URL).replace(/\/+$/, '');

  async function send(method: string, path: string, init: SendInit = {}): Promise<Response> {
    const search = new URLSearchParams(Object.entries(init.query ?? {}).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1] !== ''));
    const url = `${base}${path}${search.size ? `?${search}` : ''}`;
    const headers: Record<string, string> = { accept: 'application/json', ...init.headers };
    if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
    const { body } = init;
    let payload: string | ReadableStream<Uint8Array> | undefined;
    // A stream that fails while it is sent (the input file unreadable, not a dump) makes fetch
    // fail as if the API were away; its own error is the one to report.
    let streamError: Error | undefined;
    if (body && 'json' in body) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body.json);
    } else if (body) {
      headers['content-type'] = body.contentType;
      body.stream.once('error', (err) => (streamError ??= err));
      payload = Readable.toWeb(body.stream) as ReadableStream<Uint8Array>;
    }
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: payload,
        // Required by fetch for a streamed body: the request is sent while the answer is awaited.
        ...(payload instanceof ReadableStream ? { duplex: 'half' } : {}),
        ...(init.timeoutMs !== undefined ? { signal: AbortSignal.timeout(init.timeoutMs) } : {}),
      } as RequestInit);
    } catch (err) {
      if (streamError) throw streamError;
      throw unreachable(base, err, init.timeoutMs);
    }
    if (!res.ok) throw await refusal(res, method, path);
    return res;
  }

  return {
    url: base,
    send,
    async json(schema, method, path, init) {
      const res = await send(method, path, init);
      let text: string;
      try {
        text = await res.text();
      } catch (err) {
        throw unreachable(base, err, init?.timeoutMs);
      }
      let data: unknown;
      try {
        data = text ? JSON.parse(text) : undefined;
      } catch {
        data = undefined;
      }
      const parsed = schema.safeParse(data);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw new ApiError(`unexpected answer from ${method} ${path} (${issue.path.join('.') || 'body'}: ${issue.message}); is ${base} a shardvault API of this version?`);
      }
      return parsed.data;
    },
  };
}

/** The API was not reached, or stopped answering: why, in one line. */
export function unreachable(base: string, err: unknown, timeoutMs?: number): ApiError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why =
    (err as Error).name === 'TimeoutError' && timeoutMs !== undefined
      ? `no answer in ${timeoutMs / 1000} s`
      : (cause?.code ?? cause?.message ?? (err as Error).message);
  return new ApiError(`cannot reach the API at ${base} (${why}); is it running? (--url names another)`);
}

/** A non-2xx answer as one line: the API's own message (`{"error":[{"message":…}]}`), a hint for 401, the status and the call. */
async function refusal(res: Response, method: string, path: string): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  let message: string | undefined;
  try {
    message = (JSON.parse(text) as { error?: { message?: string }[] } | undefined)?.error?.[0]?.message;
  } catch {
    message = undefined;
  }
  const hint = res.status === 401 ? ' (set SHARDVAULT_API_KEY)' : '';
  return new ApiError(`${message ?? (text.trim().slice(0, 200) || res.statusText)}${hint} [HTTP ${res.status} from ${method} ${path}]`, res.status);
}

export function createClient(options: ClientOptions = {}): BackupClient {
  const api = connect(options);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const segment = encodeURIComponent;
  /** A call whose answer (if any) is not needed. */
  async function call(method: string, path: string, body?: unknown, query: Overrides = {}): Promise<void> {
    await answer(z.unknown(), method, path, body, query);
  }

  /** One call whose answer must have the contract's shape; `wait` undefined waits as long as the server works. */
  function answer<T>(schema: z.ZodType<T>, method: string, path: string, body?: unknown, query: Overrides = {}, wait: number | undefined = timeoutMs): Promise<T> {
    return api.json(schema, method, path, { body: body === undefined ? undefined : { json: body }, query, timeoutMs: wait });
  }

  const operationPath = (kind: OperationKind, backend: string, id: string) =>
    `/v1/backups/${segment(backend)}/${segment(id)}${kind === 'restore' ? '/restore' : ''}`;

  return {
    url: api.url,
    create: (backend, body) => answer(operationStartedSchema, 'POST', `/v1/backups/${segment(backend)}`, body),
    restore: (backend, id, body) => answer(operationStartedSchema, 'POST', operationPath('restore', backend, id), body),
    // Restore status and cancel take no overrides: a restore remembers its own.
    status: (kind, backend, id, overrides = {}) => answer(operationStatusSchema, 'GET', operationPath(kind, backend, id), undefined, kind === 'backup' ? overrides : {}),
    list: (backend, overrides = {}) => answer(backupListSchema, 'GET', `/v1/backups/${segment(backend)}`, undefined, overrides),
    cancel: async (kind, backend, id, overrides = {}) => {
      await call('DELETE', operationPath(kind, backend, id), undefined, kind === 'backup' ? overrides : {});
    },
    // A delete waits for the backups that hold the repository (up to 5 minutes) and then collects
    // its garbage; a verify reads every chunk: both answer when done, however long that takes.
    delete: (backend, id, overrides = {}) => answer(deleteResultSchema, 'POST', `${operationPath('backup', backend, id)}/delete`, undefined, overrides, undefined),
    verify: (backend, id, overrides = {}) => answer(verifyReportSchema, 'GET', `${operationPath('backup', backend, id)}/verify`, undefined, overrides, undefined),
    schedules: {
      set: (name, body) => answer(scheduleViewSchema, 'PUT', `/v1/backup-schedules/${segment(name)}`, body),
      get: (name) => answer(scheduleViewSchema, 'GET', `/v1/backup-schedules/${segment(name)}`),
      list: async () => (await answer(scheduleListSchema, 'GET', '/v1/backup-schedules')).schedules,
      run: (name) => answer(scheduleRunSchema, 'POST', `/v1/backup-schedules/${segment(name)}/run`),
      remove: async (name) => {
        await call('DELETE', `/v1/backup-schedules/${segment(name)}`);
      },
    },
  };
}
