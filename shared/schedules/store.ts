/**
 * Backup schedules in Redis: their definitions, and what their runs did.
 *
 *   {shardvault}:schedules             hash: name → definition (JSON)
 *   {shardvault}:schedule:<name>       hash: running (the backup id of the run going on),
 *                                      recorded (the backup id of the last run recorded),
 *                                      lastRun, lastSuccess, lastSkip, kept (JSON),
 *                                      runs:<OUTCOME> (counters: SUCCESS, FAILED, CANCELED, SKIPPED)
 *
 * `running` is the schedule's claim: a run starts only when it can set it (no run is going on,
 * or the one named there has ended), so two runs of one schedule never overlap, whichever
 * workers take them. BullMQ's job scheduler (one job per due time, under a deterministic job
 * id) keeps two API replicas or a restart from adding a run twice.
 */
import type { Redis } from 'ioredis';
import { PREFIX } from '../jobs/catalog.ts';
import { RUN_OUTCOMES, type RunOutcome, type RunRecord, type ScheduleView } from './contract.ts';
import type { ScheduleDefinition } from './definition.ts';

const DEFINITIONS = `${PREFIX}:schedules`;
const stateKey = (name: string) => `${PREFIX}:schedule:${name}`;

/** What a schedule's runs did (the run part of what GET answers). */
export type ScheduleState = Pick<ScheduleView, 'running' | 'lastRun' | 'lastSuccess' | 'lastSkip' | 'kept' | 'runs'>;

// KEYS[1] state; ARGV[1] the id to claim for, ARGV[2] the id it may replace ('' for none).
// Sets `running` when it is absent, already this id, or the replaceable one; answers the holder.
const CLAIM = `
local cur = redis.call('HGET', KEYS[1], 'running')
if (not cur) or cur == ARGV[1] or (ARGV[2] ~= '' and cur == ARGV[2]) then
  redis.call('HSET', KEYS[1], 'running', ARGV[1])
  return ARGV[1]
end
return cur
`;

// KEYS[1] state; ARGV[1] id. Clears `running` only if it is still this run's.
const RELEASE = `
if redis.call('HGET', KEYS[1], 'running') == ARGV[1] then redis.call('HDEL', KEYS[1], 'running') end
return 1
`;

// KEYS[1] state; ARGV[1] field (lastRun or lastSkip), ARGV[2] the run (JSON), ARGV[3] its backup
// id ('' for a skip: always counted), ARGV[4] outcome, ARGV[5] the run again when a SUCCESS, else ''.
const RECORD = `
if ARGV[3] ~= '' then
  if redis.call('HGET', KEYS[1], 'recorded') == ARGV[3] then return 0 end
  redis.call('HSET', KEYS[1], 'recorded', ARGV[3])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'lastSuccess', ARGV[5]) end
redis.call('HINCRBY', KEYS[1], 'runs:' .. ARGV[4], 1)
return 1
`;

const parse = <T>(raw: string | undefined): T | undefined => (raw ? (JSON.parse(raw) as T) : undefined);

export class ScheduleStore {
  constructor(private readonly redis: Redis) {}

  async save(def: ScheduleDefinition): Promise<void> {
    await this.redis.hset(DEFINITIONS, def.name, JSON.stringify(def));
  }

  async get(name: string): Promise<ScheduleDefinition | undefined> {
    return parse<ScheduleDefinition>((await this.redis.hget(DEFINITIONS, name)) ?? undefined);
  }

  async list(): Promise<ScheduleDefinition[]> {
    const all = await this.redis.hgetall(DEFINITIONS);
    return Object.values(all)
      .map((raw) => JSON.parse(raw) as ScheduleDefinition)
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Forget a schedule and its runs; answers whether it existed. */
  async remove(name: string): Promise<boolean> {
    const [[, removed]] = (await this.redis.multi().hdel(DEFINITIONS, name).del(stateKey(name)).exec()) as [[unknown, number]];
    return removed === 1;
  }

  async state(name: string): Promise<ScheduleState> {
    const h = await this.redis.hgetall(stateKey(name));
    return {
      ...(h.running ? { running: h.running } : {}),
      ...(h.lastRun ? { lastRun: parse<RunRecord>(h.lastRun) } : {}),
      ...(h.lastSuccess ? { lastSuccess: parse<RunRecord>(h.lastSuccess) } : {}),
      ...(h.lastSkip ? { lastSkip: parse<RunRecord>(h.lastSkip) } : {}),
      ...(h.kept ? { kept: parse<string[]>(h.kept) } : {}),
      runs: Object.fromEntries(RUN_OUTCOMES.map((o) => [o, Number(h[`runs:${o}`] ?? 0)])) as Record<RunOutcome, number>,
    };
  }

  /**
   * Claim the schedule for the run of backup `id` (see CLAIM); `replacing` is a holder known
   * to have ended. Answers the id holding it afterwards: `id` when claimed.
   */
  async claim(name: string, id: string, replacing = ''): Promise<string> {
    return (await this.redis.eval(CLAIM, 1, stateKey(name), id, replacing)) as string;
  }

  async release(name: string, id: string): Promise<void> {
    await this.redis.eval(RELEASE, 1, stateKey(name), id);
  }

  /**
   * Record how a run ended (a skipped run as `lastSkip`), and count it. A run is counted once:
   * two runs of one backup id (a second `run` in the same second joins the first) record one.
   */
  async record(name: string, run: RunRecord): Promise<void> {
    const skipped = run.status === 'SKIPPED';
    await this.redis.eval(RECORD, 1, stateKey(name), skipped ? 'lastSkip' : 'lastRun', JSON.stringify(run), skipped ? '' : run.id, run.status, run.status === 'SUCCESS' ? JSON.stringify(run) : '');
  }

  async setKept(name: string, ids: string[]): Promise<void> {
    await this.redis.hset(stateKey(name), 'kept', JSON.stringify(ids));
  }
}
