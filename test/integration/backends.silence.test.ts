/**
 * The silenced agent (shared/backends/silence.ts) under Node's keep-alive: a server that hints
 * `Keep-Alive: timeout=N` makes Node's agent shorten a free socket's timeout to N − 1 s, and a
 * request that reuses the socket keeps that shortened timeout unless the agent resets it — a
 * GCS upload then failed as "nothing moved for 120 s" after a few seconds of waiting on a loaded
 * machine (the emulator hints 5 s). A real HTTP server on loopback.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { silenceAgent } from '../../shared/backends/silence.ts';

let server: http.Server;
let url: string;

beforeAll(async () => {
  // Answers at once, or after ?wait=ms; hints that it keeps an idle connection for 2 s.
  server = http.createServer((req, res) => {
    const wait = Number(new URL(req.url!, 'http://x').searchParams.get('wait') ?? 0);
    setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain', 'keep-alive': 'timeout=2' }).end('ok'), wait);
  });
  server.keepAliveTimeout = 2000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function get(path: string, agent: http.Agent): Promise<{ body: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}${path}`, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ body, reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

it("a reused socket waits the agent's whole timeout for an answer, not the idle time the server hinted", async () => {
  const agent = silenceAgent('http:', 4000);
  try {
    expect(await get('/', agent)).toEqual({ body: 'ok', reused: false });
    await sleep(50);
    // The socket is free now, its timeout cut to 1 s by the hint; reused, it must wait up to 4 s.
    expect(await get('/?wait=2000', agent)).toEqual({ body: 'ok', reused: true });
  } finally {
    agent.destroy();
  }
}, 20_000);

it('a reused socket on which nothing moves is still abandoned after the timeout', async () => {
  const agent = silenceAgent('http:', 1000);
  try {
    await get('/', agent);
    await sleep(50);
    const t0 = Date.now();
    const err = await get('/?wait=3000', agent).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/nothing moved for 1 s/);
    expect(Date.now() - t0).toBeLessThan(2500);
  } finally {
    agent.destroy();
  }
}, 20_000);
