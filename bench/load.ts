/**
 * The backup API under load, with autocannon on loopback: `POST /v1/backups/filesystem`
 * (a unique id per request, a small index) at a fixed rate and flat out, and
 * `GET /v1/backups/filesystem/{id}` flat out. Every run is bounded by a request count.
 */
import autocannon, { type Result } from 'autocannon';
import type { BenchCluster } from './cluster.ts';

export interface LoadRun {
  name: string;
  /** Requests per second asked for; undefined means as fast as it answers. */
  targetRate?: number;
  connections: number;
  requests: number;
  seconds: number;
  /** Mean of autocannon's per-second request counts. */
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  errors: number;
  non2xx: number;
  statusCodes: Record<string, number>;
  /** Redis commands processed per request answered (INFO stats, minus the bench's own INFO calls). */
  redisCommandsPerRequest?: number;
}

/** Run a load and count the Redis commands it caused. */
async function counted(cluster: BenchCluster, run: () => Promise<LoadRun>): Promise<LoadRun> {
  const before = await cluster.redisCommands();
  const r = await run();
  // Two INFO calls of the bench itself fall inside the window.
  const commands = (await cluster.redisCommands()) - before - 2;
  return { ...r, redisCommandsPerRequest: r.requests > 0 ? commands / r.requests : undefined };
}

function summarize(name: string, r: Result, connections: number, targetRate?: number): LoadRun {
  const statusCodes: Record<string, number> = {};
  for (const [code, v] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = Number(v.count);
  const requests = Object.values(statusCodes).reduce((a, b) => a + b, 0);
  return {
    name,
    targetRate,
    connections,
    requests,
    seconds: r.duration,
    rps: r.duration > 0 ? requests / r.duration : r.requests.average,
    p50: r.latency.p50,
    p90: r.latency.p90,
    p99: r.latency.p99,
    max: r.latency.max,
    errors: r.errors,
    non2xx: r.non2xx,
    statusCodes,
  };
}

/** POST backups of `index`, each with a fresh id; at `rate` req/s when given, else flat out. */
export async function postBackups(
  cluster: BenchCluster,
  options: { index: string; amount: number; rate?: number; connections?: number; tag: string },
): Promise<LoadRun> {
  const connections = options.connections ?? 10;
  const name = options.rate ? `POST /v1/backups/filesystem at ${options.rate} req/s` : 'POST /v1/backups/filesystem, flat out';
  let n = 0;
  return counted(cluster, async () =>
    summarize(
      name,
      await autocannon({
        url: cluster.baseUrl,
        connections,
        amount: options.amount,
        overallRate: options.rate,
        timeout: 10,
        requests: [
          {
            method: 'POST',
            path: '/v1/backups/filesystem',
            headers: { 'content-type': 'application/json' },
            setupRequest: (req) => ({
              ...req,
              body: JSON.stringify({ id: `load-${options.tag}-${n++}`, include: [options.index], config: { CompressionLevel: 'BestSpeed' } }),
            }),
          },
        ],
      }),
      connections,
      options.rate,
    ),
  );
}

/** GET one path repeatedly (a backup's status, the list, liveness); at `rate` req/s when given, else flat out. */
export async function getRepeatedly(
  cluster: BenchCluster,
  options: { path: string; name: string; amount: number; rate?: number; connections?: number },
): Promise<LoadRun> {
  const connections = options.connections ?? 10;
  const name = `GET ${options.name}${options.rate ? ` at ${options.rate} req/s` : ', flat out'}`;
  return counted(cluster, async () =>
    summarize(
      name,
      await autocannon({
        url: `${cluster.baseUrl}${options.path}`,
        connections,
        amount: options.amount,
        overallRate: options.rate,
        timeout: 10,
      }),
      connections,
      options.rate,
    ),
  );
}
