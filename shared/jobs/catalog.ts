/**
 * The one job catalog (ARCHITECTURE.md §5): the only place that knows queue names, job names, payload
 * schemas, result schemas and retry/removal policies. Producers build jobs through
 * `flowJob()`, which parses the payload with the job's schema; workers are handed a
 * `Processors` object that TypeScript checks against the catalog, and `assertProcessors()`
 * refuses to start when one is missing.
 *
 * Queues:
 * - `backups`: `commit-backup`, the parent of one backup flow;
 * - `restores`: `commit-restore`, the parent of one restore flow;
 * - `node-<name>`: `snapshot-shard` and `restore-shard`, the children, on the queue of the
 *   node that holds (or will hold) the shard.
 *
 * Every key BullMQ writes starts with PREFIX, whose hash tag keeps a queue's keys (and
 * shardvault's own operation state, see shared/backups/state.ts) in one Redis Cluster slot.
 */
import type { Job, JobsOptions } from 'bullmq';
import { z } from 'zod';
import { COMPRESSION_LEVELS } from '../formats/compression.ts';
import { operationRefSchema } from './operation.ts';

/** Redis key prefix of every queue; `{…}` is a Redis Cluster hash tag. */
export const PREFIX = '{shardvault}';

/**
 * How long a worker's lock on a running job lasts without renewal (renewed every half of it).
 * A worker killed mid-job loses its lock after this long; then the stalled check of any
 * other worker (every STALLED_INTERVAL_MS) puts the job back in its queue. BullMQ's default
 * is 30 s; shorter makes recovery after a crash quicker, at the cost of more renewals.
 */
export const LOCK_DURATION_MS = 10_000;
/** How often each worker looks for jobs whose worker died (BullMQ default: 30 s). */
export const STALLED_INTERVAL_MS = 5_000;
/** A job may stall (lose its worker) this many times before it fails. */
export const MAX_STALLED_COUNT = 3;

export const COORDINATOR_QUEUES = ['backups', 'restores'] as const;
export type CoordinatorQueue = (typeof COORDINATOR_QUEUES)[number];

/** The queue of one node's shard jobs. */
export function nodeQueue(node: string): string {
  return `node-${node}`;
}

// ---- payloads and results ------------------------------------------------------------------

/** Weaviate's `config.Bucket` / `config.Path`, fixed for the whole operation. */
const overridesSchema = z.object({ bucket: z.string().optional(), path: z.string().optional() });
const name = z.string().min(1);
const schemaObject = z.record(z.string(), z.unknown());

/** One index as it was when the backup started (what a restore recreates). */
export const indexSnapshotSchema = z.object({
  name,
  uid: z.string(),
  shards: z.number().int().min(1),
  /** placement[i]: the node holding shard i. */
  placement: z.array(name),
  /** The schema as stored (may be a foreign/object reference). */
  schema: schemaObject,
  /** The object schema documents were checked against (foreign references resolved). */
  effectiveSchema: schemaObject,
  metadata: z.record(z.string(), z.unknown()),
  createdAt: z.string(),
});
export type IndexSnapshot = z.infer<typeof indexSnapshotSchema>;

const operation = {
  /** Which operation the job belongs to (shared/jobs/operation.ts). */
  op: operationRefSchema,
  overrides: overridesSchema,
};

const snapshotShardPayload = z.object({
  ...operation,
  node: name,
  index: name,
  /** The index's uid when the backup started; a different uid means it was dropped meanwhile. */
  uid: z.string(),
  shard: z.number().int().min(0),
  /** Object key relative to the backend root: `<id>/<node>/<index>/<shard>`. */
  key: name,
  compression: z.enum(COMPRESSION_LEVELS),
});

/** A shard's environment file as a repository snapshot holds it. */
const shardFileSchema = z.object({
  size: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  chunks: z.number().int().min(0),
  /** Chunks the backup stored; the others were in the repository already. */
  newChunks: z.number().int().min(0),
});

export const shardObjectResult = z.object({
  node: name,
  index: name,
  shard: z.number().int().min(0),
  key: name,
  docs: z.number().int().min(0),
  /** Format 1: bytes of the stored (compressed) object. Format 2: bytes this shard added to the backend. */
  bytes: z.number().int().min(0),
  /** sha256 (hex) of the stored object's bytes (format 2: of the snapshot object). */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Format 2 (docs/formats.md §3): `key` is a repository snapshot of this shard's environment file. */
  file: shardFileSchema.optional(),
});
export type ShardObject = z.infer<typeof shardObjectResult>;

const commitBackupPayload = z.object({
  ...operation,
  /** Every node of the source cluster, in the cluster's order. */
  nodes: z.array(name).min(1),
  classes: z.array(name).min(1),
  compression: z.enum(COMPRESSION_LEVELS),
  startedAt: z.string(),
  indexes: z.array(indexSnapshotSchema).min(1),
  /** `incremental_base_backup_id`, recorded in the manifest. */
  incrementalBase: name.optional(),
  /** The backup schedule that started it, recorded in the manifest. */
  schedule: name.optional(),
});

const commitResult = z.object({
  status: z.enum(['SUCCESS', 'FAILED', 'CANCELED']),
  error: z.string().optional(),
});
export type CommitResult = z.infer<typeof commitResult>;

const restoreShardPayload = z.object({
  ...operation,
  sourceNode: name,
  /** Target node (the queue's node). */
  node: name,
  index: name,
  shard: z.number().int().min(0),
  key: name,
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().min(0),
  docs: z.number().int().min(0),
  /** Present for format 2: the object is a repository snapshot. */
  file: shardFileSchema.optional(),
});

const restoredIndexSchema = z.object({
  name,
  shards: z.number().int().min(1),
  /** Target placement: placement[i] is the node of this cluster that gets shard i. */
  placement: z.array(name),
  schema: schemaObject,
  effectiveSchema: schemaObject,
  metadata: z.record(z.string(), z.unknown()),
});
export type RestoredIndex = z.infer<typeof restoredIndexSchema>;

const commitRestorePayload = z.object({
  ...operation,
  classes: z.array(name).min(1),
  nodeMapping: z.record(z.string(), z.string()),
  indexes: z.array(restoredIndexSchema).min(1),
});

// ---- the catalog ---------------------------------------------------------------------------

interface JobSpec {
  /** `node` means the queue of the node named in the payload (`node-<name>`). */
  queue: CoordinatorQueue | 'node';
  payload: z.ZodType;
  result: z.ZodType;
  /** attempts, backoff, removal and flow options every job of this name gets. */
  options: JobsOptions;
}

const DAY_S = 24 * 3600;
/** Finished jobs are kept a week (bull-board shows them), at most this many per queue. */
const KEEP = { removeOnComplete: { age: 7 * DAY_S, count: 5000 }, removeOnFail: { age: 7 * DAY_S, count: 5000 } };

export const CATALOG = {
  /** Parent of a backup: per-node manifests, then the global manifest; or clean-up. */
  'commit-backup': {
    queue: 'backups',
    payload: commitBackupPayload,
    result: commitResult,
    options: { attempts: 5, backoff: { type: 'exponential', delay: 1000 }, ...KEEP },
  },
  /** One shard, from one read transaction, to one backend object. */
  'snapshot-shard': {
    queue: 'node',
    payload: snapshotShardPayload,
    result: shardObjectResult,
    options: { attempts: 3, backoff: { type: 'exponential', delay: 1000 }, continueParentOnFailure: true, ...KEEP },
  },
  /** Parent of a restore: publishes every restored index at once, or removes the staging. */
  'commit-restore': {
    queue: 'restores',
    payload: commitRestorePayload,
    result: commitResult,
    options: { attempts: 5, backoff: { type: 'exponential', delay: 1000 }, ...KEEP },
  },
  /** One shard object, verified, into the staging area of its target node. */
  'restore-shard': {
    queue: 'node',
    payload: restoreShardPayload,
    result: shardObjectResult,
    options: { attempts: 3, backoff: { type: 'exponential', delay: 1000 }, continueParentOnFailure: true, ...KEEP },
  },
} as const satisfies Record<string, JobSpec>;

export type JobName = keyof typeof CATALOG;
export const JOB_NAMES = Object.keys(CATALOG) as JobName[];
export type PayloadOf<N extends JobName> = z.infer<(typeof CATALOG)[N]['payload']>;
export type ResultOf<N extends JobName> = z.infer<(typeof CATALOG)[N]['result']>;
export type JobOf<N extends JobName> = Job<PayloadOf<N>, ResultOf<N>, N>;

/**
 * A processor. Declared with three parameters, so BullMQ hands it the AbortSignal that
 * cancellation (DELETE …) and the shutdown deadline abort; `signal.reason` is one of ABORT.
 */
export type ProcessorOf<N extends JobName> = (job: JobOf<N>, token: string | undefined, signal: AbortSignal) => Promise<ResultOf<N>>;
export type Processors = { [N in JobName]: ProcessorOf<N> };

/**
 * Why a running job's signal was aborted. `lockLost`: the job's lock in Redis expired (Redis was
 * away, or this process stalled) and BullMQ has handed, or will hand, the job to another run;
 * this run stops so that it holds no transfer slot and writes nothing the other run writes.
 */
export const ABORT = { cancel: 'cancel', shutdown: 'shutdown', lockLost: 'lock-lost' } as const;

/** Fails start-up when a catalog job has no processor (or a processor has no catalog entry). */
export function assertProcessors(processors: Partial<Record<string, unknown>>): asserts processors is Processors {
  const missing = JOB_NAMES.filter((n) => typeof processors[n] !== 'function');
  if (missing.length > 0) throw new Error(`no processor for job ${missing.join(', ')} of the job catalog`);
  const unknown = Object.keys(processors).filter((n) => !(n in CATALOG));
  if (unknown.length > 0) throw new Error(`processor for ${unknown.join(', ')}, which the job catalog does not know`);
}

/** The queue a job of this name goes to (`node` is required for node jobs). */
export function queueOf(name: JobName, node?: string): string {
  const { queue } = CATALOG[name];
  if (queue !== 'node') return queue;
  if (!node) throw new Error(`job ${name} runs on a node queue: name the node`);
  return nodeQueue(node);
}

/** Job names served by a queue kind. */
export function jobsOn(queue: CoordinatorQueue | 'node'): JobName[] {
  return JOB_NAMES.filter((n) => CATALOG[n].queue === queue);
}

/** Parse a payload as its job expects it; a bad payload is a programming error. */
function parsePayload<N extends JobName>(name: N, data: unknown): PayloadOf<N> {
  return CATALOG[name].payload.parse(data) as PayloadOf<N>;
}

export function parseResult<N extends JobName>(name: N, value: unknown): ResultOf<N> {
  return CATALOG[name].result.parse(value) as ResultOf<N>;
}

// ---- scheduled runs -----------------------------------------------------------------------------

/**
 * The queue of scheduled backup runs (shared/schedules/, worker/schedule-run.ts). A schedule's
 * BullMQ job scheduler adds one `run-schedule` job per due time (job id
 * `repeat:<schedule>:<due ms>`); `POST …/run` adds one under `run:<schedule>:<ms>`. Not a
 * flow of an operation: a run starts a backup through the backup service, as a client would.
 */
export const SCHEDULES_QUEUE = 'schedules';
export const RUN_SCHEDULE_JOB = 'run-schedule';
export const scheduleRunPayload = z.object({
  schedule: name,
  /** When the run is due (ms since the epoch); a scheduler's jobs carry it in their options instead. */
  dueAt: z.number().int().optional(),
});
export type ScheduleRunPayload = z.infer<typeof scheduleRunPayload>;
/** A run that fails for a transient reason is tried again; each waits for its backup to end. */
export const SCHEDULE_RUN_OPTIONS = { attempts: 3, backoff: { type: 'exponential', delay: 1000 }, ...KEEP } satisfies JobsOptions;

// ---- producing -------------------------------------------------------------------------------

export interface FlowJobSpec {
  name: string;
  queueName: string;
  data: unknown;
  opts: JobsOptions;
  children?: FlowJobSpec[];
}

/**
 * One node of a flow for FlowProducer.add: the payload parsed by the catalog's schema, the
 * catalog's options, the queue resolved (for node jobs, the payload's `node`).
 */
export function flowJob<N extends JobName>(
  name: N,
  data: PayloadOf<N>,
  jobId: string,
  children?: FlowJobSpec[],
): FlowJobSpec {
  const parsed = parsePayload(name, data);
  const node = (parsed as { node?: string }).node;
  return {
    name,
    queueName: queueOf(name, node),
    data: parsed,
    opts: { ...CATALOG[name].options, jobId },
    ...(children ? { children } : {}),
  };
}
