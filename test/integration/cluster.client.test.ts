/**
 * The node client's time limits and errors, against plain HTTP servers that misbehave on
 * purpose: the answer timer starts when the node has the whole request, so a slow upload is
 * never cut off, while a node that takes the request and never answers is named; an answer read
 * whole is bounded; a node of an earlier version (no lineage path) sends its snapshots whole.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { NodeClient } from '../../shared/cluster/node-client.ts';
import { RemoteShardHost } from '../../shared/cluster/shard-host.ts';
import { wireError } from '../../shared/cluster/wire.ts';
import { NotFoundError, UnavailableError, ValidationError } from '../../shared/errors.ts';
import { newIndexRecord } from '../../shared/store/store.ts';
import { freePort } from '../../shared/redis-server.ts';

const SECRET = 'client-test-secret-0123456789';
const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function serve(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('node client', () => {
  it('sends a streamed body slower than the answer limit, and counts the limit from its end', async () => {
    let received = 0;
    const url = await serve((req, res) => {
      req.on('data', (c: Buffer) => (received += c.length));
      req.on('end', () => res.end(JSON.stringify({ received })));
    });
    const client = new NodeClient({ n1: url }, SECRET);
    const body = Readable.from(
      (async function* () {
        for (let i = 0; i < 6; i++) {
          await sleep(100);
          yield Buffer.alloc(1000, i);
        }
      })(),
    );
    const answer = await client.json<{ received: number }>('n1', '/upload', { method: 'PUT', body, answerTimeoutMs: 250 });
    expect(answer.received).toBe(6000);
  });

  it('cuts off, naming the node, an answer read whole that is larger than its bound; a streamed one has none', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ filler: 'x'.repeat(5000) }));
    });
    const client = new NodeClient({ n1: url }, SECRET, 4096);
    await expect(client.json('n1', '/internal/metadata')).rejects.toThrow('node n1 answered GET /internal/metadata with more than 4096 bytes');
    let streamed = 0;
    for await (const part of (await client.request('n1', '/internal/metadata')).body) streamed += (part as Buffer).length;
    expect(streamed).toBeGreaterThan(5000);
    expect(await new NodeClient({ n1: url }, SECRET).json('n1', '/internal/metadata')).toEqual({ filler: 'x'.repeat(5000) });
  });

  it('names a node that takes the request and never answers, and one that refuses connections', async () => {
    const url = await serve(() => undefined);
    const client = new NodeClient({ n1: url, n2: `http://127.0.0.1:${await freePort()}` }, SECRET);
    const silent = client.request('n1', '/internal/metadata', { answerTimeoutMs: 200 });
    await expect(silent).rejects.toThrow(UnavailableError);
    await expect(client.request('n1', '/internal/metadata', { answerTimeoutMs: 200 })).rejects.toThrow('node n1 did not answer in 0.2 s');
    await expect(client.request('n2', '/internal/metadata')).rejects.toThrow(/node n2 is unreachable: ECONNREFUSED/);
  });

  it("answers a node's refusal sent before it read the whole body as that node's error, sends no more of it and closes that connection", async () => {
    let closed: Promise<unknown> | undefined;
    const url = await serve((req, res) => {
      closed = new Promise((r) => req.socket.once('close', r));
      res.writeHead(422, { 'content-type': 'application/json' }).end('{"error":[{"message":"no such shard here"}],"kind":"ValidationError"}');
    });
    // The node would keep an idle connection for a minute: only the client can close this one.
    servers[0]!.keepAliveTimeout = 60_000;
    const client = new NodeClient({ n1: url }, SECRET);
    let sent = 0;
    const total = 256 * 1024 * 1024;
    const body = new Readable({
      read() {
        const chunk = Buffer.alloc(64 * 1024);
        sent += chunk.length;
        this.push(sent > total ? null : chunk);
      },
    });
    const err = await client.json('n1', '/internal/restores/x', { method: 'PUT', body }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toBe('node n1: no such shard here');
    expect(sent).toBeLessThan(total);
    await closed;
    body.destroy();
  });

  it('streams an answer of many megabytes as it arrives, and the next request goes through', async () => {
    const url = await serve((req, res) => {
      if (req.url === '/big') {
        res.writeHead(200, { 'x-size': String(64 * 1024 * 1024) });
        let left = 1024;
        const more = () => {
          while (left > 0) {
            left--;
            if (!res.write(Buffer.alloc(64 * 1024, left % 251))) return void res.once('drain', more);
          }
          res.end();
        };
        more();
      } else res.end('{"ok":true}');
    });
    const client = new NodeClient({ n1: url }, SECRET);
    const big = await client.request('n1', '/big');
    expect(big.header('x-size')).toBe(String(64 * 1024 * 1024));
    let received = 0;
    for await (const chunk of big.body) received += (chunk as Buffer).length;
    expect(received).toBe(64 * 1024 * 1024);
    expect(await client.json('n1', '/small')).toEqual({ ok: true });
  });

  it('reads a node of an earlier version (no lineage path, no origin headers) as one that sends its snapshots whole; a missing index is still an error', async () => {
    const snapshot = Buffer.alloc(3 * 4096, 7);
    const url = await serve((req, res) => {
      const route = new URL(req.url!, 'http://x').pathname;
      if (route === '/internal/indexes/Old/shards/0/snapshot') {
        res.writeHead(200, { 'x-shard-size': String(snapshot.length), 'x-shard-docs': '5' }).end(snapshot);
      } else if (route.startsWith('/internal/indexes/Gone/')) {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify(wireError(new NotFoundError('index Gone (uid u-2) is not in node n1\'s metadata: it was deleted or recreated'))));
      } else {
        // What node/app.ts answers for a path it does not know.
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify(wireError(new NotFoundError(`no route for ${req.method} ${route}`))));
      }
    });
    const host = new RemoteShardHost(new NodeClient({ n1: url }, SECRET));
    const old = newIndexRecord('Old', { shards: 1 }, ['n1']);
    expect(await host.lineage(old, 0)).toBeUndefined();
    const copy = await host.snapshot(old, 0, undefined, { lineage: 'a'.repeat(32), generation: '7', chunk: 4096, every: 32 });
    expect(copy).toMatchObject({ size: snapshot.length, docs: 5 });
    expect(copy.origin).toBeUndefined();
    expect(copy.unchanged).toBeUndefined();
    const parts: Buffer[] = [];
    for await (const part of copy.stream()) parts.push(part as Buffer);
    expect(Buffer.concat(parts).equals(snapshot)).toBe(true);
    await expect(host.lineage(newIndexRecord('Gone', { shards: 1 }, ['n1']), 0)).rejects.toThrow(/deleted or recreated/);
  });

  it('sends a request again on a new connection when the node closes a kept-alive one as it goes out (a node restarted); a streamed body is not sent twice', async () => {
    // The node drops every kept-alive connection at its second request, as a node that
    // restarted (or timed the connection out) does to a request that arrives as it closes.
    const seen: string[] = [];
    const url = await serve((req, res) => {
      const socket = req.socket as typeof req.socket & { requests?: number };
      socket.requests = (socket.requests ?? 0) + 1;
      seen.push(`${req.method} ${socket.requests}`);
      if (socket.requests > 1) return socket.destroy();
      req.resume().on('end', () => res.end(JSON.stringify({ ok: true })));
    });
    const client = new NodeClient({ n1: url }, SECRET);
    expect(await client.json('n1', '/first')).toEqual({ ok: true });
    expect(await client.json('n1', '/again', { method: 'POST', json: { a: 1 } })).toEqual({ ok: true });
    expect(seen).toEqual(['GET 1', 'POST 2', 'POST 1']);
    expect(await client.json('n1', '/keeps-its-connection')).toEqual({ ok: true });
    const streamed = client.json('n1', '/streamed', { method: 'POST', body: Readable.from([Buffer.from('once')]) });
    await expect(streamed).rejects.toThrow(/node n1 is unreachable/);
    expect(seen.slice(3)).toEqual(['GET 1', 'POST 2']);
  });

  it('sends the secret only as a bearer token and never repeats it in an error', async () => {
    let auth: string | undefined;
    const url = await serve((req, res) => {
      auth = req.headers.authorization;
      res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":[{"message":"boom"}]}');
    });
    const client = new NodeClient({ n1: url }, SECRET);
    const err = await client.request('n1', '/x').catch((e: Error) => e);
    expect(auth).toBe(`Bearer ${SECRET}`);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toBe('node n1: boom');
    expect((err as Error).message).not.toContain(SECRET);
  });
});
