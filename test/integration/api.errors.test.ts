import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../../shared/redis-server.ts';
import { createTestApi, type TestApi } from '../support/api.ts';
import { startTestRedis } from '../support/redis.ts';

let redis: RedisServer;
let open: TestApi;
let secured: TestApi;

beforeAll(async () => {
  redis = await startTestRedis();
  open = createTestApi(redis.url, { MAX_BODY_BYTES: '2048' });
  secured = createTestApi(redis.url, { AUTHENTICATION_APIKEY_ENABLED: 'true', AUTHENTICATION_APIKEY_ALLOWED_KEYS: 'k-one,k-two' });
});
afterAll(async () => {
  await open.close();
  await secured.close();
  await redis.stop();
});

function expectEnvelope(body: unknown): string {
  expect(body).toEqual({ error: [{ message: expect.any(String) }] });
  const message = (body as { error: { message: string }[] }).error[0]!.message;
  expect(message).not.toMatch(/\n\s+at /); // no stack traces
  return message;
}

describe('errors', () => {
  it('answers malformed JSON with 400 in the envelope', async () => {
    const res = await open.call('PUT', '/idx/1', '{"a": ');
    expect(res.status).toBe(400);
    expect(expectEnvelope(await res.json())).toMatch(/^malformed JSON body/);
  });

  it('answers an oversized body with 413, declared or streamed', async () => {
    const big = JSON.stringify({ a: 'x'.repeat(5000) });
    const res = await open.call('PUT', '/idx/1', big);
    expect(res.status).toBe(413);
    expectEnvelope(await res.json());
    const chunked = await open.api.app.request('/idx/1', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode(big)); c.close(); } }),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    // A declared length is read in one go; one that understates the body is not believed.
    const understated = await open.api.app.request('/idx/1', {
      method: 'PUT',
      headers: { 'content-type': 'application/json', 'content-length': '12' },
      body: big,
    });
    expect(understated.status).toBe(413);
    expect((await open.call('GET', '/idx/:info')).status).toBe(404);
  });

  it('refuses bodies that are not JSON', async () => {
    const res = await open.call('PUT', '/idx/1', '<a/>', { 'content-type': 'application/xml' });
    expect(res.status).toBe(400);
    expect(expectEnvelope(await res.json())).toMatch(/expected a JSON body/);
  });

  it('answers unknown routes and indexes with 404 in the envelope', async () => {
    const res = await open.call('GET', '/v1/nothing/here/at/all');
    expect(res.status).toBe(404);
    expectEnvelope(await res.json());
    const idx = await open.call('GET', '/missing/:schema');
    expect(idx.status).toBe(404);
    expect(expectEnvelope(await idx.json())).toBe('index "missing" not found');
  });
});

describe('API-key auth', () => {
  it('requires a valid bearer key on every endpoint but health', async () => {
    for (const [method, path] of [['GET', '/v1/schema'], ['GET', '/v1/nodes'], ['GET', '/v1/meta'], ['PUT', '/idx/1'], ['GET', '/idx/:info'], ['GET', '/v1/objects']]) {
      const none = await secured.call(method!, path!, method === 'PUT' ? { a: 1 } : undefined);
      expect(none.status, `${method} ${path}`).toBe(401);
      expectEnvelope(await none.json());
      const wrong = await secured.call(method!, path!, undefined, { authorization: 'Bearer nope' });
      expect(wrong.status).toBe(401);
    }
    expect((await secured.call('GET', '/v1/.well-known/live')).status).toBe(200);
    expect((await secured.call('GET', '/v1/.well-known/ready')).status).toBe(200);
    expect((await secured.call('GET', '/v1/schema', undefined, { authorization: 'Bearer k-two' })).status).toBe(200);
  });
});
