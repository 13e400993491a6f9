/**
 * The state of running backups and restores, in Redis (ARCHITECTURE.md §6). One hash per operation
 * holds its status and what the status endpoints answer; a second hash holds per-shard
 * progress. Status changes go through one Lua script that knows which transitions are
 * allowed, so a late worker can never move a finished operation back to running.
 *
 * Keys (all under the `{shardvault}` hash tag, so they live in one Redis Cluster slot):
 *   {shardvault}:state:<kind>:<backend>:<id>            hash: status, info (JSON), error, completedAt, preCompressionSizeBytes
 *   {shardvault}:state:<kind>:<backend>:<id>:progress   hash: <node>.<index>.<shard> → {docs, bytes, done}
 *   {shardvault}:state:<kind>:<backend>                 set of ids (for listing)
 *   {shardvault}:state:backup:<backend>:<id>:deleted    set of the manifest locations deleted lately
 *
 * After completion a backup's status also lives in the backend's backup_config.json, so these
 * keys expire (FINISHED_TTL_S) and are not needed after a Redis flush.
 */
import type { Redis } from 'ioredis';
import { PREFIX } from '../jobs/catalog.ts';
import type { BackendName } from '../backends/backend.ts';
import { isTerminal, type Progress, type Status } from './contract.ts';
import { TTL_MS } from './manifest-cache.ts';
import { operationKey, type OperationKind, type OperationRef } from '../jobs/operation.ts';


/** Finished operations are kept in Redis this long (a week); the backend manifest outlives them. */
export const FINISHED_TTL_S = 7 * 24 * 3600;

/** A deleted backup stays marked so (forget) longer than any process keeps its manifest (manifest-cache.ts). */
const DELETED_MARK_S = (2 * TTL_MS) / 1000 + 60;

/** The Redis channel cancellations are published on; the message is the operation key. */
export const CANCEL_CHANNEL = `${PREFIX}:cancel`;

/** From which statuses each status may be reached. Terminal statuses are never left. */
const ALLOWED_FROM: Record<Exclude<Status, 'STARTED'>, Status[]> = {
  TRANSFERRING: ['STARTED'],
  TRANSFERRED: ['STARTED', 'TRANSFERRING'],
  FINALIZING: ['STARTED', 'TRANSFERRING', 'TRANSFERRED'],
  // A cancel that arrives while the last step commits is too late: the commit wins.
  SUCCESS: ['STARTED', 'TRANSFERRING', 'TRANSFERRED', 'FINALIZING', 'CANCELLING'],
  FAILED: ['STARTED', 'TRANSFERRING', 'TRANSFERRED', 'FINALIZING', 'CANCELLING'],
  CANCELLING: ['STARTED', 'TRANSFERRING', 'TRANSFERRED', 'FINALIZING'],
  CANCELED: ['STARTED', 'TRANSFERRING', 'TRANSFERRED', 'FINALIZING', 'CANCELLING'],
};

/** What an operation records when it starts; answered by the status endpoints. */
export interface OperationInfo {
  path: string;
  classes: string[];
  startedAt: string;
  shardsTotal: number;
  overrides: { bucket?: string; path?: string };
  /** Source nodes (backup) or the node mapping applied (restore). */
  nodes?: string[];
  nodeMapping?: Record<string, string>;
  /** Config fields the request gave that are not applied (validate.ts). */
  notes?: string[];
  /** A backup's `incremental_base_backup_id`. */
  incrementalBase?: string;
  /** The backup schedule that started it. */
  schedule?: string;
}

export interface OperationState extends OperationInfo {
  op: OperationRef;
  status: Status;
  error?: string;
  completedAt?: string;
  /** A SUCCESS backup's shard files before compression (its manifest's preCompressionSizeBytes). */
  preCompressionSizeBytes?: number;
}


// KEYS[1] state, KEYS[2] progress, KEYS[3] id set; ARGV[1] id, ARGV[2] info JSON.
// Starts the operation unless one with this key is running; answers the running status, or false.
const BEGIN = `
local cur = redis.call('HGET', KEYS[1], 'status')
if cur and cur ~= 'SUCCESS' and cur ~= 'FAILED' and cur ~= 'CANCELED' then return cur end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'status', 'STARTED', 'info', ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
return false
`;

// KEYS[1] state, KEYS[2] progress; ARGV[1] new status, ARGV[2] ",FROM,FROM,", ARGV[3] ttl if
// terminal (0 otherwise), ARGV[4..] field/value pairs. Answers the status after the call.
const ADVANCE = `
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return false end
if cur == ARGV[1] then return cur end
if not string.find(ARGV[2], ',' .. cur .. ',', 1, true) then return cur end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end
return ARGV[1]
`;

/** An operation's state from its hash; undefined when Redis no longer knows it. */
function parseState(op: OperationRef, h: Record<string, string>): OperationState | undefined {
  if (!h.status || !h.info) return undefined;
  const info = JSON.parse(h.info) as OperationInfo;
  return {
    ...info,
    op,
    status: h.status as Status,
    ...(h.error ? { error: h.error } : {}),
    ...(h.completedAt ? { completedAt: h.completedAt } : {}),
    ...(h.preCompressionSizeBytes ? { preCompressionSizeBytes: Number(h.preCompressionSizeBytes) } : {}),
  };
}

/** Why the jobs of an operation should stop (see stopReason). */
export type StopReason = 'cancel' | 'fail' | 'gone';

/** The set of ids of one kind in one backend; each operation's hash is `<set>:<id>`. */
const idSet = (kind: OperationKind, backend: string): string => `${PREFIX}:state:${kind}:${backend}`;

export class OperationStore {
  constructor(private readonly redis: Redis) {}

  /** The Redis hash of an operation's state. */
  key(op: OperationRef): string {
    return `${idSet(op.kind, op.backend)}:${op.id}`;
  }

  private keys(op: OperationRef): [string, string, string] {
    const key = this.key(op);
    return [key, `${key}:progress`, idSet(op.kind, op.backend)];
  }

  /**
   * Record a new operation as STARTED. Answers undefined on success, or the status of the
   * operation with the same key that is still running (nothing is changed then).
   */
  async begin(op: OperationRef, info: OperationInfo): Promise<Status | undefined> {
    const [state, progress, ids] = this.keys(op);
    const running = (await this.redis.eval(BEGIN, 3, state, progress, ids, op.id, JSON.stringify(info))) as Status | null;
    return running ?? undefined;
  }

  async get(op: OperationRef): Promise<OperationState | undefined> {
    return parseState(op, await this.redis.hgetall(this.key(op)));
  }

  /**
   * Every operation of this kind Redis still knows in a backend, in one round trip for the
   * ids and one for their states however many there are (expired ones pruned from the set).
   */
  async all(kind: OperationKind, backend: BackendName): Promise<OperationState[]> {
    const set = idSet(kind, backend);
    const ids = (await this.redis.smembers(set)).sort();
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(this.key({ kind, backend, id }));
    const answers = (await pipeline.exec()) ?? [];
    const states: OperationState[] = [];
    const expired: string[] = [];
    ids.forEach((id, i) => {
      const [err, h] = answers[i] ?? [new Error('no answer')];
      if (err) throw err;
      const state = parseState({ kind, backend, id }, h as Record<string, string>);
      if (state) states.push(state);
      else expired.push(id);
    });
    if (expired.length) await this.redis.srem(set, ...expired);
    return states;
  }

  /**
   * Move to `to` if the current status allows it; a terminal `to` also records completedAt
   * (now, unless given: the backend manifest's, so both answer the same) and starts the expiry. Answers the status after the call (undefined: no such operation).
   */
  async advance(op: OperationRef, to: Exclude<Status, 'STARTED'>, fields: { error?: string; completedAt?: string; preCompressionSizeBytes?: number } = {}): Promise<Status | undefined> {
    const [state, progress] = this.keys(op);
    const extra: string[] = [];
    if (fields.error !== undefined) extra.push('error', fields.error);
    if (fields.preCompressionSizeBytes !== undefined) extra.push('preCompressionSizeBytes', String(fields.preCompressionSizeBytes));
    if (isTerminal(to)) extra.push('completedAt', fields.completedAt ?? new Date().toISOString());
    const result = (await this.redis.eval(
      ADVANCE,
      2,
      state,
      progress,
      to,
      `,${ALLOWED_FROM[to].join(',')},`,
      String(isTerminal(to) ? FINISHED_TTL_S : 0),
      ...extra,
    )) as Status | null;
    return result ?? undefined;
  }

  /**
   * Why the jobs of an operation should stop, if they should: `cancel` once a cancel was
   * asked for, `fail` once its coordinator decided it failed (a sibling shard failed), `gone`
   * when it is finished or Redis no longer knows it.
   */
  async stopReason(op: OperationRef): Promise<StopReason | undefined> {
    const [status, error] = (await this.redis.hmget(this.key(op), 'status', 'error')) as [Status | null, string | null];
    if (!status || isTerminal(status)) return 'gone';
    if (status === 'CANCELLING') return 'cancel';
    if (error) return 'fail';
    return undefined;
  }

  /** Record that the operation failed (first error wins); its shard jobs stop, the coordinator cleans up. */
  async markFailing(op: OperationRef, error: string): Promise<void> {
    await this.redis.hsetnx(this.key(op), 'error', error);
  }

  /** Record one shard's progress (`done` once its object is complete). */
  async progress(op: OperationRef, shard: string, value: { docs: number; bytes: number; done: boolean }): Promise<void> {
    const [, progress] = this.keys(op);
    await this.redis.hset(progress, shard, JSON.stringify(value));
  }

  async readProgress(op: OperationRef, shardsTotal: number): Promise<Progress> {
    const [, progress] = this.keys(op);
    const all = await this.redis.hgetall(progress);
    const total: Progress = { shardsDone: 0, shardsTotal, docs: 0, bytes: 0 };
    for (const raw of Object.values(all)) {
      const p = JSON.parse(raw) as { docs: number; bytes: number; done: boolean };
      total.docs += p.docs;
      total.bytes += p.bytes;
      if (p.done) total.shardsDone++;
    }
    return total;
  }

  /** Ids of the operations of this kind Redis still knows in a backend (expired ones pruned). */
  async ids(kind: OperationKind, backend: BackendName): Promise<string[]> {
    return (await this.all(kind, backend)).map((s) => s.op.id);
  }

  /**
   * Forget a finished operation whose backup was deleted at `where` (its manifest's location):
   * status answers 404 from then on, in every process. Each process keeps finished manifests
   * for a while (manifest-cache.ts), so the deletion is also marked for as long as one may keep
   * it: a process that finds the mark forgets its copy (wasDeleted).
   */
  async forget(op: OperationRef, where: string): Promise<void> {
    const [state, progress, ids] = this.keys(op);
    const mark = `${state}:deleted`;
    await this.redis.multi().del(state, progress).srem(ids, op.id).sadd(mark, where).expire(mark, DELETED_MARK_S).exec();
  }

  /** Whether the backup whose manifest lies at `where` was deleted in the last DELETED_MARK_S (forget). */
  async wasDeleted(op: OperationRef, where: string): Promise<boolean> {
    return (await this.redis.sismember(`${this.key(op)}:deleted`, where)) === 1;
  }

  /** Ask every worker running a job of this operation to abort it. */
  async publishCancel(op: OperationRef): Promise<void> {
    await this.redis.publish(CANCEL_CHANNEL, operationKey(op));
  }
}
