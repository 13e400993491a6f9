/**
 * A request whose body the route does not read (a GET with a body, a body refused by its
 * declared size or its first bytes) still gets its answer: the API, and a node, read the rest
 * of the body before they answer and close. Closing with the client's bytes still arriving
 * makes the kernel reset the connection, and a client still writing its body then sees
 * ECONNRESET or EPIPE instead of the answer (the fuzz test met this as "GET /metrics with an
 * 86 KB body: read ECONNRESET").
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../shared/redis-server.ts';
import { createTestApi, type TestApi } from '../support/api.ts';
import { startTestNodes, type TestNodes } from '../support/nodes.ts';
import { startTestRedis } from '../support/redis.ts';

let redis: RedisServer;
let t: TestApi;
let port: number;
let nodes: TestNodes;

beforeAll(async () => {
  redis = await startTestRedis();
  t = createTestApi(redis.url, { PORT: '0', HOST: '127.0.0.1', MAX_BODY_BYTES: '65536' });
  port = (await t.api.start()).port;
  nodes = await startTestNodes(['node-1']);
});
afterAll(async () => {
  await nodes.close();
  await t.api.stop();
  await t.close();
  await redis.stop();
});

interface Exchange {
  /** Bytes of the answer that arrived before the client had sent its whole body. */
  early: number;
  answer: string;
  /** How the connection ended: 'closed' in order, or the socket's error. */
  ended: string;
}

/**
 * Send the request line and headers with half the body, wait until the server answers or a
 * second passes, then send the other half, as a client on a slow link would; read until the
 * connection is closed.
 */
function sendInTwoParts(port: number, head: string, body: Buffer): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    let early = 0;
    let sentAll = false;
    let error = '';
    const sendRest = () => {
      if (sentAll) return;
      sentAll = true;
      socket.write(body.subarray(body.length >> 1));
    };
    const second = setTimeout(sendRest, 1000);
    socket.on('data', (chunk: Buffer) => {
      if (!sentAll) early += chunk.length;
      received.push(chunk);
      // Like a client library, keep sending once an answer starts.
      setTimeout(sendRest, 50);
    });
    socket.on('end', sendRest);
    socket.on('error', (err: NodeJS.ErrnoException) => (error ||= err.code ?? err.message));
    socket.on('close', () => {
      clearTimeout(second);
      resolve({ early, answer: Buffer.concat(received).toString('latin1'), ended: error || 'closed' });
    });
    socket.write(head);
    socket.write(body.subarray(0, body.length >> 1));
  });
}

function expectAnsweredInOrder(x: Exchange, status: number): void {
  expect(x.ended, `the connection ended with ${x.ended} after ${x.answer.length} bytes of answer`).toBe('closed');
  expect(x.answer.startsWith(`HTTP/1.1 ${status} `), x.answer.slice(0, 200)).toBe(true);
  expect(x.early, 'answered before the body had arrived').toBe(0);
}

describe('a body the route does not read', () => {
  it.each([
    { what: 'GET /metrics with a body', method: 'GET', path: '/metrics', type: 'text/plain', start: '', size: 200_000, status: 200 },
    { what: 'a backup request over MAX_BODY_BYTES', method: 'POST', path: '/v1/backups/filesystem', type: 'application/json', start: '', size: 100_000, status: 413 },
    // The route reads the first half, refuses its first document and stops reading.
    { what: 'a restore refused at its first document', method: 'POST', path: '/idx/:restore', type: 'application/json', start: '[{"_id": 1, "v": "', size: 600_000, status: 413 },
  ])('$what: the answer arrives whole and the connection ends in order', async ({ method, path, type, start, size, status }) => {
    const body = Buffer.alloc(size, 0x61);
    body.write(start);
    const head = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: ${type}\r\nContent-Length: ${size}\r\n\r\n`;
    const x = await sendInTwoParts(port, head, body);
    expectAnsweredInOrder(x, status);
  });

  it('a node refusing a request without the cluster secret: the 401 arrives whole', async () => {
    const { port: nodePort } = new URL(nodes.nodes[0]!.url);
    const body = Buffer.alloc(200_000, 0x61);
    const head = `POST /internal/indexes/idx/documents HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/x-msgpack\r\nContent-Length: ${body.length}\r\n\r\n`;
    expectAnsweredInOrder(await sendInTwoParts(Number(nodePort), head, body), 401);
  });
});
