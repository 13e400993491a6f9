/**
 * The one HTTP client of the cluster's internal traffic: the API and the workers reaching
 * `npm run node` processes (nodes on their own hosts). Every request carries CLUSTER_SECRET as
 * a bearer token; the secret appears in no error, log line or status. A node that cannot be
 * reached answers an UnavailableError naming the node (retryable: a job retries it); a node's
 * error answer is rebuilt as the same named error (shared/cluster/wire.ts), prefixed with the
 * node's name.
 */
import type { Readable } from 'node:stream';
import { Readable as NodeReadable } from 'node:stream';
import { UnavailableError, ValidationError } from '../errors.ts';
import { errorFromWire, type WireError } from './wire.ts';

export interface NodeRequest {
  method?: string;
  /** A JSON body. */
  json?: unknown;
  /** A streamed body (sent as application/octet-stream). */
  body?: Readable;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /**
   * How long the node may take to start answering once the request is sent (a streamed body
   * counts as sent when it ends); default ANSWER_TIMEOUT_MS.
   */
  answerTimeoutMs?: number;
}

/** How long a node may take to start answering a request it has whole. */
export const ANSWER_TIMEOUT_MS = 60_000;

export class NodeClient {
  constructor(
    private readonly urls: Readonly<Record<string, string>>,
    private readonly secret: string,
  ) {}

  get nodes(): string[] {
    return Object.keys(this.urls);
  }

  urlOf(node: string): string {
    const url = this.urls[node];
    if (!url) throw new ValidationError(`node ${JSON.stringify(node)} is not one of this cluster's nodes (${this.nodes.join(', ')})`);
    return url;
  }

  /** A request to one node; answers the response when it is 2xx, else throws its named error. */
  async request(node: string, path: string, init: NodeRequest = {}): Promise<Response> {
    const url = `${this.urlOf(node)}${path}`;
    const headers: Record<string, string> = { authorization: `Bearer ${this.secret}`, ...init.headers };
    let body: string | ReadableStream | undefined;
    if (init.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.json);
    } else if (init.body) {
      headers['content-type'] = 'application/octet-stream';
      body = NodeReadable.toWeb(init.body) as ReadableStream;
    }
    // The timer runs from the moment the node has the whole request until its answer starts: a
    // streamed body, and the answer's body, may take as long as they need.
    const answered = new AbortController();
    const limit = init.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
    let waiting: NodeJS.Timeout | undefined;
    const startTimer = () => {
      waiting = setTimeout(() => answered.abort(), limit);
    };
    if (init.body) init.body.once('end', startTimer);
    else startTimer();
    let res: Response;
    try {
      res = await fetch(url, {
        method: init.method ?? 'GET',
        headers,
        body,
        signal: init.signal ? AbortSignal.any([answered.signal, init.signal]) : answered.signal,
        ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
      } as RequestInit);
    } catch (err) {
      if (init.signal?.aborted) throw init.signal.reason ?? err;
      if (answered.signal.aborted) throw new UnavailableError(`node ${node} did not answer in ${limit / 1000} s`);
      throw new UnavailableError(`node ${node} is unreachable: ${describeFetchError(err)}`);
    } finally {
      init.body?.off('end', startTimer);
      clearTimeout(waiting);
    }
    if (res.ok) return res;
    const text = await res.text().catch(() => '');
    let parsed: Partial<WireError> | undefined;
    try {
      parsed = JSON.parse(text) as Partial<WireError>;
    } catch {
      parsed = undefined;
    }
    const err = errorFromWire(parsed, `HTTP ${res.status}`);
    err.message = `node ${node}: ${err.message}`;
    throw err;
  }

  /** A request answering JSON. */
  async json<T>(node: string, path: string, init: NodeRequest = {}): Promise<T> {
    const res = await this.request(node, path, init);
    return (await res.json()) as T;
  }
}

function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  return cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
}
