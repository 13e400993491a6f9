/**
 * `npm run api` with API_PROCESSES=2: two API processes behind one port (api/processes.ts), as
 * real child processes: both answer, /metrics counts every process's requests, a killed one
 * is replaced, but not for ever, one that cannot listen stops them all (as one process alone
 * stops), and SIGTERM stops them cleanly.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type RedisServer } from '../../shared/redis-server.ts';
import { grpcHealth } from '../support/grpc.ts';
import { spawnNode, type NodeProcess } from '../support/process.ts';
import { startTestRedis } from '../support/redis.ts';
import { tempDir } from '../support/temp.ts';

const tmp = tempDir();
let redis: RedisServer;
let api: NodeProcess;
let base: string;
let grpcPort: number;

function startApi(port: number, env: Record<string, string> = {}): NodeProcess {
  return spawnNode('api/main.ts', [], {
    API_PROCESSES: '2',
    PORT: String(port),
    GRPC_PORT: String(grpcPort),
    DATA_DIR: `${tmp.dir}/data`,
    BACKUP_FILESYSTEM_PATH: `${tmp.dir}/backups`,
    REDIS_URL: redis.url,
    ...env,
  });
}

/** The pids of the processes that logged `msg`, in order. */
function pidsThatLogged(p: NodeProcess, msg: string): number[] {
  return p
    .output()
    .split('\n')
    .filter((l) => l.includes(`"msg":"${msg}"`))
    .map((l) => (JSON.parse(l) as { pid: number }).pid);
}

/**
 * The pids of the `n` processes listening, not counting `except`, once each one's own
 * 'api listening' line has arrived: it may arrive after the primary's 'every API process
 * listens' (each process writes its log asynchronously, and tells the primary over IPC).
 */
async function listeningPids(p: NodeProcess, n: number, except: Set<number> = new Set()): Promise<number[]> {
  const fresh = () => pidsThatLogged(p, 'api listening').filter((pid) => !except.has(pid));
  await expect.poll(() => fresh().length, { timeout: 30_000 }).toBe(n);
  return fresh();
}

beforeAll(async () => {
  redis = await startTestRedis();
  const port = await freePort();
  grpcPort = await freePort();
  base = `http://127.0.0.1:${port}`;
  api = startApi(port);
  await api.waitFor(/every API process listens/, 60_000);
});

afterAll(async () => {
  if (api.child.exitCode === null) await api.kill('SIGKILL');
  await redis?.stop();
  tmp.cleanup();
});

const json = (method: string, path: string, body?: unknown) =>
  fetch(`${base}${path}`, { method, headers: { 'content-type': 'application/json', connection: 'close' }, body: body === undefined ? undefined : JSON.stringify(body) });

describe('npm run api with API_PROCESSES=2', () => {
  it('answers from both processes on the one port, HTTP and gRPC, and writes what either was sent', async () => {
    expect(new Set(await listeningPids(api, 2)).size).toBe(2);
    expect(await grpcHealth(grpcPort, '')).toBe(1);
    expect((await json('POST', '/v1/schema', { class: 'Book', properties: [{ name: 'title', dataType: ['text'] }] })).status).toBe(200);
    const ids = Array.from({ length: 20 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
    // One connection per request: the primary hands each to the processes in turn.
    for (const [i, id] of ids.entries()) {
      const r = await json('POST', '/v1/batch/objects', { objects: [{ class: 'Book', id, properties: { title: `Book ${i}` } }] });
      expect(r.status).toBe(200);
    }
    // Each request's log line, with the pid of the process that answered it (a line may reach
    // this process after its answer).
    const answered = () =>
      api
        .output()
        .split('\n')
        .filter((l) => l.includes('"path":"/v1/batch/objects"'))
        .map((l) => (JSON.parse(l) as { pid: number }).pid);
    await expect.poll(() => answered().length).toBe(20);
    expect(new Set(answered()).size).toBe(2);
    const all = await (await json('GET', '/v1/objects?class=Book&limit=100')).json();
    expect(all.objects.map((o: { id: string }) => o.id).sort()).toEqual(ids);
  });

  it('answers /metrics with the requests of every process summed', async () => {
    for (let i = 0; i < 10; i++) expect((await json('GET', '/v1/.well-known/live')).status).toBe(200);
    const text = await (await json('GET', '/metrics')).text();
    const count = /^shardvault_http_request_duration_seconds_count\{method="GET",route="\/v1\/\.well-known\/live",status="200"\} (\d+)$/m.exec(text);
    expect(Number(count?.[1])).toBe(10);
    const batches = /^shardvault_http_request_duration_seconds_count\{method="POST",route="\/v1\/batch\/objects",status="200"\} (\d+)$/m.exec(text);
    expect(Number(batches?.[1])).toBe(20);
    // The cluster-wide families are there too, once.
    expect(text.match(/^# TYPE bullmq_job_count gauge$/gm)).toHaveLength(1);
  });

  it('replaces a process that is killed, and goes on answering', async () => {
    const [first] = pidsThatLogged(api, 'api listening');
    process.kill(first!, 'SIGKILL');
    await api.waitFor(/an API process ended: starting another/);
    await expect.poll(() => pidsThatLogged(api, 'api listening').length, { timeout: 30_000 }).toBe(3);
    for (let i = 0; i < 6; i++) expect((await json('GET', '/v1/.well-known/ready')).status).toBe(200);
  });

  it('stops every process on SIGTERM, with exit code 0', async () => {
    const pids = pidsThatLogged(api, 'api listening');
    expect(await api.kill('SIGTERM')).toBe(0);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  });

  it('stops, with exit code 1, when more than 5 processes end within a minute (a crash loop is left to its supervisor)', { timeout: 120_000 }, async () => {
    const p = startApi(await freePort(), { GRPC_PORT: '0' });
    try {
      const killed = new Set<number>();
      // Rounds of killing both processes once the primary says both listen: 2, 4, then 6 ended.
      for (let round = 1; round <= 3; round++) {
        await expect.poll(() => pidsThatLogged(p, 'every API process listens').length, { timeout: 60_000 }).toBe(round);
        for (const pid of await listeningPids(p, 2, killed)) {
          killed.add(pid);
          process.kill(pid, 'SIGKILL');
        }
      }
      expect(await p.exited).toBe(1);
      expect(killed.size).toBe(6);
      expect(p.output()).toContain('API processes keep ending: stopping every one');
    } finally {
      if (p.child.exitCode === null) await p.kill('SIGKILL');
    }
  });

  it('stops, with exit code 1, when a process cannot listen (no endless restarts); so does one process alone', async () => {
    const taken = net.createServer();
    const port = await new Promise<number>((resolve) => taken.listen(0, '127.0.0.1', () => resolve((taken.address() as net.AddressInfo).port)));
    const started: NodeProcess[] = [];
    try {
      const many = startApi(port, { GRPC_PORT: '0' });
      started.push(many);
      expect(await many.exited).toBe(1);
      expect(many.output()).toContain('EADDRINUSE');
      expect(many.output()).toContain('an API process ended before it listened: stopping every one');
      const one = startApi(port, { GRPC_PORT: '0', API_PROCESSES: '1' });
      started.push(one);
      expect(await one.exited).toBe(1);
      expect(one.output()).toMatch(/"msg":"the API cannot start"/);
      // Its gRPC port taken, likewise; grpc-js's own lines go into the log, every line JSON.
      const grpcTaken = startApi(await freePort(), { GRPC_PORT: String(port), API_PROCESSES: '1' });
      started.push(grpcTaken);
      expect(await grpcTaken.exited).toBe(1);
      const lines = grpcTaken.output().trim().split('\n');
      expect(lines.filter((l) => !l.startsWith('{')), grpcTaken.output()).toEqual([]);
      expect(grpcTaken.output()).toContain(`gRPC cannot listen on 127.0.0.1:${port} (GRPC_PORT)`);
    } finally {
      taken.close();
      // A primary killed takes its API processes with it (they end when its channel closes).
      for (const p of started) if (p.child.exitCode === null) await p.kill('SIGKILL');
    }
  });
});
