/**
 * `GET /metrics` in Prometheus text, from a prom-client registry of this API instance (never
 * the global default one, so several APIs in one process do not clash):
 *
 * - `shardvault_http_request_duration_seconds{method,route,status}`: this instance's requests,
 *   `route` being the route pattern that answered (`/v1/backups/:backend/:id`), or
 *   `unmatched` — never the raw path, whose values are unbounded;
 * - BullMQ's queue metrics (`bullmq_job_count{queue,state}`, `bullmq_job_completed_total`,
 *   `bullmq_job_failed_total`) of every catalog queue, from `Queue.exportPrometheusMetrics()`;
 * - `shardvault_{backups,restores}_total{backend,outcome}` and the histograms
 *   `shardvault_{backup,restore}_{duration_seconds,size_bytes,documents}{backend,outcome}`
 *   of finished operations (outcome SUCCESS, FAILED or CANCELED). Workers finish them in
 *   other processes, so these come from totals kept in Redis (shared/metrics/operation-meter.ts),
 *   counted once per operation at the first scrape after it ends;
 * - `shardvault_schedule_last_success_timestamp_seconds{schedule}` (when the schedule's last
 *   successful backup completed: what "no successful backup for 26 h" alerts on) and
 *   `shardvault_schedule_runs_total{schedule,outcome}` (SUCCESS, FAILED, CANCELED, SKIPPED), from
 *   the schedules' state in Redis;
 * - the usual `process_*` and `nodejs_*` metrics of this process.
 *
 * Queue and operation metrics are cluster-wide: every API instance answers the same values
 * (sum over instances only the HTTP and process metrics). The processes of one instance
 * (API_PROCESSES) answer the HTTP and process metrics summed over them (api/processes.ts).
 */
import type { Context, MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import type { Redis } from 'ioredis';
import { collectDefaultMetrics, Histogram, Registry, type Metric } from 'prom-client';
import type { QueueSet } from '../shared/jobs/queues.ts';
import { BUCKETS, OperationMeter, type Measure, type OperationSeries } from '../shared/metrics/operation-meter.ts';
import { RUN_OUTCOMES } from '../shared/schedules/contract.ts';
import { ScheduleStore } from '../shared/schedules/store.ts';
import { isOneOfMany, shareMetrics } from './processes.ts';

export interface ApiMetrics {
  registry: Registry;
  /** Times every request into the HTTP histogram; mount before the routes. */
  middleware: MiddlewareHandler;
  /** The `GET /metrics` handler. */
  handler(c: Context): Promise<Response>;
  /** The whole exposition text (what the handler answers). */
  render(): Promise<string>;
}

interface Sample {
  metricName?: string;
  labels: Record<string, string>;
  value: number;
}

type FamilyType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

interface Family {
  name: string;
  help: string;
  type: FamilyType;
  values: Sample[];
}

/** A metric whose values were read for this scrape, in the shape a prom-client Registry prints. */
function fixedMetric(f: Family): Metric {
  const object = { name: f.name, help: f.help, type: f.type, aggregator: 'sum' as const, values: f.values };
  return { ...object, get: async () => object, reset: () => undefined } as unknown as Metric;
}

/** The label of the route that answered: its pattern, or `unmatched` when only middleware ran. */
function routeLabel(c: Context): string {
  const route = matchedRoutes(c)[c.req.routeIndex];
  if (!route || route.method === 'ALL') return 'unmatched';
  return route.path;
}

const unescapeLabel = (v: string) => v.replace(/\\(["\\n])/g, (_, ch: string) => (ch === 'n' ? '\n' : ch));

/** Families of a Prometheus text exposition (what BullMQ's exportPrometheusMetrics writes). */
function parseExposition(text: string, into = new Map<string, Family>()): Map<string, Family> {
  const family = (name: string): Family => {
    const f = into.get(name) ?? { name, help: '', type: 'untyped' as const, values: [] };
    into.set(name, f);
    return f;
  };
  for (const line of text.split('\n')) {
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      const f = family(meta[2]!);
      if (meta[1] === 'HELP') f.help = meta[3]!;
      else f.type = meta[3] as FamilyType;
      continue;
    }
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!sample) continue;
    const labels: Record<string, string> = {};
    for (const m of (sample[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = unescapeLabel(m[2]!);
    family(sample[1]!).values.push({ labels, value: Number(sample[3]) });
  }
  return into;
}

const HELP: Record<Measure, [suffix: string, help: string]> = {
  seconds: ['duration_seconds', 'from start to finish'],
  bytes: ['size_bytes', 'bytes of shard objects moved'],
  documents: ['documents', 'documents moved'],
};

/** Counters and histograms of finished operations, from the totals in Redis. */
function operationFamilies(series: OperationSeries[]): Family[] {
  const families: Family[] = [];
  for (const kind of ['backup', 'restore'] as const) {
    const mine = series.filter((s) => s.kind === kind);
    const labels = (s: OperationSeries) => ({ backend: s.backend, outcome: s.outcome });
    families.push({
      name: `shardvault_${kind}s_total`,
      help: `${kind === 'backup' ? 'Backups' : 'Restores'} finished, by backend and outcome (SUCCESS, FAILED, CANCELED)`,
      type: 'counter',
      values: mine.map((s) => ({ labels: labels(s), value: s.count })),
    });
    for (const measure of Object.keys(BUCKETS) as Measure[]) {
      const [suffix, help] = HELP[measure];
      const name = `shardvault_${kind}_${suffix}`;
      families.push({
        name,
        help: `Finished ${kind}s: ${help}, by backend and outcome`,
        type: 'histogram',
        values: mine.flatMap((s) => [
          ...BUCKETS[measure].map((le, i) => ({ metricName: `${name}_bucket`, labels: { ...labels(s), le: String(le) }, value: s.buckets[measure][i]! })),
          { metricName: `${name}_bucket`, labels: { ...labels(s), le: '+Inf' }, value: s.count },
          { metricName: `${name}_sum`, labels: labels(s), value: s.sum[measure] },
          { metricName: `${name}_count`, labels: labels(s), value: s.count },
        ]),
      });
    }
  }
  return families;
}

export function createApiMetrics(deps: { redis: Redis; queues: QueueSet }): ApiMetrics {
  const registry = new Registry();
  const meter = new OperationMeter(deps.redis);
  const schedules = new ScheduleStore(deps.redis);

  /** The schedules' gauges and counters, read for this scrape. */
  async function scheduleFamilies(): Promise<Family[]> {
    const defs = await schedules.list();
    const states = await Promise.all(defs.map((d) => schedules.state(d.name)));
    return [
      {
        name: 'shardvault_schedule_last_success_timestamp_seconds',
        help: "When each schedule's last successful backup completed (Unix seconds); absent before its first",
        type: 'gauge',
        values: defs.flatMap((d, i) => {
          const at = states[i]!.lastSuccess?.completedAt;
          return at ? [{ labels: { schedule: d.name }, value: Date.parse(at) / 1000 }] : [];
        }),
      },
      {
        name: 'shardvault_schedule_runs_total',
        help: 'Runs of each backup schedule, by outcome (SUCCESS, FAILED, CANCELED, SKIPPED: due while the previous run went on)',
        type: 'counter',
        values: defs.flatMap((d, i) => RUN_OUTCOMES.map((outcome) => ({ labels: { schedule: d.name, outcome }, value: states[i]!.runs[outcome] }))),
      },
    ];
  }
  const http = new Histogram({
    name: 'shardvault_http_request_duration_seconds',
    help: 'HTTP requests answered by this API instance, by method, route pattern and status (time to the response headers)',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  // Process metrics start with the first scrape: an API nobody scrapes sets up no observers.
  // One API process of several starts them at once: a scrape sums every process's.
  const oneOfMany = isOneOfMany();
  let processMetrics = oneOfMany;
  if (oneOfMany) collectDefaultMetrics({ register: registry });
  const perProcess = oneOfMany ? shareMetrics(registry) : () => registry.metrics();

  async function render(): Promise<string> {
    if (!processMetrics) {
      processMetrics = true;
      collectDefaultMetrics({ register: registry });
    }
    await meter.sweep();
    const [series, texts, scheduled] = await Promise.all([meter.read(), Promise.all(deps.queues.queues.map((q) => q.exportPrometheusMetrics())), scheduleFamilies()]);
    const queueFamilies = new Map<string, Family>();
    for (const text of texts) parseExposition(text, queueFamilies);
    const scrape = new Registry();
    for (const f of [...queueFamilies.values(), ...operationFamilies(series), ...scheduled]) scrape.registerMetric(fixedMetric(f));
    const [own, shared] = await Promise.all([perProcess(), scrape.metrics()]);
    return `${own}\n${shared}`;
  }

  return {
    registry,
    middleware: async (c, next) => {
      const end = http.startTimer({ method: c.req.method });
      try {
        await next();
      } finally {
        end({ route: routeLabel(c), status: String(c.res.status) });
      }
    },
    render,
    handler: async (c) => c.body(await render(), 200, { 'content-type': registry.contentType }),
  };
}
