/**
 * Abandoning a request whose server went silent: the longest a request may go without a byte
 * moving (BACKUP_GCS_REQUEST_TIMEOUT_SECONDS), never a total time, so a multi-GiB transfer
 * that keeps moving is not cut. S3's client has this built in (its socketTimeout); the GCS
 * client does not, and gcs.ts builds it from the helpers here; both name the fault with silenceFault.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';

/** How a SilenceError's message starts: the clients keep it in the errors they wrap it in. */
const SILENCE = 'nothing moved for';

/** A request abandoned because nothing moved on it for `ms`: transient (name and code say so). */
export class SilenceError extends Error {
  override readonly name = 'TimeoutError';
  readonly code = 'ETIMEDOUT';
  constructor(readonly ms: number) {
    super(`${SILENCE} ${ms / 1000} s`);
  }
}

/** The step every http.Agent takes for a new socket (agent-base's proxy agents too); not in Node's types. */
type SocketFactory = (req: http.ClientRequest, options: object, done: (err: Error | null, socket?: Socket) => void) => void;
const silencedAgents = new WeakSet<http.Agent>();

/**
 * `agent`, whose sockets are destroyed with a SilenceError once `ms` pass without a byte read or
 * written (Node's own `timeout` option only emits an event and leaves the request hanging): every
 * new socket is armed as the agent hands it out, the agent's `timeout` keeps it armed while the
 * socket waits in its pool, and it is armed for `ms` again when a request reuses it. Destroying
 * the socket fails the request through the client's ordinary error path, and frees it: the
 * caller sees a failed request, never a parked one. Works on any http.Agent, a proxy's (`https-proxy-agent`, which tunnels through
 * HTTP(S)_PROXY) as well as a plain one; an agent is armed once, however often it is given.
 */
export function silenced<A extends http.Agent>(agent: A, ms: number): A {
  if (silencedAgents.has(agent)) return agent;
  silencedAgents.add(agent);
  (agent as unknown as { options: { timeout?: number } }).options.timeout = ms;
  const internals = agent as unknown as { createSocket: SocketFactory };
  const create = internals.createSocket.bind(agent);
  internals.createSocket = (req, options, done) =>
    create(req, options, (err, socket) => {
      if (socket) {
        socket.setTimeout(ms);
        socket.once('timeout', () => socket.destroy(new SilenceError(ms)));
      }
      done(err, socket);
    });
  // A free socket's timeout is cut to the idle time a server hints (`Keep-Alive: timeout=N`,
  // less a second), and Node leaves it so when a request reuses the socket: that request would
  // be abandoned after the hint's few seconds of waiting, as if ms had passed.
  const reuse = agent.reuseSocket.bind(agent);
  agent.reuseSocket = (socket, req) => {
    reuse(socket, req);
    (socket as Socket).setTimeout(ms);
  };
  return agent;
}

/** A keep-alive agent for `protocol`, silenced after `ms`. */
export function silenceAgent(protocol: string, ms: number): http.Agent {
  return silenced(protocol === 'https:' ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true }), ms);
}

/**
 * Destroys `source` (a response body piped into `sink`) with a SilenceError once no chunk has
 * come out of it for `ms` while `sink` had room for one: a reader that stopped reading is
 * waiting on itself, not on the server.
 */
export function watchSilence(source: Readable, sink: Writable, ms: number): void {
  const timer = setTimeout(() => {
    if (sink.writableNeedDrain) timer.refresh();
    else source.destroy(new SilenceError(ms));
  }, ms);
  source.on('data', () => timer.refresh());
  for (const stream of [source, sink]) stream.once('close', () => clearTimeout(timer));
  source.once('end', () => clearTimeout(timer));
}

/** The fault of a request abandoned for silence (common-steps.ts's `silent`), naming how long and the setting. */
export function silenceFault(ms: number, setting: string): { fault: 'silent'; detail: string } {
  return { fault: 'silent', detail: `${SILENCE} ${ms / 1000} s (${setting})` };
}

/**
 * True when err (or an error it wraps) is a request abandoned for silence: a SilenceError, or
 * the client's own request timeout (node-fetch's `request-timeout` / `body-timeout`, which the
 * GCS client raises for its JSON requests). The clients wrap the socket's error in their own,
 * keeping its code and message but not the error itself.
 */
export function isSilenceError(err: unknown, depth = 0): boolean {
  if (err === null || typeof err !== 'object' || depth > 5) return false;
  if (err instanceof SilenceError) return true;
  const e = err as { type?: unknown; code?: unknown; message?: unknown; cause?: unknown; error?: unknown };
  if (e.type === 'request-timeout' || e.type === 'body-timeout') return true;
  if (e.code === 'ETIMEDOUT' && typeof e.message === 'string' && e.message.includes(SILENCE)) return true;
  return isSilenceError(e.cause, depth + 1) || isSilenceError(e.error, depth + 1);
}
