/**
 * The one HTTP client of the cluster's internal traffic: the API and the workers reaching
 * `npm run node` processes (nodes on their own hosts). Every request carries CLUSTER_SECRET as
 * a bearer token; the secret appears in no error, log line or status. A node that cannot be
 * reached answers an UnavailableError naming the node (retryable: a job retries it); a node's
 * error answer is rebuilt as the same named error (shared/cluster/wire.ts), prefixed with the
 * node's name.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
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

/**
 * A node's 2xx answer. Its body must be read to its end or destroyed: until then the
 * connection is not free for another request.
 */
export interface NodeAnswer {
  status: number;
  /** A header's value (names in lower case). */
  header(name: string): string | undefined;
  /** The body as it arrives (the request's signal, if any, also ends it). */
  body: Readable;
  /** The whole body, parsed as JSON. */
  json<T>(): Promise<T>;
  /** The whole body. */
  bytes(): Promise<Buffer>;
}

/**
 * The largest body of documents a node reads (its MAX_BODY_BYTES × 4): a batch the API accepted,
 * at most MAX_BODY_BYTES of JSON, encodes to less (MessagePack can take up to ~2.5 × the JSON of
 * small floats); the API splits a larger one (an online restore's 1000 documents) before it sends.
 */
export const nodeBodyLimit = (maxBodyBytes: number): number => 4 * maxBodyBytes;

/** How long a node may take to start answering a request it has whole. */
export const ANSWER_TIMEOUT_MS = 60_000;

/**
 * The largest answer read whole (metadata, a page of documents, an error): a node that sends
 * more is cut off, named, rather than held in memory. Streamed answers (snapshots) have no bound.
 */
export const MAX_ANSWER_BYTES = 256 * 1024 * 1024;

export class NodeClient {
  constructor(
    private readonly urls: Readonly<Record<string, string>>,
    private readonly secret: string,
    private readonly maxAnswerBytes = MAX_ANSWER_BYTES,
  ) {}

  get nodes(): string[] {
    return Object.keys(this.urls);
  }

  urlOf(node: string): string {
    const url = this.urls[node];
    if (!url) throw new ValidationError(`node ${JSON.stringify(node)} is not one of this cluster's nodes (${this.nodes.join(', ')})`);
    return url;
  }

  /**
   * A request to one node; answers when the node's answer starts and it is 2xx, else throws its
   * named error. node:http rather than fetch: the cluster's bulk traffic (snapshots, restored
   * shards, document streams) then stays in Node streams, at about half the CPU a byte of
   * fetch's web streams costs.
   */
  async request(node: string, path: string, init: NodeRequest = {}): Promise<NodeAnswer> {
    const url = new URL(`${this.urlOf(node)}${path}`);
    const headers: Record<string, string> = { authorization: `Bearer ${this.secret}`, ...init.headers };
    let payload: Buffer | undefined;
    if (init.json !== undefined) {
      headers['content-type'] = 'application/json';
      payload = Buffer.from(JSON.stringify(init.json));
    } else if (init.body) {
      headers['content-type'] = 'application/octet-stream';
    }
    // The timer runs from the moment the node has the whole request until its answer starts: a
    // streamed body, and the answer's body, may take as long as they need.
    const answered = new AbortController();
    const limit = init.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
    let waiting: NodeJS.Timeout | undefined;
    const startTimer = () => {
      waiting = setTimeout(() => answered.abort(), limit);
    };
    const signal = init.signal ? AbortSignal.any([answered.signal, init.signal]) : answered.signal;
    const send = (fresh = false) =>
      (url.protocol === 'https:' ? https : http).request(url, { method: init.method ?? 'GET', headers, signal, ...(fresh ? { agent: false } : {}) });
    let req = send();
    let res: IncomingMessage;
    try {
      res = await new Promise<IncomingMessage>((resolve, reject) => {
        req.once('response', resolve);
        // Errors after the answer has started (a node that answers before it has read the whole
        // body, then closes) change nothing: the answer says what happened.
        req.on('error', (err: NodeJS.ErrnoException) => {
          // A kept-alive connection the node closed (it restarted, or timed it out) as this
          // request went out: the node never saw the request, so a buffered one is sent again,
          // once, on a connection of its own (the pool may hold more such; a streamed body
          // cannot be sent again).
          if (!req.reusedSocket || err.code !== 'ECONNRESET' || init.body || signal.aborted) return reject(err);
          clearTimeout(waiting);
          req = send(true);
          req.once('response', resolve);
          req.on('error', reject);
          startTimer();
          req.end(payload);
        });
        if (init.body) {
          init.body.once('end', startTimer);
          // A body that fails fails the request; one the node stops reading is left to the caller.
          init.body.once('error', (err) => req.destroy(err));
          init.body.pipe(req);
        } else {
          startTimer();
          req.end(payload);
        }
      });
    } catch (err) {
      if (init.signal?.aborted) throw init.signal.reason ?? err;
      if (answered.signal.aborted) throw new UnavailableError(`node ${node} did not answer in ${limit / 1000} s`);
      throw new UnavailableError(`node ${node} is unreachable: ${describeError(err)}`);
    } finally {
      init.body?.off('end', startTimer);
      clearTimeout(waiting);
    }
    const status = res.statusCode ?? 0;
    const bytes = async (): Promise<Buffer> => {
      const chunks: Buffer[] = [];
      let length = 0;
      for await (const chunk of res) {
        length += (chunk as Buffer).length;
        if (length > this.maxAnswerBytes) {
          res.destroy();
          throw new UnavailableError(`node ${node} answered ${init.method ?? 'GET'} ${path} with more than ${this.maxAnswerBytes} bytes, more than an answer read whole may be`);
        }
        chunks.push(chunk as Buffer);
      }
      return Buffer.concat(chunks, length);
    };
    if (status >= 200 && status < 300) {
      return {
        status,
        header: (name) => {
          const value = res.headers[name];
          return Array.isArray(value) ? value.join(', ') : value;
        },
        body: res,
        bytes,
        json: async <T>() => JSON.parse((await bytes()).toString('utf8')) as T,
      };
    }
    const text = await bytes().then(
      (b) => b.toString('utf8'),
      () => '',
    );
    // A refusal answered before the whole body was sent: the rest is not sent, and the
    // connection, which still holds a request in the middle of its body, is closed.
    if (!req.writableFinished) req.destroy();
    let parsed: Partial<WireError> | undefined;
    try {
      parsed = JSON.parse(text) as Partial<WireError>;
    } catch {
      parsed = undefined;
    }
    const err = errorFromWire(parsed, `HTTP ${status}`);
    err.message = `node ${node}: ${err.message}`;
    throw err;
  }

  /** A request answering JSON. */
  async json<T>(node: string, path: string, init: NodeRequest = {}): Promise<T> {
    return (await this.request(node, path, init)).json<T>();
  }

  /** A request whose answer's body is not needed (it is read and dropped, freeing the connection). */
  async send(node: string, path: string, init: NodeRequest = {}): Promise<void> {
    (await this.request(node, path, init)).body.resume();
  }
}

function describeError(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? (err instanceof Error ? err.message : String(err));
}
