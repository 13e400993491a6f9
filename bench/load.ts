/**
 * The backup API under load on loopback: `POST /v1/backups/filesystem` (a unique id per
 * request, a small index) and `GET` of a backup's status, at a fixed rate and flat out. Every
 * run is bounded by a request count.
 *
 * Flat out is autocannon's closed loop (each connection sends its next request when the
 * last is answered). A fixed rate is this module's own open loop (`pacedLoad`), because
 * autocannon's rate option is not one: each connection sends its quota for the second back to
 * back as soon as the second starts, then waits for the next second (httpClient.js), so "200
 * req/s" over 10 connections is 200 requests flat out at the top of every second; and it then
 * "corrects for coordinated omission" with an expected interval of `Math.ceil(1 / rate)`
 * (1 ms for any rate above 1/s), which records a 30 ms answer as thirty answers of 30, 29, …,
 * 1 ms, weighting every sample by its own length.
 */
import net from 'node:net';
import autocannon, { type Result } from 'autocannon';
import type { BenchCluster } from './cluster.ts';

export interface LoadRun {
  name: string;
  /** Requests per second asked for (evenly spaced, `pacedLoad`); undefined means as fast as it answers (autocannon). */
  targetRate?: number;
  connections: number;
  requests: number;
  seconds: number;
  /** Mean of autocannon's per-second request counts. */
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  errors: number;
  non2xx: number;
  statusCodes: Record<string, number>;
  /** Requests sent at the rate before the measured ones and not counted (`pacedLoad`). */
  warmup?: number;
  /** Redis commands processed per request sent, warm-up included (INFO stats, minus the bench's own INFO calls). */
  redisCommandsPerRequest?: number;
}

/** Run a load and count the Redis commands it caused. */
async function counted(cluster: BenchCluster, run: () => Promise<LoadRun>): Promise<LoadRun> {
  const before = await cluster.redisCommands();
  const r = await run();
  // Two INFO calls of the bench itself fall inside the window.
  const commands = (await cluster.redisCommands()) - before - 2;
  const sent = r.requests + (r.warmup ?? 0);
  return { ...r, redisCommandsPerRequest: sent > 0 ? commands / sent : undefined };
}

/** autocannon's result of a flat-out run. */
function summarize(name: string, r: Result, connections: number): LoadRun {
  const statusCodes: Record<string, number> = {};
  for (const [code, v] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = Number(v.count);
  const requests = Object.values(statusCodes).reduce((a, b) => a + b, 0);
  return {
    name,
    connections,
    requests,
    seconds: r.duration,
    rps: r.duration > 0 ? requests / r.duration : r.requests.average,
    p50: r.latency.p50,
    p90: r.latency.p90,
    p99: r.latency.p99,
    max: r.latency.max,
    errors: r.errors,
    non2xx: r.non2xx,
    statusCodes,
  };
}

/** One request of a load: what `pacedLoad` sends for its i-th arrival. */
interface LoadRequest {
  method: 'GET' | 'POST';
  path: string;
  body?: string;
}

/** The value below which `q` of the sorted values lie (nearest rank). */
function percentile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]! : NaN;
}

/** Seconds of a paced load sent at its rate before the measured requests, and not counted. */
const WARMUP_SECONDS = 3;

/** How long an answer may take before its request counts as an error. */
const ANSWER_TIMEOUT_MS = 10_000;

/** An answer: its status code and, when it came with a Content-Length, its body. */
export interface RawAnswer {
  status: number;
  body?: Buffer;
}

/**
 * One keep-alive HTTP/1.1 connection that sends one request at a time and reads the answer's
 * status and length itself (Content-Length, or a chunked body up to its last chunk): a
 * fraction of the CPU of Node's http client or fetch, which on these two cores would
 * otherwise take time from the server they measure. Answers undefined when the connection
 * fails.
 */
export class RawConnection {
  private socket?: net.Socket;
  private chunks: Buffer[] = [];
  private size = 0;
  private head?: { end: number; status: number; length?: number; chunked: boolean };
  private done?: (answer: RawAnswer | undefined) => void;

  constructor(private readonly url: URL) {}

  /** Send a request (the path, and a JSON body when given) and wait for its answer. */
  send(method: string, path: string, body?: Buffer): Promise<RawAnswer | undefined> {
    const head = `${method} ${path} HTTP/1.1\r\nhost: ${this.url.host}\r\n${body ? `content-type: application/json\r\ncontent-length: ${body.length}\r\n` : ''}\r\n`;
    return new Promise((resolve) => {
      this.done = resolve;
      this.chunks = [];
      this.size = 0;
      this.head = undefined;
      if (!this.socket) {
        const socket = net.connect(Number(this.url.port), this.url.hostname);
        socket.setNoDelay(true);
        // An answer that stops coming fails its request instead of holding the run forever.
        socket.setTimeout(ANSWER_TIMEOUT_MS, () => socket.destroy());
        socket.on('data', (d) => this.onData(d));
        socket.on('error', () => undefined);
        socket.on('close', () => {
          if (this.socket !== socket) return;
          this.socket = undefined;
          this.finish(undefined);
        });
        this.socket = socket;
      }
      this.socket.write(body ? Buffer.concat([Buffer.from(head), body]) : head);
    });
  }

  close(): void {
    this.socket?.destroy();
  }

  private finish(answer: RawAnswer | undefined): void {
    const done = this.done;
    this.done = undefined;
    done?.(answer);
  }

  private onData(data: Buffer): void {
    this.chunks.push(data);
    this.size += data.length;
    if (!this.head) {
      const all = Buffer.concat(this.chunks);
      this.chunks = [all];
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) return;
      const text = all.subarray(0, end).toString('latin1');
      const length = /\r\ncontent-length: *(\d+)/i.exec(text);
      this.head = { end: end + 4, status: Number(text.slice(9, 12)), length: length ? Number(length[1]) : undefined, chunked: /\r\ntransfer-encoding: *chunked/i.test(text) };
    }
    const { end, status, length, chunked } = this.head;
    if (length !== undefined) {
      if (this.size >= end + length) this.finish({ status, body: Buffer.concat(this.chunks).subarray(end, end + length) });
    } else if (chunked) {
      // The last chunk's terminator may be split across two reads.
      if (Buffer.concat(this.chunks.slice(-2)).subarray(-5).toString('latin1') === '0\r\n\r\n') this.finish({ status });
    } else if (status === 204 || status === 304) this.finish({ status });
    // An answer delimited by closing the connection: not one this bench expects; counted as an error.
    else this.socket?.destroy();
  }
}

/**
 * An open-loop load, as wrk2 makes it: `amount` requests, one every 1/`rate` s, sent over at
 * most `connections` keep-alive connections, after WARMUP_SECONDS of the same load that is
 * not counted (the server's code paths compiled, its heap grown to the load's size). A request
 * is due at its time whatever the earlier ones are doing, and its latency runs from that time
 * to the end of its answer: waiting for a free connection, or for the bench's own timer,
 * counts against the server, so a stall shows in every request it delays (no coordinated
 * omission). `request(i)` is asked for every request, warm-up included, with a distinct i.
 */
export async function pacedLoad(
  baseUrl: string,
  options: {
    name: string;
    rate: number;
    amount: number;
    connections: number;
    request: (i: number) => LoadRequest;
    /** Called when the first measured request is due (the warm-up is over). */
    onMeasure?: () => void;
  },
): Promise<LoadRun> {
  const url = new URL(baseUrl);
  const idle = Array.from({ length: options.connections }, () => new RawConnection(url));
  const all = [...idle];
  const waiting: (() => void)[] = [];
  const latencies: number[] = [];
  const statusCodes: Record<string, number> = {};
  let errors = 0;
  const send = async (req: LoadRequest, due: number, counted: boolean) => {
    let connection = idle.pop();
    while (!connection) {
      await new Promise<void>((resolve) => waiting.push(resolve));
      connection = idle.pop();
    }
    const answer = await connection.send(req.method, req.path, req.body === undefined ? undefined : Buffer.from(req.body));
    idle.push(connection);
    waiting.shift()?.();
    if (!counted) return;
    if (answer === undefined) errors++;
    else {
      latencies.push(performance.now() - due);
      statusCodes[answer.status] = (statusCodes[answer.status] ?? 0) + 1;
    }
  };
  const warmup = Math.round(WARMUP_SECONDS * options.rate);
  const begun = performance.now();
  const started = begun + (warmup * 1000) / options.rate;
  const pending: Promise<void>[] = [];
  for (let i = 0; i < warmup + options.amount; i++) {
    const due = begun + (i * 1000) / options.rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    if (i === warmup) options.onMeasure?.();
    pending.push(send(options.request(i), due, i >= warmup));
  }
  await Promise.all(pending);
  const seconds = (performance.now() - started) / 1000;
  for (const c of all) c.close();
  const sorted = latencies.sort((x, y) => x - y);
  const requests = sorted.length;
  return {
    name: options.name,
    targetRate: options.rate,
    connections: options.connections,
    requests,
    seconds,
    rps: requests / seconds,
    warmup,
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    max: sorted.at(-1) ?? NaN,
    errors,
    non2xx: Object.entries(statusCodes).filter(([code]) => !code.startsWith('2')).reduce((n, [, c]) => n + c, 0),
    statusCodes,
  };
}

/** POST backups of `index`, each with a fresh id; at `rate` req/s when given, else flat out. */
export async function postBackups(
  cluster: BenchCluster,
  options: { index: string; amount: number; rate?: number; connections?: number; tag: string; onMeasure?: () => void },
): Promise<LoadRun> {
  const connections = options.connections ?? 10;
  const name = options.rate ? `POST /v1/backups/filesystem at ${options.rate} req/s` : 'POST /v1/backups/filesystem, flat out';
  const body = (i: number) => JSON.stringify({ id: `load-${options.tag}-${i}`, include: [options.index], config: { CompressionLevel: 'BestSpeed' } });
  const rate = options.rate;
  if (rate) {
    return counted(cluster, () =>
      pacedLoad(cluster.baseUrl, {
        name, rate, amount: options.amount, connections, onMeasure: options.onMeasure,
        request: (i) => ({ method: 'POST', path: '/v1/backups/filesystem', body: body(i) }),
      }),
    );
  }
  let n = 0;
  return counted(cluster, async () =>
    summarize(
      name,
      await autocannon({
        url: cluster.baseUrl,
        connections,
        amount: options.amount,
        timeout: 10,
        requests: [
          {
            method: 'POST',
            path: '/v1/backups/filesystem',
            headers: { 'content-type': 'application/json' },
            setupRequest: (req) => ({
              ...req,
              body: body(n++),
            }),
          },
        ],
      }),
      connections,
    ),
  );
}

/** GET one path repeatedly (a backup's status, the list, liveness); at `rate` req/s when given, else flat out. */
export async function getRepeatedly(
  cluster: BenchCluster,
  options: { path: string; name: string; amount: number; rate?: number; connections?: number },
): Promise<LoadRun> {
  const connections = options.connections ?? 10;
  const name = `GET ${options.name}${options.rate ? ` at ${options.rate} req/s` : ', flat out'}`;
  const rate = options.rate;
  if (rate) {
    return counted(cluster, () =>
      pacedLoad(cluster.baseUrl, { name, rate, amount: options.amount, connections, request: () => ({ method: 'GET', path: options.path }) }),
    );
  }
  return counted(cluster, async () =>
    summarize(name, await autocannon({ url: `${cluster.baseUrl}${options.path}`, connections, amount: options.amount, timeout: 10 }), connections),
  );
}
