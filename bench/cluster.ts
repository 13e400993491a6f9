/**
 * A shardvault cluster for the bench: its own private redis-server (never the machine's
 * Redis), one API process and N worker processes, each a real child running the build as
 * `npm run api` and `npm run worker` run it (`dist/…`; `npm run bench` builds first), all on
 * loopback. Drives the Weaviate-compatible backup API the way a client would: POST,
 * then poll the status until SUCCESS or FAILED.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort, startRedisServer, type RedisServer } from '../shared/redis-server.ts';
import { spawnNode, WORKER_NODE_FLAGS, type NodeProcess } from '../test/support/process.ts';
import { sleep } from './measure.ts';

/** What `npm run api`, `npm run worker` and `npm run node` run. */
export const API_ENTRY = 'dist/api/main.js';
export const WORKER_ENTRY = 'dist/worker/main.js';
export const NODE_ENTRY = 'dist/node/main.js';

export interface ClusterOptions {
  /** Directory for this cluster's Redis files and logs. */
  workDir: string;
  dataDir: string;
  backupDir: string;
  nodes: string[];
  workers: number;
  /**
   * Extra node flags for worker processes (e.g. --cpu-prof, which NODE_OPTIONS refuses), after
   * those `npm run worker` gives them.
   */
  workerNodeFlags?: string[];
  /** The worker entry point, relative to the project root; default `dist/worker/main.js`. */
  workerEntry?: string;
  /** WORKER_CONCURRENCY of each worker; the project's default when undefined. */
  workerConcurrency?: number;
  logLevel?: string;
  /** Extra environment of every process (e.g. a backend's BACKUP_* variables). */
  env?: Record<string, string>;
  /**
   * Extra environment of the workers only, over `env`: e.g. CLUSTER_NODES through counting
   * proxies, so only what the nodes send the workers is counted, not the API's traffic.
   */
  workerEnv?: Record<string, string>;
}

export type TerminalStatus = 'SUCCESS' | 'FAILED' | 'CANCELED';

export interface OperationResult {
  status: TerminalStatus | 'TIMEOUT';
  /** Seconds from just before the POST to the first poll that saw the final status. */
  seconds: number;
  body: Record<string, unknown>;
}

export class BenchCluster {
  redis?: RedisServer;
  api?: NodeProcess;
  workers: NodeProcess[] = [];
  baseUrl = '';
  private infoClient?: Redis;

  constructor(readonly options: ClusterOptions) {}

  private env(extra: Record<string, string> = {}): Record<string, string> {
    const o = this.options;
    return {
      REDIS_URL: this.redis!.url,
      DATA_DIR: o.dataDir,
      BACKUP_FILESYSTEM_PATH: o.backupDir,
      CLUSTER_NODES: o.nodes.join(','),
      HOST: '127.0.0.1',
      LOG_LEVEL: o.logLevel ?? 'warn',
      // Never inherit the bench's own NODE_OPTIONS or a developer's backend settings.
      NODE_OPTIONS: '',
      BACKUP_S3_BUCKET: '',
      BACKUP_GCS_BUCKET: '',
      ...o.env,
      ...extra,
    };
  }

  async start(): Promise<this> {
    const o = this.options;
    fs.mkdirSync(o.workDir, { recursive: true });
    fs.mkdirSync(o.backupDir, { recursive: true });
    this.redis = await startRedisServer({ dir: path.join(o.workDir, 'redis') });
    const port = await freePort();
    this.baseUrl = `http://127.0.0.1:${port}`;
    const api = this.spawnApi([]);
    // Start everything at once: the processes load their modules in parallel.
    const spawned = Array.from({ length: o.workers }, () => this.spawnWorker());
    await this.waitForApi(api);
    if (spawned.length) await this.waitForWorkers(this.workers.length, spawned);
    return this;
  }

  /** Stop the API and start it again on its port, with these node flags (e.g. --cpu-prof). */
  async restartApi(flags: string[]): Promise<void> {
    await this.stopApi();
    await this.waitForApi(this.spawnApi(flags));
  }

  private spawnApi(flags: string[]): NodeProcess {
    const apiEnv = this.env({ PORT: new URL(this.baseUrl).port, GRPC_PORT: '0' });
    this.api = spawnNode(API_ENTRY, [], apiEnv, flags);
    return this.api;
  }

  /** Start one more worker process and wait until it serves every queue. */
  async addWorker(): Promise<NodeProcess> {
    const w = this.spawnWorker();
    await this.waitForWorkers(this.workers.length, [w]);
    return w;
  }

  private spawnWorker(): NodeProcess {
    const o = this.options;
    const extra: Record<string, string> = { ...o.workerEnv };
    if (o.workerConcurrency) extra.WORKER_CONCURRENCY = String(o.workerConcurrency);
    const w = spawnNode(o.workerEntry ?? WORKER_ENTRY, [], this.env(extra), [...WORKER_NODE_FLAGS, ...(o.workerNodeFlags ?? [])]);
    this.workers.push(w);
    return w;
  }

  /** Stop one worker gracefully (SIGTERM: its --cpu-prof profile, if any, is written on exit). */
  async stopWorker(w: NodeProcess): Promise<void> {
    const timer = setTimeout(() => void w.kill('SIGKILL'), 30_000);
    await w.kill('SIGTERM');
    clearTimeout(timer);
    this.workers = this.workers.filter((x) => x !== w);
  }

  private async waitForApi(api: NodeProcess): Promise<void> {
    const deadline = Date.now() + 60_000;
    let exited: number | string | undefined;
    void api.exited.then((c) => (exited = c));
    while (Date.now() < deadline) {
      if (exited !== undefined) throw new Error(`the API exited (${exited}) while starting:\n${api.output().slice(-2000)}`);
      try {
        const r = await fetch(`${this.baseUrl}/v1/.well-known/ready`);
        if (r.ok) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`the API did not become ready within 60 s:\n${api.output().slice(-2000)}`);
  }

  /**
   * BullMQ names each worker's Redis connection `<prefix>:<base64(queue)>[:w:<name>]`; a worker
   * is ready when every queue it serves (backups, restores, node-<name>) has its connection.
   */
  private async waitForWorkers(count: number, starting: NodeProcess[]): Promise<void> {
    const queues = ['backups', 'restores', ...this.options.nodes.map((n) => `node-${n}`)];
    const b64 = queues.map((q) => Buffer.from(q).toString('base64'));
    const client = new Redis(this.redis!.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await client.connect();
    let exited: { code: number | string; w: NodeProcess } | undefined;
    for (const w of starting) void w.exited.then((code) => (exited ??= { code, w }));
    try {
      const deadline = Date.now() + 90_000;
      while (Date.now() < deadline) {
        if (exited) throw new Error(`a worker exited (${exited.code}) while starting:\n${exited.w.output().slice(-2000)}`);
        const list = String(await client.call('CLIENT', 'LIST'));
        const names = [...list.matchAll(/ name=(\S*)/g)].map((m) => m[1]!);
        const served = b64.map((b) => names.filter((n) => n.endsWith(`:${b}`) || n.includes(`:${b}:w:`)).length);
        if (served.every((n) => n >= count)) return;
        await sleep(100);
      }
      throw new Error(`workers did not connect to every queue within 90 s:\n${starting[0]?.output().slice(-2000)}`);
    } finally {
      client.disconnect();
    }
  }

  async request(method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const r = await fetch(`${this.baseUrl}${urlPath}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let parsed: Record<string, unknown> = {};
    try {
      parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      parsed = { raw: text };
    }
    return { status: r.status, body: parsed };
  }

  private async poll(statusPath: string, started: number, timeoutMs: number, everyMs: number): Promise<OperationResult> {
    const deadline = started + timeoutMs;
    let last: Record<string, unknown> = {};
    while (performance.now() < deadline) {
      const r = await this.request('GET', statusPath);
      last = r.body;
      const status = String(r.body.status ?? '');
      if (status === 'SUCCESS' || status === 'FAILED' || status === 'CANCELED') {
        return { status, seconds: (performance.now() - started) / 1000, body: r.body };
      }
      await sleep(everyMs);
    }
    return { status: 'TIMEOUT', seconds: (performance.now() - started) / 1000, body: last };
  }

  /** POST a backup and poll its status until it ends. */
  async backup(
    id: string,
    options: { include?: string[]; compression?: string; incrementalBase?: string; timeoutMs?: number; pollMs?: number } = {},
  ): Promise<OperationResult> {
    const started = performance.now();
    const config = options.compression ? { CompressionLevel: options.compression } : undefined;
    const base = options.incrementalBase ? { incremental_base_backup_id: options.incrementalBase } : {};
    const r = await this.request('POST', '/v1/backups/filesystem', { id, include: options.include, config, ...base });
    if (r.status !== 200) throw new Error(`POST /v1/backups/filesystem answered ${r.status}: ${JSON.stringify(r.body)}`);
    return this.poll(`/v1/backups/filesystem/${id}`, started, options.timeoutMs ?? 3_600_000, options.pollMs ?? 25);
  }

  /** POST a restore of a backup (from this cluster's backend) and poll until it ends. */
  async restore(id: string, options: { include?: string[]; timeoutMs?: number; pollMs?: number } = {}): Promise<OperationResult> {
    const started = performance.now();
    const r = await this.request('POST', `/v1/backups/filesystem/${id}/restore`, options.include ? { include: options.include } : {});
    if (r.status !== 200) throw new Error(`POST /v1/backups/filesystem/${id}/restore answered ${r.status}: ${JSON.stringify(r.body)}`);
    return this.poll(`/v1/backups/filesystem/${id}/restore`, started, options.timeoutMs ?? 3_600_000, options.pollMs ?? 25);
  }

  /** Documents per index, from `GET /{index}/:info`. */
  async docCount(index: string): Promise<number | undefined> {
    const r = await this.request('GET', `/${encodeURIComponent(index)}/:info`);
    return r.status === 200 ? Number(r.body.docs) : undefined;
  }

  async deleteClass(name: string): Promise<void> {
    const r = await this.request('DELETE', `/v1/schema/${encodeURIComponent(name)}`);
    if (r.status >= 300 && r.status !== 404) throw new Error(`DELETE /v1/schema/${name} answered ${r.status}: ${JSON.stringify(r.body)}`);
  }

  pids(): { api?: number; workers: number[]; redis?: number } {
    return { api: this.api?.child.pid, workers: this.workers.map((w) => w.child.pid!).filter(Boolean) };
  }

  /** CPU seconds (user + system) redis-server has used, from its INFO. */
  async redisCpu(): Promise<number> {
    if (!this.redis) return 0;
    this.infoClient ??= new Redis(this.redis.url, { maxRetriesPerRequest: 1 });
    const info = String(await this.infoClient.info('cpu'));
    const get = (k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
    return get('used_cpu_user') + get('used_cpu_sys');
  }

  /** Stop the API gracefully (its --cpu-prof profile, if any, is written on exit). */
  async stopApi(): Promise<void> {
    if (!this.api) return;
    const api = this.api;
    const timer = setTimeout(() => void api.kill('SIGKILL'), 15_000);
    await api.kill('SIGTERM');
    clearTimeout(timer);
    this.api = undefined;
  }

  /** Commands redis-server has processed so far (INFO stats total_commands_processed). */
  async redisCommands(): Promise<number> {
    if (!this.redis) return 0;
    this.infoClient ??= new Redis(this.redis.url, { maxRetriesPerRequest: 1 });
    const info = String(await this.infoClient.info('stats'));
    return Number(/^total_commands_processed:(\d+)/m.exec(info)?.[1] ?? 0);
  }

  async stop(): Promise<void> {
    this.infoClient?.disconnect();
    this.infoClient = undefined;
    await Promise.all([...this.workers].map((w) => this.stopWorker(w).catch(() => undefined)));
    await this.stopApi();
    await this.redis?.stop();
    this.redis = undefined;
  }
}
