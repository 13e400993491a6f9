/**
 * A fault-injecting HTTP proxy for backend tests: put it between shardvault and an S3 (or any
 * HTTP) server by pointing the endpoint at it. Every request is forwarded unchanged (method,
 * path, headers, body), except that a seeded PRNG picks some to fail:
 *
 * - `error500`:   the request body is read and the proxy answers 500 with an S3 `InternalError`;
 * - `reset`:      the connection is destroyed before anything is forwarded;
 * - `delay`:      nothing is answered for `delayMs` (longer than the client's timeout), then the
 *                 connection is destroyed; the request never reaches the server;
 * - `lostAnswer`: the request is forwarded and applied, then the connection is destroyed before
 *                 the answer's headers reach the client;
 * - `cutBody`:    the answer starts, and the connection is destroyed after part of its body
 *                 (only answers with a body of at least 2 KiB; otherwise forwarded intact).
 *
 * `hold(predicate)` parks matching requests (un-faulted) until `release()` forwards them or
 * `drop()` closes their connections (a request its client gave up on), so a test
 * can make something happen "while the request is in flight" without sleeping. `stallBody(predicate)`
 * forwards matching requests but sends only the first half of each answer's body, then nothing
 * more on a connection it keeps open: a server gone silent mid-body. `corruptBody(predicate)`
 * forwards matching requests and flips every bit of the first byte of each answer's body: bytes
 * damaged on the way, under headers that describe the stored object. Counts of what was done
 * are kept per fault and per request kind.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createRng, type Rng } from './reliability.ts';

export const FAULTS = ['error500', 'reset', 'delay', 'lostAnswer', 'cutBody'] as const;
export type Fault = (typeof FAULTS)[number];
export type FaultRates = Record<Fault, number>;

export const NO_FAULTS: FaultRates = { error500: 0, reset: 0, delay: 0, lostAnswer: 0, cutBody: 0 };

export interface FaultProxyOptions {
  /** Where requests go, e.g. `http://127.0.0.1:4568`. */
  target: string;
  seed: number;
  /** Probability of each fault per request (their sum at most 1). Default none. */
  rates?: Partial<FaultRates>;
  /** How long a `delay` fault holds a request before dropping it. Default 5000. */
  delayMs?: number;
}

export interface FaultCounts {
  requests: number;
  forwarded: number;
  /** `delay` faults whose client closed the connection before the proxy dropped it (the client's timeout ended them). */
  abandoned: number;
  byFault: Record<Fault, number>;
  /** `<METHOD> <kind>` → requests, e.g. `PUT object`, `GET list`, `POST multipart`. */
  byKind: Record<string, number>;
}

export interface FaultProxy {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `127.0.0.1:<port>` */
  host: string;
  readonly counts: FaultCounts;
  setRates(rates: Partial<FaultRates>): void;
  /** Park requests matching `predicate` until the returned release() or drop() is called; held() counts those it parked. */
  hold(predicate: (req: { method: string; url: string }) => boolean): { held(): number; release(): void; drop(): void };
  /** Answer requests matching `predicate` with half their body, then silence, until the returned stop() is called. */
  stallBody(predicate: (req: { method: string; url: string }) => boolean): { stalled(): number; stop(): void };
  /** Forward matching requests with the first byte of each answer's body flipped. */
  corruptBody(predicate: (req: { method: string; url: string }) => boolean): { corrupted(): number; stop(): void };
  close(): Promise<void>;
}

const S3_ERROR = (code: string, message: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>fault-proxy</RequestId></Error>`;

/** A request's kind for the counts: list, multipart, object, bucket. */
function kindOf(method: string, url: string): string {
  const u = new URL(url, 'http://x');
  let kind = 'object';
  if (u.searchParams.has('list-type') || (method === 'GET' && u.pathname.split('/').filter(Boolean).length <= 1)) kind = 'list';
  else if (u.searchParams.has('uploads') || u.searchParams.has('uploadId')) kind = 'multipart';
  else if (u.searchParams.has('delete')) kind = 'delete-objects';
  return `${method} ${kind}`;
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const rng: Rng = createRng(options.seed);
  let rates: FaultRates = { ...NO_FAULTS, ...options.rates };
  const delayMs = options.delayMs ?? 5000;
  const counts: FaultCounts = { requests: 0, forwarded: 0, abandoned: 0, byFault: { ...NO_FAULTS }, byKind: {} };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<Socket>();
  const holds = new Set<{ predicate: (r: { method: string; url: string }) => boolean; parked: { go(): void; drop(): void }[]; released: boolean }>();
  const stalls = new Set<{ predicate: (r: { method: string; url: string }) => boolean; stalled: number }>();
  const corruptions = new Set<{ predicate: (r: { method: string; url: string }) => boolean; corrupted: number }>();

  const pickFault = (): Fault | undefined => {
    let x = rng.next();
    for (const f of FAULTS) {
      if (x < rates[f]) return f;
      x -= rates[f];
    }
    return undefined;
  };

  const forward = (req: http.IncomingMessage, res: http.ServerResponse, fault?: 'lostAnswer' | 'cutBody' | 'stallBody' | 'corruptBody') => {
    counts.forwarded++;
    const upstream = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent },
      (answer) => {
        if (fault === 'lostAnswer') {
          answer.resume();
          answer.once('end', () => req.socket.destroy());
          return;
        }
        const length = Number(answer.headers['content-length'] ?? 0);
        if (fault === 'stallBody') {
          // Half the body (of one whose length is unknown, its first chunk), then silence.
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          let sent = 0;
          answer.on('data', (chunk: Buffer) => {
            if (sent > 0 && sent >= length / 2) return;
            const part = length ? chunk.subarray(0, Math.max(0, Math.ceil(length / 2) - sent)) : chunk;
            sent += part.length;
            res.write(part);
            if (sent >= length / 2) answer.destroy();
          });
          return;
        }
        if (fault === 'corruptBody') {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          let first = true;
          answer.on('data', (chunk: Buffer) => {
            if (first && chunk.length > 0) {
              first = false;
              chunk = Buffer.from(chunk);
              chunk[0] = chunk[0]! ^ 0xff;
            }
            res.write(chunk);
          });
          answer.once('end', () => res.end());
          return;
        }
        if (fault === 'cutBody' && length >= 2048) {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          let sent = 0;
          answer.on('data', (chunk: Buffer) => {
            if (sent >= length / 2) return;
            sent += chunk.length;
            res.write(chunk);
            if (sent >= length / 2) {
              answer.destroy();
              req.socket.destroy();
            }
          });
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => req.socket.destroy());
    req.pipe(upstream);
  };

  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    counts.requests++;
    const kind = kindOf(method, url);
    counts.byKind[kind] = (counts.byKind[kind] ?? 0) + 1;

    for (const hold of holds) {
      if (!hold.released && hold.predicate({ method, url })) {
        req.pause();
        hold.parked.push({ go: () => forward(req, res), drop: () => req.socket.destroy() });
        return;
      }
    }

    for (const stall of stalls) {
      if (stall.predicate({ method, url })) {
        stall.stalled++;
        forward(req, res, 'stallBody');
        return;
      }
    }

    for (const corruption of corruptions) {
      if (corruption.predicate({ method, url })) {
        corruption.corrupted++;
        forward(req, res, 'corruptBody');
        return;
      }
    }

    const fault = pickFault();
    if (fault) counts.byFault[fault]++;
    switch (fault) {
      case 'error500':
        req.resume();
        req.once('end', () => {
          res.writeHead(500, { 'content-type': 'application/xml' });
          res.end(S3_ERROR('InternalError', 'fault-proxy: injected 500'));
        });
        return;
      case 'reset':
        req.socket.destroy();
        return;
      case 'delay': {
        req.resume();
        const timer = setTimeout(() => {
          timers.delete(timer);
          req.socket.destroy();
        }, delayMs);
        timers.add(timer);
        req.socket.once('close', () => {
          if (!timers.delete(timer)) return;
          clearTimeout(timer);
          counts.abandoned++;
        });
        return;
      }
      case 'lostAnswer':
      case 'cutBody':
        forward(req, res, fault);
        return;
      default:
        forward(req, res);
    }
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    counts,
    setRates(r) {
      rates = { ...rates, ...r };
    },
    hold(predicate) {
      const hold = { predicate, parked: [] as { go(): void; drop(): void }[], released: false };
      holds.add(hold);
      let held = 0;
      const end = (how: 'go' | 'drop') => {
        hold.released = true;
        holds.delete(hold);
        held += hold.parked.length;
        for (const parked of hold.parked.splice(0)) parked[how]();
      };
      return {
        held: () => held + hold.parked.length,
        release: () => end('go'),
        drop: () => end('drop'),
      };
    },
    stallBody(predicate) {
      const stall = { predicate, stalled: 0 };
      stalls.add(stall);
      return { stalled: () => stall.stalled, stop: () => stalls.delete(stall) };
    },
    corruptBody(predicate) {
      const corruption = { predicate, corrupted: 0 };
      corruptions.add(corruption);
      return { corrupted: () => corruption.corrupted, stop: () => corruptions.delete(corruption) };
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const hold of holds) for (const parked of hold.parked.splice(0)) parked.go();
      holds.clear();
      for (const s of sockets) s.destroy();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
