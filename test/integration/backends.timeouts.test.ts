/**
 * A server that goes silent does not hang a backup or a restore: on both cloud backends a
 * request on which nothing has moved for the request timeout (BACKUP_S3_REQUEST_TIMEOUT_SECONDS,
 * BACKUP_GCS_REQUEST_TIMEOUT_SECONDS; 1 s here) is abandoned with a transient error naming the
 * object and the setting, and retried; a transfer that keeps moving is never cut however long
 * it takes. Real servers (s3rver, the Cloud Storage emulator), each behind the fault proxy
 * (test/support/fault-proxy.ts), which parks requests (hold) or stops an answer mid-body
 * (stallBody) and never drops either: only the client's timeout can end them.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../shared/backends/backend.ts';
import { GcsBackend } from '../../shared/backends/gcs.ts';
import { S3Backend } from '../../shared/backends/s3.ts';
import { isTransientError } from '../../shared/backends/retry.ts';
import { UnavailableError } from '../../shared/errors.ts';
import { startConnectProxy, type ConnectProxy } from '../support/connect-proxy.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { startGcsEmulator } from '../support/gcs-emulator.ts';
import { startS3Server } from '../support/s3-server.ts';

const TIMEOUT_MS = 1000;
/** How long a silent request may take to fail: every try's timeout, its backoff, and slack for a loaded machine. */
const BOUND_MS = 12_000;
const RETRY = { attempts: 2, baseMs: 10, maxMs: 50 };

type Req = { method: string; url: string };

/** What differs between the backends: the server, a backend through the proxy, and which requests are which. */
interface Side {
  setting: string;
  start(): Promise<{ target: string; stop(): Promise<void>; make(proxy: FaultProxy, path: string, streamed?: boolean): Backend }>;
  /** The request that carries a write's bytes. */
  isUpload(r: Req, key: string): boolean;
  /** The request that downloads an object's bytes. */
  isDownload(r: Req, key: string): boolean;
  isList(r: Req): boolean;
  /** The request that asks whether an object exists. */
  isLookup(r: Req, key: string): boolean;
}

const SIDES: Record<'s3' | 'gcs', Side> = {
  s3: {
    setting: 'BACKUP_S3_REQUEST_TIMEOUT_SECONDS',
    async start() {
      const server = await startS3Server();
      return {
        target: server.endpoint,
        stop: () => server.stop(),
        make: (proxy, path) =>
          new S3Backend({
            bucket: server.bucket,
            path,
            endpoint: proxy.host,
            useSSL: false,
            region: server.region,
            accessKeyId: server.accessKeyId,
            secretAccessKey: server.secretAccessKey,
            requestTimeoutMs: TIMEOUT_MS,
            uploadMaxAttempts: RETRY.attempts,
            retry: RETRY,
          }),
      };
    },
    isUpload: (r, key) => r.method === 'PUT' && r.url.split('?')[0]!.endsWith(`/${key}`),
    isDownload: (r, key) => r.method === 'GET' && r.url.split('?')[0]!.endsWith(`/${key}`),
    isList: (r) => r.method === 'GET' && r.url.includes('list-type=2'),
    isLookup: (r, key) => r.method === 'HEAD' && r.url.split('?')[0]!.endsWith(`/${key}`),
  },
  gcs: {
    setting: 'BACKUP_GCS_REQUEST_TIMEOUT_SECONDS',
    async start() {
      const emulator = await startGcsEmulator();
      return {
        target: emulator.host,
        stop: () => emulator.stop(),
        // streamed: every write's body is streamed, none held (and retried) first.
        make: (proxy, path, streamed) =>
          new GcsBackend({
            ...(streamed ? { replayBytes: 0 } : {}),
            bucket: emulator.bucket,
            path,
            projectId: emulator.projectId,
            emulatorHost: proxy.url,
            requestTimeoutMs: TIMEOUT_MS,
            retry: RETRY,
          }),
      };
    },
    // The upload's PUT carries the bytes (the POST before it starts the session).
    isUpload: (r, key) => r.method === 'PUT' && r.url.startsWith('/upload/') && decodeURIComponent(r.url).includes(`/${key}&`),
    isDownload: (r, key) => r.method === 'GET' && decodeURIComponent(r.url.split('?')[0]!).endsWith(`/${key}`) && r.url.includes('alt=media'),
    isList: (r) => r.method === 'GET' && /\/o\?/.test(r.url) && r.url.includes('prefix='),
    isLookup: (r, key) => r.method === 'GET' && decodeURIComponent(r.url.split('?')[0]!).endsWith(`/${key}`) && !r.url.includes('alt=media'),
  },
};

/** A body of `chunks` × `size` random bytes, one chunk every `everyMs`: slow, but never silent for long. */
function trickle(chunks: number, size: number, everyMs: number): Readable {
  return Readable.from(
    (async function* () {
      for (let i = 0; i < chunks; i++) {
        if (i > 0) await sleep(everyMs);
        yield randomBytes(size);
      }
    })(),
  );
}

async function drain(stream: Readable): Promise<number> {
  let bytes = 0;
  for await (const chunk of stream) bytes += (chunk as Buffer).length;
  return bytes;
}

/** The rejection of `call`, and how long it took to come. */
async function failure(call: Promise<unknown>): Promise<{ err: unknown; ms: number }> {
  const t0 = Date.now();
  try {
    await call;
  } catch (err) {
    return { err, ms: Date.now() - t0 };
  }
  throw new Error('expected the call to fail');
}

describe.each(Object.entries(SIDES))('%s: a request on which nothing moves is abandoned after the request timeout', (name, side) => {
  let server: Awaited<ReturnType<Side['start']>>;
  let proxy: FaultProxy;
  let backend: Backend;
  const path = `timeouts-${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    server = await side.start();
    proxy = await startFaultProxy({ target: server.target, seed: 1 });
    backend = server.make(proxy, path);
  }, 60_000);

  afterAll(async () => {
    (backend as { close?: () => void } | undefined)?.close?.();
    await proxy?.close();
    await server?.stop();
  });

  /** The error a silent call fails with: transient, naming the object (or prefix) and the setting. */
  function expectAbandoned(err: unknown, key: string): void {
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toContain(key);
    expect((err as Error).message).toContain(side.setting);
  }

  it('a write whose upload is never answered fails within the bound, and leaves no object', async () => {
    const key = 'silent/write.bin';
    const hold = proxy.hold((r) => side.isUpload(r, key));
    try {
      const { err, ms } = await failure(backend.write(key, Readable.from([randomBytes(64 * 1024)])));
      expectAbandoned(err, key);
      expect(ms).toBeLessThan(BOUND_MS);
      expect(hold.held()).toBe(RETRY.attempts);
      expect(await backend.list('silent/')).toEqual([]);
    } finally {
      hold.drop(); // their client gave up on them: forwarded now, they would still be complete uploads
    }
  });

  it('a write whose first upload goes unanswered is retried, and succeeds once the server answers', async () => {
    const key = 'silent/retried.bin';
    let seen = 0;
    const hold = proxy.hold((r) => side.isUpload(r, key) && seen++ === 0);
    try {
      await expect(backend.write(key, Readable.from([randomBytes(64 * 1024)]))).resolves.toEqual({ bytes: 64 * 1024 });
      expect(hold.held()).toBe(1);
    } finally {
      hold.drop();
    }
    expect(await backend.list('silent/')).toEqual([{ key: 'silent/retried.bin', size: 64 * 1024 }]);
  });

  it('a read whose answer stops mid-body fails within the bound', async () => {
    const key = 'silent/read.bin';
    await backend.write(key, Readable.from([randomBytes(512 * 1024)]));
    const stall = proxy.stallBody((r) => side.isDownload(r, key));
    try {
      const { err, ms } = await failure(backend.read(key).then(drain));
      expectAbandoned(err, key);
      expect(isTransientError(err)).toBe(true);
      expect(ms).toBeLessThan(BOUND_MS);
      expect(stall.stalled()).toBe(1);
    } finally {
      stall.stop();
    }
    expect(await backend.read(key).then(drain)).toBe(512 * 1024);
  });

  it('a read whose answer never starts fails within the bound, after its retries', async () => {
    const key = 'silent/unanswered.bin';
    await backend.write(key, Readable.from([randomBytes(64 * 1024)]));
    const hold = proxy.hold((r) => side.isDownload(r, key));
    try {
      const { err, ms } = await failure(backend.read(key).then(drain));
      expectAbandoned(err, key);
      expect(isTransientError(err)).toBe(true);
      expect(ms).toBeLessThan(BOUND_MS);
      expect(hold.held()).toBe(RETRY.attempts);
    } finally {
      hold.drop();
    }
    expect(await backend.read(key).then(drain)).toBe(64 * 1024);
  });

  // A reader that stops for longer than the timeout, once the socket's buffers are full, leaves
  // the socket idle: that is the reader's pause, not the server's silence.
  it('a read whose reader stops for longer than the timeout is not cut', async () => {
    const key = 'slow/reader.bin';
    await backend.write(key, Readable.from([randomBytes(4 * 1024 * 1024)]));
    let bytes = 0;
    let pauses = 0;
    for await (const chunk of await backend.read(key)) {
      bytes += (chunk as Buffer).length;
      if (pauses < 2 && bytes > (pauses + 1) * 1024 * 1024) {
        pauses++;
        await sleep(1500);
      }
    }
    expect(bytes).toBe(4 * 1024 * 1024);
  });

  it('a list and an exists that are never answered fail within the bound', async () => {
    for (const [what, predicate, call] of [
      ['list', (r: Req) => side.isList(r), () => backend.list('silent/')],
      ['exists', (r: Req) => side.isLookup(r, 'silent/retried.bin'), () => backend.exists('silent/retried.bin')],
    ] as const) {
      const hold = proxy.hold(predicate);
      try {
        const { err, ms } = await failure(call());
        expectAbandoned(err, what === 'list' ? 'silent/' : 'silent/retried.bin');
        expect(ms, what).toBeLessThan(BOUND_MS);
        expect(hold.held(), what).toBe(RETRY.attempts);
      } finally {
        hold.release();
      }
    }
  });

  it('an upload slower than the timeout, but moving, is not cut', async () => {
    // 8 chunks 400 ms apart: over 3 s in all, never 1 s without a byte. On GCS the body is
    // streamed as it comes (no write held first); S3 holds a part (5 MiB) before it sends it,
    // so there the upload starts only once this body has ended.
    const slow = server.make(proxy, path, true);
    const t0 = Date.now();
    await expect(slow.write('slow/upload.bin', trickle(8, 32 * 1024, 400))).resolves.toEqual({ bytes: 8 * 32 * 1024 });
    expect(Date.now() - t0).toBeGreaterThan(2800);
    expect(await slow.read('slow/upload.bin').then(drain)).toBe(8 * 32 * 1024);
  });
});

describe('gcs behind HTTP_PROXY: an upload on which nothing moves is abandoned through the proxy too', () => {
  let emulator: Awaited<ReturnType<typeof startGcsEmulator>>;
  let proxy: FaultProxy;
  let forward: ConnectProxy;
  let backend: GcsBackend;
  const saved = process.env.HTTP_PROXY;

  beforeAll(async () => {
    emulator = await startGcsEmulator();
    proxy = await startFaultProxy({ target: emulator.host, seed: 2 });
    // The client tunnels every request through the forward proxy (CONNECT) to the fault proxy.
    forward = await startConnectProxy();
    process.env.HTTP_PROXY = forward.url;
    backend = new GcsBackend({ bucket: emulator.bucket, path: 'proxied', projectId: emulator.projectId, emulatorHost: proxy.url, requestTimeoutMs: TIMEOUT_MS, retry: RETRY });
  }, 60_000);

  afterAll(async () => {
    if (saved === undefined) delete process.env.HTTP_PROXY;
    else process.env.HTTP_PROXY = saved;
    await forward?.close();
    await proxy?.close();
    await emulator?.stop();
  });

  it('a write whose upload is never answered fails within the bound, naming the object and the setting', async () => {
    const key = 'silent/write.bin';
    const hold = proxy.hold((r) => SIDES.gcs.isUpload(r, key));
    try {
      const { err, ms } = await failure(backend.write(key, Readable.from([randomBytes(64 * 1024)])));
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as Error).message).toContain(key);
      expect((err as Error).message).toContain(SIDES.gcs.setting);
      expect(ms).toBeLessThan(BOUND_MS);
      expect(hold.held()).toBe(RETRY.attempts);
    } finally {
      hold.drop();
    }
    // The uploads were tunnelled, the other requests forwarded: none went around the proxy.
    expect(forward.tunnels(), 'uploads through the forward proxy').toBeGreaterThanOrEqual(RETRY.attempts);
    expect(forward.forwarded(), 'other requests through the forward proxy').toBeGreaterThan(0);
    await expect(backend.write('answered.bin', Readable.from([randomBytes(1024)]))).resolves.toEqual({ bytes: 1024 });
  });

  it('a read is tunnelled through the proxy too, and one whose answer stops mid-body fails within the bound', async () => {
    const key = 'proxied/read.bin';
    await backend.write(key, Readable.from([randomBytes(256 * 1024)]));
    const tunnels = forward.tunnels();
    expect(await drain(await backend.read(key))).toBe(256 * 1024);
    expect(forward.tunnels(), 'the download through the forward proxy').toBeGreaterThan(tunnels);
    const stall = proxy.stallBody((r) => SIDES.gcs.isDownload(r, key));
    try {
      const { err, ms } = await failure(backend.read(key).then(drain));
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as Error).message).toContain(SIDES.gcs.setting);
      expect(ms).toBeLessThan(BOUND_MS);
      expect(stall.stalled()).toBe(1);
    } finally {
      stall.stop();
    }
  });
});
