/**
 * A real GCS-compatible server for tests: the Cloud Storage emulator that ships inside
 * `firebase-tools` (its StorageEmulator class, registered through EmulatorRegistry.start), on
 * 127.0.0.1, a free port, with one bucket. No Java: the Firebase security-rules runtime (a JAR
 * the CLI would download) is replaced by a stub, which is fine because the JSON API
 * (`/storage/v1`, `/upload/storage/v1`) runs as admin and never consults rules.
 *
 * Two things differ from the stock emulator, both to behave like real GCS:
 * - Buckets are strict. The emulator creates any bucket a request names; GCS answers
 *   404 "The specified bucket does not exist." A thin HTTP front does the same for every
 *   bucket not created here, and answers bucket GETs (`/storage/v1/b/<name>`), which the
 *   emulator does not implement.
 * - Blobs live in a fresh temp directory instead of the shared `$TMPDIR/firebase/storage/blobs`
 *   (which the emulator deletes whole on stop, under any other run using it).
 *
 * It runs in a child process started from this file: EmulatorRegistry is process-global (one
 * storage emulator per process), and the emulator buffers whole objects in memory (uploads
 * up to 130 MB per request), which must not count against the test's own memory checks.
 *
 * Emulator limits worth knowing: a resumable upload must arrive in one PUT (no chunkSize),
 * at most 130 MB per object; ACLs, preconditions and generations are not enforced.
 */
import { fork } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopChild, waitForReady } from './s3-server.ts';

export interface GcsEmulator {
  /** `http://127.0.0.1:<port>`: the value for STORAGE_EMULATOR_HOST / the client's apiEndpoint. */
  host: string;
  bucket: string;
  projectId: string;
  /** Stops the emulator and deletes its blobs. */
  stop(): Promise<void>;
}

export interface StartGcsEmulatorOptions {
  /** Bucket that exists; every other bucket answers 404. Default `shardvault-test`. */
  bucket?: string;
  /** Default `shardvault`. */
  projectId?: string;
}

const THIS_FILE = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(THIS_FILE), '../..');
const CHILD_FLAG = 'SHARDVAULT_GCS_EMULATOR_CHILD';

type ChildMessage = { type: 'ready'; port: number } | { type: 'error'; message: string };

export async function startGcsEmulator(options: StartGcsEmulatorOptions = {}): Promise<GcsEmulator> {
  const bucket = options.bucket ?? 'shardvault-test';
  const projectId = options.projectId ?? 'shardvault';
  const child = fork(THIS_FILE, [JSON.stringify({ bucket, projectId })], {
    cwd: ROOT,
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, [CHILD_FLAG]: '1' },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  const port = await waitForReady(child, 'GCS emulator', 60_000);
  return { host: `http://127.0.0.1:${port}`, bucket, projectId, stop: () => stopChild(child) };
}

// --- child side ---------------------------------------------------------------------------

/** The parts of firebase-tools' (untyped, CommonJS) emulator this file touches. */
interface EmulatorArgs {
  projectId: string;
  host: string;
  port: number;
  rules: { name: string; content: string };
  auto_download: boolean;
}
interface StorageEmulatorInstance {
  args: EmulatorArgs;
  adminStorageLayer: { createBucket(id: string): void };
  getInfo(): { name: string; host: string; port: number };
  getPersistenceTmpDir(): string;
  createRulesManager(rules: unknown): RulesManager;
  start(): Promise<void>;
  stop(): Promise<void>;
}
interface RulesManager {
  start(): Promise<{ errors: unknown[]; warnings: unknown[] }>;
  stop(): Promise<void>;
  getRuleset(): undefined;
}
type RequestHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const BUCKET_IN_PATH = /^\/(?:upload\/|download\/)?(?:storage\/v1\/)?b\/([^/]+)(\/.*)?$/;

async function childMain(): Promise<void> {
  const send = (m: ChildMessage) => process.send?.(m);
  const require = createRequire(import.meta.url);
  const { StorageEmulator } = require('firebase-tools/lib/emulator/storage/index.js') as {
    StorageEmulator: new (args: EmulatorArgs) => StorageEmulatorInstance;
  };
  const { EmulatorRegistry } = require('firebase-tools/lib/emulator/registry.js') as {
    EmulatorRegistry: { start(e: StorageEmulatorInstance): Promise<void>; stop(name: string): Promise<void> };
  };
  const { createApp } = require('firebase-tools/lib/emulator/storage/server.js') as {
    createApp(projectId: string, emulator: StorageEmulatorInstance): Promise<RequestHandler>;
  };

  const { bucket, projectId } = JSON.parse(process.argv[2] ?? '{}') as { bucket: string; projectId: string };
  const blobs = await mkdtemp(path.join(os.tmpdir(), 'shardvault-gcs-emulator-'));
  const buckets = new Set<string>([bucket]);
  let server: http.Server | undefined;

  class Emulator extends StorageEmulator {
    // Called from the base constructor: a private directory instead of the shared default.
    override getPersistenceTmpDir(): string {
      return blobs;
    }

    // No rules runtime (it would download and run a JAR); the JSON API runs as admin.
    override createRulesManager(): RulesManager {
      return {
        start: () => Promise.resolve({ errors: [], warnings: [] }),
        stop: () => Promise.resolve(),
        getRuleset: () => undefined,
      };
    }

    // As the base start(), minus the rules runtime, behind the strict-bucket front, on port 0.
    override async start(): Promise<void> {
      const app = await createApp(this.args.projectId, this);
      server = http.createServer(strictBuckets(app, buckets));
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(0, this.args.host, resolve);
      });
      this.args.port = (server.address() as AddressInfo).port;
    }

    override async stop(): Promise<void> {
      await new Promise<void>((resolve) => {
        if (!server) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await rm(blobs, { recursive: true, force: true });
    }
  }

  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    await EmulatorRegistry.stop('storage').catch(() => undefined);
    await rm(blobs, { recursive: true, force: true });
    process.exit(0);
  };
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'stop') void shutdown();
  });
  process.on('disconnect', () => void shutdown());

  try {
    const emulator = new Emulator({
      projectId,
      host: '127.0.0.1',
      port: 0,
      rules: { name: 'storage.rules', content: '' },
      auto_download: false,
    });
    await EmulatorRegistry.start(emulator);
    // After start: bucket metadata embeds the emulator's registered URL.
    emulator.adminStorageLayer.createBucket(bucket);
    send({ type: 'ready', port: emulator.getInfo().port });
  } catch (err) {
    send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    await shutdown();
  }
}

/**
 * Answers like GCS for buckets that were not created: 404 notFound for anything under
 * `/b/<bucket>/…`, and serves bucket resources (`GET /storage/v1/b/<bucket>`). Buckets are
 * created (`POST /storage/v1/b`, `{name}`) and deleted (`DELETE /storage/v1/b/<bucket>`) here:
 * a deleted bucket answers 404 to everything, as GCS's does, while the emulator keeps its
 * objects (they are there again if it is created again; GCS deletes only empty buckets).
 */
function strictBuckets(app: RequestHandler, buckets: Set<string>): RequestHandler {
  return (req, res) => {
    const pathname = (req.url ?? '/').split('?')[0] ?? '/';
    const json = (status: number, body: unknown) => {
      req.resume();
      res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
      res.end(JSON.stringify(body));
    };
    const resource = (name: string) => ({ kind: 'storage#bucket', id: name, name, location: 'US', storageClass: 'STANDARD' });
    if (pathname === '/storage/v1/b' && req.method === 'POST') {
      const parts: Buffer[] = [];
      req.on('data', (part: Buffer) => parts.push(part));
      req.on('end', () => {
        const { name } = JSON.parse(Buffer.concat(parts).toString() || '{}') as { name?: string };
        if (!name) return json(400, { error: { code: 400, message: 'Required' } });
        buckets.add(name);
        json(200, resource(name));
      });
      return;
    }
    const match = BUCKET_IN_PATH.exec(pathname);
    if (!match?.[1]) return app(req, res);
    const name = decodeURIComponent(match[1]);
    const rest = match[2] ?? '';
    if (!buckets.has(name)) {
      const message = 'The specified bucket does not exist.';
      return json(404, { error: { code: 404, message, errors: [{ message, domain: 'global', reason: 'notFound' }] } });
    }
    if ((rest === '' || rest === '/') && req.method === 'GET') return json(200, resource(name));
    if ((rest === '' || rest === '/') && req.method === 'DELETE') {
      buckets.delete(name);
      req.resume();
      res.writeHead(204);
      return res.end();
    }
    return app(req, res);
  };
}

if (process.env[CHILD_FLAG] === '1' && process.argv[1] === THIS_FILE && process.send) {
  void childMain();
}
