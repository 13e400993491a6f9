/**
 * `npm run api` in several processes (API_PROCESSES > 1): one primary that only supervises,
 * and API processes (node:cluster workers) that share its HTTP and gRPC ports, each parsing
 * bodies, checking objects and writing on its own core. Everything they share lives in Redis
 * or the data; what is per process is the HTTP and process metrics, which `/metrics` answers
 * summed over every process (prom-client's cluster aggregation, asked of the primary), so a
 * scrape through the shared port sees the whole API.
 *
 * The primary forks them, replaces one that ends after it listened, and stops them all (and
 * itself, with exit code 1) when one ends before it listened — a bad configuration is not
 * retried for ever — or when more than RESTART_LIMIT end within RESTART_WINDOW_MS (systemd's
 * start limit): a crash loop is left to whatever supervises the primary. SIGTERM or SIGINT to
 * the primary stops them gracefully, each with its own shutdown deadline; the API processes
 * take SIGTERM only, so Ctrl-C in a terminal (which signals the whole process group) stops each
 * once, through the primary.
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { Logger } from '../shared/logger.ts';

/** More API processes than this ending within RESTART_WINDOW_MS stop the primary. */
const RESTART_LIMIT = 5;
const RESTART_WINDOW_MS = 60_000;
const LISTENING = 'shardvault:api-listening';
const METRICS_ASKED = 'shardvault:api-metrics?';
const METRICS = 'shardvault:api-metrics';

interface Message {
  type?: string;
  id?: number;
  text?: string;
  error?: string;
}

/** Whether this process is one API process of several (a node:cluster worker). */
export const isOneOfMany = (): boolean => cluster.isWorker;

/** Tell the primary this API process listens (a no-op when it runs alone). */
export function announceListening(): void {
  if (isOneOfMany()) process.send?.({ type: LISTENING });
}

/**
 * In an API process of several: offer `registry` to the primary's aggregation and answer a
 * function that gets every process's registries summed.
 */
export function shareMetrics(registry: Registry): () => Promise<string> {
  // Constructing it in a cluster worker installs prom-client's answer to the primary's requests.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  let next = 0;
  const waiting = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void }>();
  process.on('message', (m: Message) => {
    if (m?.type !== METRICS || m.id === undefined) return;
    const w = waiting.get(m.id);
    waiting.delete(m.id);
    if (m.error !== undefined) w?.reject(new Error(`the API processes' metrics: ${m.error}`));
    else w?.resolve(m.text ?? '');
  });
  return () =>
    new Promise((resolve, reject) => {
      const id = next++;
      waiting.set(id, { resolve, reject });
      process.send!({ type: METRICS_ASKED, id });
    });
}

/** Run `count` API processes of this entry point and supervise them until a signal stops them. */
export function superviseApiProcesses(count: number, logger: Logger, deadlineMs: number): void {
  const aggregator = new AggregatorRegistry();
  /** The API processes that listen (they said so, and have not ended). */
  const listening = new Set<number>();
  /** When the API processes that ended after they listened ended, within the window. */
  let ended: number[] = [];
  let stopping = false;

  const stop = (code: number) => {
    if (stopping) return;
    stopping = true;
    const running = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
    logger.info({ processes: running.length }, 'stopping the API processes');
    let left = running.length;
    if (left === 0) process.exit(code);
    for (const w of running) {
      w.once('exit', () => {
        if (--left === 0) process.exit(code);
      });
      w.process.kill('SIGTERM');
    }
    setTimeout(() => {
      logger.error('the API processes did not stop in time: killing them');
      for (const w of running) w.process.kill('SIGKILL');
      process.exit(1);
    }, deadlineMs + 2_000).unref();
  };

  cluster.on('message', (worker, m: Message) => {
    if (m?.type === LISTENING) {
      listening.add(worker.id);
      if (listening.size === count) logger.info({ processes: count }, 'every API process listens');
    } else if (m?.type === METRICS_ASKED) {
      aggregator.clusterMetrics().then(
        (text) => worker.isConnected() && worker.send({ type: METRICS, id: m.id, text }),
        (err: Error) => worker.isConnected() && worker.send({ type: METRICS, id: m.id, error: err.message }),
      );
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    if (!listening.delete(worker.id)) {
      logger.error({ processPid: worker.process.pid, code, signal }, 'an API process ended before it listened: stopping every one');
      stop(1);
      return;
    }
    const now = Date.now();
    ended = [...ended.filter((t) => t > now - RESTART_WINDOW_MS), now];
    if (ended.length > RESTART_LIMIT) {
      logger.error({ processPid: worker.process.pid, code, signal, ended: ended.length, withinMs: RESTART_WINDOW_MS }, 'API processes keep ending: stopping every one');
      stop(1);
      return;
    }
    logger.error({ processPid: worker.process.pid, code, signal }, 'an API process ended: starting another');
    cluster.fork();
  });
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
  for (let i = 0; i < count; i++) cluster.fork();
}
