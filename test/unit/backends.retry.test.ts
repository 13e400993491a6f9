/**
 * withRetry and isTransientError against a real local HTTP server that fails the way storage
 * services do (5xx, 429, 403, reset connections), called through fetch, node:http and the real
 * S3 and GCS clients — no mocks.
 */
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Storage } from '@google-cloud/storage';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CancelledError,
  ConfigError,
  ConflictError,
  IntegrityError,
  NotFoundError,
  PermanentBackendError,
  retryCanHelp,
  UnavailableError,
  ValidationError,
} from '../../shared/errors.ts';
import { httpStatusOf } from '../../api/errors.ts';
import { GcsBackend, withUploadStatus } from '../../shared/backends/gcs.ts';
import { describeError, httpStatus, isTransientError, withRetry } from '../../shared/backends/retry.ts';
import { S3Backend } from '../../shared/backends/s3.ts';

/**
 * One scripted answer: an HTTP response, `reset` to destroy the connection unanswered, or
 * `hang` to leave it unanswered (until the server closes).
 */
type Answer = { status: number; body?: string; type?: string } | 'reset' | 'hang';

/** Answers requests from a script, in order; once the script runs out, every answer is `fallback`. */
class FlakyServer {
  hits = 0;
  private script: Answer[] = [];
  private fallback: Answer = { status: 200, body: 'ok' };
  private readonly server = http.createServer((req, res) => {
    this.hits++;
    req.resume();
    const answer = this.script.shift() ?? this.fallback;
    if (answer === 'reset') return void req.socket.destroy();
    if (answer === 'hang') return;
    res.writeHead(answer.status, { 'content-type': answer.type ?? 'text/plain' });
    res.end(answer.body ?? '');
  });
  url = '';

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  plan(script: Answer[], fallback: Answer = { status: 200, body: 'ok' }): void {
    this.script = [...script];
    this.fallback = fallback;
    this.hits = 0;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** fetch, failing like the SDKs do: an error carrying the HTTP status. */
async function get(url: string): Promise<string> {
  const res = await fetch(url);
  const text = await res.text();
  if (!res.ok) throw Object.assign(new Error(`HTTP ${res.status}: ${text}`), { status: res.status });
  return text;
}

const s3Error = (code: string, message = code) =>
  `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message><RequestId>r1</RequestId></Error>`;
const xml = (status: number, body: string): Answer => ({ status, body, type: 'application/xml' });
const json = (status: number, body: unknown): Answer => ({ status, body: JSON.stringify(body), type: 'application/json' });
const gcsError = (code: number, message: string) => json(code, { error: { code, message, errors: [{ message, reason: 'x' }] } });

const fast = { baseMs: 5, maxMs: 20 };

describe('withRetry', () => {
  const server = new FlakyServer();
  beforeAll(() => server.start());
  afterAll(() => server.close());

  it('retries transient HTTP failures (503, 429, 500) until one succeeds', async () => {
    server.plan([{ status: 503 }, { status: 429 }, { status: 500 }]);
    const attempts: number[] = [];
    const body = await withRetry((n) => (attempts.push(n), get(server.url)), { attempts: 5, ...fast });
    expect(body).toBe('ok');
    expect(attempts).toEqual([1, 2, 3, 4]);
    expect(server.hits).toBe(4);
  });

  it('retries a connection the server resets', async () => {
    server.plan(['reset', 'reset']);
    expect(await withRetry(() => get(server.url), { attempts: 3, ...fast })).toBe('ok');
    expect(server.hits).toBe(3);
  });

  it('rethrows a permanent failure (403) at once', async () => {
    server.plan([], { status: 403, body: 'AccessDenied' });
    const err = await withRetry(() => get(server.url), { attempts: 5, ...fast }).catch((e: unknown) => e);
    expect(httpStatus(err)).toBe(403);
    expect(server.hits).toBe(1);
  });

  it('gives up after `attempts` and rethrows the last error unchanged', async () => {
    server.plan([{ status: 502, body: 'first' }, { status: 502, body: 'second' }], { status: 503, body: 'last' });
    const err = await withRetry(() => get(server.url), { attempts: 3, ...fast }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('HTTP 503: last');
    expect(server.hits).toBe(3);
  });

  it('waits a random time below the doubling ceiling, capped at maxMs (full jitter)', async () => {
    server.plan([], { status: 503 });
    const started = Date.now();
    await withRetry(() => get(server.url), { attempts: 5, baseMs: 40, maxMs: 60 }).catch(() => undefined);
    // Ceilings 40, 60, 60, 60: at most 220 ms of sleeping in total.
    expect(Date.now() - started).toBeLessThan(220 + 400);
    expect(server.hits).toBe(5);
  });

  it('an abort during the backoff rejects with CancelledError right away', async () => {
    server.plan([], { status: 503 });
    const controller = new AbortController();
    const started = Date.now();
    const pending = withRetry(() => get(server.url), { attempts: 10, baseMs: 60_000, maxMs: 60_000, signal: controller.signal });
    setTimeout(() => controller.abort(new Error('backup cancelled by user')), 100);
    const err = await pending.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CancelledError);
    expect((err as Error).message).toMatch(/cancelled: backup cancelled by user/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('an already-aborted signal never calls fn', async () => {
    let calls = 0;
    await expect(withRetry(async () => ++calls, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(CancelledError);
    expect(calls).toBe(0);
  });

  it('logs each retry at warn with the cause, never the payload', async () => {
    server.plan([{ status: 503, body: 'busy' }]);
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        cb();
      },
    });
    await withRetry(() => get(server.url), { ...fast, logger: pino({ level: 'warn' }, sink), label: 'test list' });
    await new Promise((r) => setImmediate(r));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, attempt: 1, msg: 'test list failed with a transient error; retrying' });
    expect(lines[0]!.error).toMatch(/HTTP 503/);
  });
});

describe('isTransientError', () => {
  const server = new FlakyServer();
  beforeAll(() => server.start());
  afterAll(() => server.close());

  const s3 = () =>
    new S3Client({
      endpoint: server.url,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'not-a-real-secret' },
      maxAttempts: 1,
    });
  const s3Fails = async (answer: Answer) => {
    server.plan([], answer);
    const client = s3();
    try {
      return await client.send(new ListObjectsV2Command({ Bucket: 'b' })).then(() => undefined, (e: unknown) => e);
    } finally {
      client.destroy();
    }
  };
  const gcsFails = async (answer: Answer) => {
    server.plan([], answer);
    const storage = new Storage({ apiEndpoint: server.url, projectId: 'p', retryOptions: { autoRetry: false } });
    return storage.bucket('b').getFiles({ autoPaginate: false }).then(() => undefined, (e: unknown) => e);
  };

  it('classifies real S3 SDK errors', async () => {
    expect(isTransientError(await s3Fails(xml(503, s3Error('SlowDown'))))).toBe(true);
    expect(isTransientError(await s3Fails(xml(500, s3Error('InternalError'))))).toBe(true);
    expect(isTransientError(await s3Fails(xml(404, s3Error('NoSuchBucket'))))).toBe(false);
    expect(isTransientError(await s3Fails(xml(403, s3Error('AccessDenied'))))).toBe(false);
    expect(isTransientError(await s3Fails(xml(403, s3Error('InvalidAccessKeyId'))))).toBe(false);
    expect(isTransientError(await s3Fails(xml(400, s3Error('BadDigest'))))).toBe(false);
    expect(isTransientError(await s3Fails('reset'))).toBe(true);
  });

  it('classifies real GCS client errors', async () => {
    expect(isTransientError(await gcsFails(gcsError(429, 'rate limit')))).toBe(true);
    expect(isTransientError(await gcsFails(gcsError(503, 'backend error')))).toBe(true);
    expect(isTransientError(await gcsFails(gcsError(403, 'forbidden')))).toBe(false);
    expect(isTransientError(await gcsFails(gcsError(404, 'The specified bucket does not exist.')))).toBe(false);
  });

  it('classifies network failures from fetch and node:http', async () => {
    server.plan(['reset']);
    const fetchErr = await fetch(server.url).catch((e: unknown) => e);
    expect(isTransientError(fetchErr)).toBe(true); // TypeError('fetch failed') with the socket error as cause

    server.plan(['reset']);
    const hangUp = await new Promise((resolve) => http.get(server.url, resolve).on('error', resolve));
    expect((hangUp as Error).message).toBe('socket hang up');
    expect(isTransientError(hangUp)).toBe(true);

    // A port just closed: another test's server may take it before the fetch (the tests run in
    // parallel), in which case the fetch is answered and another closed port is tried.
    let refused: unknown;
    for (let tries = 0; tries < 5 && !(refused instanceof Error); tries++) {
      const closed = new FlakyServer();
      await closed.start();
      await closed.close();
      refused = await fetch(closed.url).then(
        async (res) => void (await res.body?.cancel()),
        (e: unknown) => e,
      );
    }
    expect(isTransientError(refused)).toBe(true); // ECONNREFUSED: the server may be restarting

    // A request that times out (the server never answers it).
    server.plan(['hang']);
    expect(isTransientError(await fetch(server.url, { signal: AbortSignal.timeout(50) }).catch((e: unknown) => e))).toBe(true);
  });

  it("classifies shardvault's own errors", () => {
    expect(isTransientError(new UnavailableError('redis away'))).toBe(true);
    for (const err of [
      new ValidationError('bad'),
      new IntegrityError('checksum mismatch'),
      new NotFoundError('gone'),
      new PermanentBackendError('s3 bucket "x" does not exist'),
      new CancelledError('cancelled'),
      new ConflictError('id already used'),
      new ConfigError('BACKUP_S3_BUCKET: missing'),
    ]) {
      expect(isTransientError(err), err.name).toBe(false);
      // A worker fails such a job at once instead of retrying it.
      expect(retryCanHelp(err), err.name).toBe(false);
    }
    expect(retryCanHelp(new UnavailableError('redis away'))).toBe(true);
    // An error of unknown kind (a library's) may pass: jobs retry it per the catalog.
    expect(retryCanHelp(new Error('socket closed'))).toBe(true);
    expect(isTransientError(Object.assign(new Error('stream aborted'), { name: 'AbortError' }))).toBe(false);
    expect(isTransientError(new Error('something nobody recognises'))).toBe(false);
    expect(isTransientError(undefined)).toBe(false);
  });

  it('PermanentBackendError is a 422 ShardvaultError whose message is the cause', () => {
    const err = new PermanentBackendError('s3 bucket "x" does not exist');
    expect(httpStatusOf(err)).toBe(422);
    expect(err.name).toBe('PermanentBackendError');
    expect(describeError(err)).toBe('PermanentBackendError: s3 bucket "x" does not exist');
  });
});

describe('backends retry what can be retried', () => {
  const server = new FlakyServer();
  beforeAll(() => server.start());
  afterAll(() => server.close());
  afterEach(() => server.plan([]));

  const s3Backend = () =>
    new S3Backend({
      bucket: 'b',
      path: 'base',
      endpoint: server.url,
      useSSL: false,
      region: 'us-east-1',
      accessKeyId: 'AKIDEXAMPLE',
      secretAccessKey: 'not-a-real-secret',
      retry: { attempts: 4, ...fast },
    });
  const gcsBackend = () => new GcsBackend({ bucket: 'b', path: 'base', emulatorHost: server.url, retry: { attempts: 4, ...fast } });
  const listing = xml(
    200,
    '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
      '<Name>b</Name><Prefix>base/p/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>' +
      '<Contents><Key>base/p/a</Key><Size>3</Size></Contents></ListBucketResult>',
  );

  it('s3 list survives throttling and a reset connection', async () => {
    server.plan([xml(503, s3Error('SlowDown')), 'reset', xml(500, s3Error('InternalError'))], listing);
    const backend = s3Backend();
    expect(await backend.list('p/')).toEqual([{ key: 'p/a', size: 3 }]);
    expect(server.hits).toBe(4);
    backend.close();
  });

  it('s3 list fails for good, without retrying, on a missing bucket', async () => {
    server.plan([], xml(404, s3Error('NoSuchBucket', 'The specified bucket does not exist')));
    const backend = s3Backend();
    await expect(backend.list('p/')).rejects.toThrow(new PermanentBackendError(`s3 bucket "b" does not exist (${server.url})`));
    expect(server.hits).toBe(1);
    backend.close();
  });

  it('s3 answers UnavailableError once transient failures outlast the attempts', async () => {
    server.plan([], xml(503, s3Error('SlowDown', 'Please reduce your request rate.')));
    const backend = s3Backend();
    const err = await backend.list('p/').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toBe(
      's3 list p/ (s3://b/base/p/) failed: SlowDown HTTP 503: Please reduce your request rate.',
    );
    expect(server.hits).toBe(4);
    // HEAD answers carry no body, so the code is unknown; the status still says "try later".
    server.plan([], xml(503, ''));
    await expect(backend.exists('p/a')).rejects.toBeInstanceOf(UnavailableError);
    expect(server.hits).toBe(4);
    backend.close();
  });

  it('gcs list and exists survive 429/503', async () => {
    server.plan([gcsError(429, 'slow down'), gcsError(503, 'try again')], json(200, {
      kind: 'storage#objects',
      items: [{ name: 'base/p/a', size: '3', bucket: 'b' }],
    }));
    const backend = gcsBackend();
    expect(await backend.list('p/')).toEqual([{ key: 'p/a', size: 3 }]);
    expect(server.hits).toBe(3);

    server.plan([gcsError(503, 'try again')], json(200, { name: 'base/p/a', bucket: 'b', size: '3' }));
    expect(await backend.exists('p/a')).toBe(true);
    expect(server.hits).toBe(2);
  });

  it('gcs read retries its media request until the answer starts (a reset, a 503)', async () => {
    const metadata = json(200, { name: 'base/p/a', bucket: 'b', size: '3', generation: '7' });
    server.plan([metadata, 'reset', gcsError(503, 'try again')], { status: 200, body: 'abc' });
    const backend = gcsBackend();
    const chunks: Buffer[] = [];
    for await (const chunk of await backend.read('p/a')) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('abc');
    expect(server.hits).toBe(4);
  });

  it("gcs: the resumable upload's 'Retry limit exceeded - status: N' is classified by N", () => {
    // With its retries off, the upload rejects a 5xx with a bare Error naming the status only in its message.
    expect(isTransientError(new Error('Retry limit exceeded - status: 503'))).toBe(false);
    expect(isTransientError(withUploadStatus(new Error('Retry limit exceeded - status: 503')))).toBe(true);
    expect(isTransientError(withUploadStatus(new Error('Retry total time limit exceeded - status: 500')))).toBe(true);
    expect(isTransientError(withUploadStatus(new Error('Retry limit exceeded - status: 403')))).toBe(false);
    const other = new Error('something else');
    expect(withUploadStatus(other)).toBe(other);
  });

  it('gcs read of a missing object is NotFoundError at once; a refused one is permanent', async () => {
    server.plan([], gcsError(404, 'No such object: b/base/p/zzz'));
    const backend = gcsBackend();
    await expect(backend.read('p/zzz')).rejects.toBeInstanceOf(NotFoundError);
    expect(server.hits).toBe(1);

    server.plan([], gcsError(403, 'caller does not have storage.objects.list access'));
    const err = await backend.list('p/').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentBackendError);
    expect((err as Error).message).toMatch(/^gcs list p\/ was refused for bucket "b" \(HTTP 403/);
    expect(server.hits).toBe(1);
  });
});
