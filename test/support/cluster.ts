/**
 * A shardvault cluster as real processes, for end-to-end tests: its own private Redis, an API
 * (`node --import tsx api/main.ts`) and any number of workers (`worker/main.ts`, with package.json's
 * `config.workerNodeFlags`), all over one
 * DATA_DIR and one backup backend. Processes are spawned as `node` directly (spawnNode), so a
 * SIGKILL reaches the process meant.
 *
 * The backend is a parameter (`backendEnv`): the filesystem by default; the cloud-backend
 * tests pass the S3/GCS variables of their servers and run the same scenarios.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../shared/redis-server.ts';
import { spawnNode, WORKER_NODE_FLAGS, type NodeProcess } from './process.ts';
import { startTestRedis, type TestRedis } from './redis.ts';

export interface ClusterOptions {
  /** Names the cluster in failure messages. */
  name: string;
  dataDir: string;
  nodes: string[];
  /** BACKUP_* variables of the backend under test (BACKUP_FILESYSTEM_PATH at least). */
  backendEnv: Record<string, string>;
  /** Workers to start (default 2); 0 for an API-only cluster. */
  workers?: number;
  /** Extra environment for every process. */
  env?: Record<string, string>;
  /** Run Redis with an append-only file, so `redis.halt()` + `redis.restart()` keeps its data. */
  redisAppendonly?: boolean;
  /** LOG_LEVEL of the API process (default warn). */
  apiLogLevel?: string;
}

export interface HttpAnswer {
  status: number;
  json(): Promise<unknown>;
}

/** One job line a worker logged (`job started`, `job completed`, …). */
export interface JobLogLine {
  job: string;
  name: string;
  msg: string;
  attempt?: number;
}

export interface Cluster {
  name: string;
  url: string;
  /** The API's gRPC health port (grpc.health.v1.Health), for Weaviate's clients. */
  grpcPort: number;
  redis: TestRedis;
  dataDir: string;
  nodes: string[];
  api: NodeProcess;
  workers: NodeProcess[];
  /** HTTP call to the API; bodies are JSON. A call that takes longer than `timeoutMs` rejects (TimeoutError). */
  call(method: string, path: string, body?: unknown, options?: { headers?: Record<string, string>; timeoutMs?: number }): Promise<HttpAnswer>;
  startWorker(env?: Record<string, string>): Promise<NodeProcess>;
  /** The job lines a process logged so far. */
  jobLines(proc: NodeProcess): JobLogLine[];
  /** A Redis client on this cluster's Redis (closed by stop). */
  redisClient(): Redis;
  stop(): Promise<void>;
}

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const redis = await startTestRedis({ appendonly: options.redisAppendonly });
  const port = await freePort();
  fs.mkdirSync(options.dataDir, { recursive: true });
  const env = {
    REDIS_URL: redis.url,
    DATA_DIR: options.dataDir,
    CLUSTER_NODES: options.nodes.join(','),
    WORKER_SHUTDOWN_SECONDS: '5',
    ...options.backendEnv,
    ...options.env,
  };
  const clients: Redis[] = [];
  const workers: NodeProcess[] = [];
  const grpcPort = await freePort();
  const api = spawnNode('api/main.ts', [], { ...env, PORT: String(port), GRPC_PORT: String(grpcPort), HOST: '127.0.0.1', LOG_LEVEL: options.apiLogLevel ?? 'warn' });
  const url = `http://127.0.0.1:${port}`;

  const startWorker = async (extra: Record<string, string> = {}): Promise<NodeProcess> => {
    // With the node flags `npm run worker` gives a worker: the tests run workers as users do.
    const w = spawnNode('worker/main.ts', [], { ...env, LOG_LEVEL: 'info', ...extra }, WORKER_NODE_FLAGS);
    workers.push(w);
    await w.waitFor(/"msg":"worker ready"/, 60_000);
    return w;
  };

  try {
    await Promise.all([waitForHttp(`${url}/v1/.well-known/ready`, api), ...Array.from({ length: options.workers ?? 2 }, () => startWorker())]);
  } catch (err) {
    await Promise.all([api.kill('SIGKILL'), ...workers.map((w) => w.kill('SIGKILL'))]);
    await redis.stop();
    throw err;
  }

  return {
    name: options.name,
    url,
    grpcPort,
    redis,
    dataDir: options.dataDir,
    nodes: options.nodes,
    api,
    workers,
    async call(method, p, body, options = {}) {
      const res = await fetch(`${url}${p}`, {
        method,
        headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...options.headers },
        body: body === undefined ? undefined : JSON.stringify(body),
        ...(options.timeoutMs ? { signal: AbortSignal.timeout(options.timeoutMs) } : {}),
      });
      const text = await res.text();
      return { status: res.status, json: async () => (text ? JSON.parse(text) : undefined) };
    },
    startWorker,
    jobLines(proc) {
      return proc
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{') && l.includes('"job"'))
        .map((l) => {
          try {
            return JSON.parse(l) as JobLogLine;
          } catch {
            return undefined;
          }
        })
        .filter((l): l is JobLogLine => !!l && typeof l.job === 'string');
    },
    redisClient() {
      const c = new Redis(redis.url, { maxRetriesPerRequest: null });
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients) c.disconnect();
      await Promise.all([api.kill('SIGTERM'), ...workers.map((w) => w.kill('SIGTERM'))]);
      await redis.stop();
    },
  };
}

async function waitForHttp(url: string, proc: NodeProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`api exited before answering:\n${proc.output().slice(-2000)}`);
    const ok = await fetch(url).then((r) => r.ok, () => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`api did not answer ${url} in ${timeoutMs} ms:\n${proc.output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every file under a directory, relative and sorted (for "nothing left behind" checks). */
export function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) walk(full);
      else out.push(path.relative(dir, full));
    }
  };
  walk(dir);
  return out.sort();
}
