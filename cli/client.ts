/**
 * A small HTTP client for shardvault's /v1/backups API, used by `shardvault backup …`.
 * Failures are ApiError with one line that says what went wrong: the API's own message
 * (`{"error":[{"message":…}]}`) with its HTTP status, or why the API could not be reached.
 */

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

export type Status = 'STARTED' | 'TRANSFERRING' | 'TRANSFERRED' | 'FINALIZING' | 'SUCCESS' | 'FAILED' | 'CANCELLING' | 'CANCELED';
export const FINAL: ReadonlySet<Status> = new Set(['SUCCESS', 'FAILED', 'CANCELED']);

export interface Started {
  id: string;
  backend: string;
  classes: string[];
  path: string;
  status: 'STARTED';
}

export interface OperationStatus {
  id: string;
  backend: string;
  path: string;
  status: Status;
  error?: string;
  classes?: string[];
  startedAt?: string;
  completedAt?: string;
  progress?: { shardsDone: number; shardsTotal: number; docs: number; bytes: number };
}

export interface ListItem {
  id: string;
  classes: string[];
  status: Status;
  startedAt: string;
  completedAt?: string;
}

export interface Overrides {
  bucket?: string;
  path?: string;
}

export type OperationKind = 'backup' | 'restore';

/** GET /v1/backups/{backend}/{id}/verify. */
export interface VerifyReport {
  id: string;
  backend: string;
  status: 'OK' | 'CORRUPT';
  objects: number;
  bytes: number;
  problems: { key: string; problem: string }[];
}

export interface BackupClient {
  readonly url: string;
  create(backend: string, body: Record<string, unknown>): Promise<Started>;
  restore(backend: string, id: string, body: Record<string, unknown>): Promise<Started>;
  status(kind: OperationKind, backend: string, id: string, overrides?: Overrides): Promise<OperationStatus>;
  list(backend: string, overrides?: Overrides): Promise<ListItem[]>;
  cancel(kind: OperationKind, backend: string, id: string, overrides?: Overrides): Promise<void>;
  verify(backend: string, id: string, overrides?: Overrides): Promise<VerifyReport>;
}

export interface ClientOptions {
  url?: string;
  apiKey?: string;
  /** Per request (default 30 s). */
  timeoutMs?: number;
}

export function createClient(options: ClientOptions = {}): BackupClient {
  const base = (options.url ?? DEFAULT_URL).replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 30_000;
  const segment = encodeURIComponent;

  async function call(method: string, path: string, body?: unknown, query: Overrides = {}): Promise<unknown> {
    const search = new URLSearchParams(Object.entries(query).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1] !== ''));
    const url = `${base}${path}${search.size ? `?${search}` : ''}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = (err as Error).name === 'TimeoutError' ? `no answer in ${timeoutMs / 1000} s` : (cause?.code ?? cause?.message ?? (err as Error).message);
      throw new ApiError(`cannot reach the API at ${base} (${why}); is it running? (--url names another)`);
    }
    const text = await res.text();
    let data: unknown;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      data = undefined;
    }
    if (!res.ok) {
      const message = (data as { error?: { message?: string }[] } | undefined)?.error?.[0]?.message;
      const hint = res.status === 401 ? ' (set SHARDVAULT_API_KEY)' : '';
      throw new ApiError(`${message ?? (text.trim().slice(0, 200) || res.statusText)}${hint} [HTTP ${res.status} from ${method} ${path}]`, res.status);
    }
    return data;
  }

  const operationPath = (kind: OperationKind, backend: string, id: string) =>
    `/v1/backups/${segment(backend)}/${segment(id)}${kind === 'restore' ? '/restore' : ''}`;

  return {
    url: base,
    create: async (backend, body) => (await call('POST', `/v1/backups/${segment(backend)}`, body)) as Started,
    restore: async (backend, id, body) => (await call('POST', operationPath('restore', backend, id), body)) as Started,
    // Restore status and cancel take no overrides: a restore remembers its own.
    status: async (kind, backend, id, overrides = {}) =>
      (await call('GET', operationPath(kind, backend, id), undefined, kind === 'backup' ? overrides : {})) as OperationStatus,
    list: async (backend, overrides = {}) => (await call('GET', `/v1/backups/${segment(backend)}`, undefined, overrides)) as ListItem[],
    cancel: async (kind, backend, id, overrides = {}) => {
      await call('DELETE', operationPath(kind, backend, id), undefined, kind === 'backup' ? overrides : {});
    },
    verify: async (backend, id, overrides = {}) =>
      (await call('GET', `${operationPath('backup', backend, id)}/verify`, undefined, overrides)) as VerifyReport,
  };
}
