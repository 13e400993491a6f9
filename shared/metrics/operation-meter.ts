/**
 * Totals of finished backups and restores, kept in Redis so they are right however many
 * processes do the work: workers in other processes (or containers) finish operations, and
 * any API instance can answer /metrics with the same cluster-wide numbers.
 *
 * `sweep()` looks at the operations Redis knows (shared/backups/state.ts keeps a finished one
 * for a week; BackupService calls `count()` before it deletes or replaces a state) and counts
 * each one that reached SUCCESS, FAILED or CANCELED exactly once: one Lua script checks a
 * per-operation marker (the completedAt of the run last counted; a run with the same id later
 * gets a new completedAt) and adds to the totals atomically, so two API instances sweeping at
 * once never count an operation twice. `read()` answers the totals, with cumulative histogram
 * buckets.
 *
 * Keys (under the `{shardvault}` hash tag, one Redis Cluster slot):
 *   {shardvault}:metrics:operations                        hash of totals, fields `<kind>|<backend>|<outcome>|<what>`
 *   {shardvault}:metrics:metered:<kind>:<backend>:<id>     completedAt of the run last counted
 */
import type { Redis } from 'ioredis';
import { BACKEND_NAMES } from '../backends/backend.ts';
import { isTerminal, type Status } from '../backups/contract.ts';
import { FINISHED_TTL_S, OperationStore } from '../backups/state.ts';
import { PREFIX } from '../jobs/catalog.ts';
import { OPERATION_KINDS, type OperationKind, type OperationRef } from '../jobs/operation.ts';

export type Outcome = Extract<Status, 'SUCCESS' | 'FAILED' | 'CANCELED'>;

/** Upper bounds of the histogram buckets (`+Inf` is implied). */
export const BUCKETS = {
  /** Start to finish, in seconds. */
  seconds: [0.5, 1, 5, 15, 60, 300, 900, 3600, 10_800, 43_200],
  /** Bytes moved (stored, compressed shard objects). */
  bytes: [1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12],
  /** Documents moved. */
  documents: [100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8],
} as const;
export type Measure = keyof typeof BUCKETS;
const MEASURES = Object.keys(BUCKETS) as Measure[];

/** The totals of one (kind, backend, outcome). */
export interface OperationSeries {
  kind: OperationKind;
  backend: string;
  outcome: Outcome;
  count: number;
  /** Sum of each measure. */
  sum: Record<Measure, number>;
  /** Cumulative bucket counts, aligned with BUCKETS[measure]. */
  buckets: Record<Measure, number[]>;
}

const TOTALS_KEY = `${PREFIX}:metrics:operations`;
const markerKey = (kind: OperationKind, backend: string, id: string) => `${PREFIX}:metrics:metered:${kind}:${backend}:${id}`;
/** A marker outlives the operation state it guards. */
const MARKER_TTL_S = FINISHED_TTL_S + 24 * 3600;

// KEYS[1] operation state, KEYS[2] marker, KEYS[3] totals.
// ARGV[1] completedAt read, ARGV[2] marker ttl, ARGV[3] field prefix, ARGV[4] documents,
// ARGV[5] bytes, ARGV[6] seconds, ARGV[7..] bucket fields to increment. Answers 1 if counted.
const CLAIM = `
if redis.call('HGET', KEYS[1], 'completedAt') ~= ARGV[1] then return 0 end
if redis.call('GET', KEYS[2]) == ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
local p = ARGV[3]
redis.call('HINCRBY', KEYS[3], p .. '|count', 1)
redis.call('HINCRBY', KEYS[3], p .. '|documents', ARGV[4])
redis.call('HINCRBY', KEYS[3], p .. '|bytes', ARGV[5])
redis.call('HINCRBYFLOAT', KEYS[3], p .. '|seconds', ARGV[6])
for i = 7, #ARGV do redis.call('HINCRBY', KEYS[3], ARGV[i], 1) end
return 1
`;

export class OperationMeter {
  private readonly ops: OperationStore;

  constructor(private readonly redis: Redis) {
    this.ops = new OperationStore(redis);
  }

  /** Count every finished operation not counted yet; answers how many were. */
  async sweep(): Promise<number> {
    let counted = 0;
    for (const kind of OPERATION_KINDS) {
      for (const backend of BACKEND_NAMES) {
        const ids = await this.ops.ids(kind, backend);
        if (ids.length === 0) continue;
        const pipeline = this.redis.pipeline();
        for (const id of ids) {
          pipeline.hmget(this.ops.key({ kind, backend, id }), 'status', 'completedAt');
          pipeline.get(markerKey(kind, backend, id));
        }
        const answers = (await pipeline.exec()) ?? [];
        for (let i = 0; i < ids.length; i++) {
          const [status, completedAt] = (answers[2 * i]?.[1] ?? []) as [Status | null, string | null];
          const marker = answers[2 * i + 1]?.[1] as string | null;
          if (!status || !completedAt || !isTerminal(status) || marker === completedAt) continue;
          if (await this.count({ kind, backend, id: ids[i]! })) counted++;
        }
      }
    }
    return counted;
  }

  /**
   * Count one operation if it has ended and was not counted yet; answers whether it was now. Its
   * state must be counted before it goes: a deleted backup's is removed, and an id started again
   * (a backup id reused, a backup restored again) replaces it.
   */
  async count(op: OperationRef): Promise<boolean> {
    const { kind, backend, id } = op;
    const state = await this.ops.get(op);
    if (!state?.completedAt || !isTerminal(state.status)) return false;
    const progress = await this.ops.readProgress(op, state.shardsTotal);
    const seconds = Math.max(0, (Date.parse(state.completedAt) - Date.parse(state.startedAt)) / 1000) || 0;
    const prefix = `${kind}|${backend}|${state.status}`;
    const values: Record<Measure, number> = { seconds, bytes: progress.bytes, documents: progress.docs };
    const fields = MEASURES.flatMap((m) => BUCKETS[m].filter((le) => values[m] <= le).map((le) => `${prefix}|${m}_le|${le}`));
    const claimed = await this.redis.eval(
      CLAIM,
      3,
      this.ops.key(op),
      markerKey(kind, backend, id),
      TOTALS_KEY,
      state.completedAt,
      String(MARKER_TTL_S),
      prefix,
      String(progress.docs),
      String(progress.bytes),
      String(seconds),
      ...fields,
    );
    return claimed === 1;
  }

  /** The totals counted so far, one series per (kind, backend, outcome) seen. */
  async read(): Promise<OperationSeries[]> {
    const all = await this.redis.hgetall(TOTALS_KEY);
    const series = new Map<string, OperationSeries>();
    for (const [field, raw] of Object.entries(all)) {
      const [kind, backend, outcome, what, le] = field.split('|') as [OperationKind, string, Outcome, string, string | undefined];
      const key = `${kind}|${backend}|${outcome}`;
      let s = series.get(key);
      if (!s) {
        s = {
          kind,
          backend,
          outcome,
          count: 0,
          sum: { seconds: 0, bytes: 0, documents: 0 },
          buckets: { seconds: BUCKETS.seconds.map(() => 0), bytes: BUCKETS.bytes.map(() => 0), documents: BUCKETS.documents.map(() => 0) },
        };
        series.set(key, s);
      }
      const value = Number(raw);
      if (what === 'count') s.count = value;
      else if ((MEASURES as string[]).includes(what)) s.sum[what as Measure] = value;
      else if (what.endsWith('_le') && le !== undefined) {
        const measure = what.slice(0, -3) as Measure;
        const i = (BUCKETS[measure] as readonly number[] | undefined)?.indexOf(Number(le)) ?? -1;
        if (i >= 0) s.buckets[measure][i] = value;
      }
    }
    return [...series.values()].sort((a, b) => (`${a.kind}|${a.backend}|${a.outcome}` < `${b.kind}|${b.backend}|${b.outcome}` ? -1 : 1));
  }
}
