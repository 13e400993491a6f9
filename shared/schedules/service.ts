/**
 * Backup schedules as the API (and the CLI through it) see them: set, show, list, delete and
 * run now. A schedule is its definition (store.ts) plus a BullMQ job scheduler of the same
 * name on the `schedules` queue, which adds one `run-schedule` job per due time; the runs
 * themselves happen in the workers (worker/schedule-run.ts).
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { enabledBackends } from '../backends/index.ts';
import { isTerminal } from '../backups/contract.ts';
import { readRepairingStuck } from '../backups/repair.ts';
import { OperationStore } from '../backups/state.ts';
import type { Config } from '../config.ts';
import { ConflictError, NotFoundError } from '../errors.ts';
import { operationRef } from '../jobs/operation.ts';
import { openProducer } from '../jobs/queues.ts';
import { PREFIX, RUN_SCHEDULE_JOB, SCHEDULE_RUN_OPTIONS, SCHEDULES_QUEUE, type ScheduleRunPayload } from '../jobs/catalog.ts';
import type { Logger } from '../logger.ts';
import { assertScheduleName, backupIdFor, parseSchedule, repeatOptions, type ScheduleDefinition } from './definition.ts';
import type { ScheduleView } from './contract.ts';
import { ScheduleStore } from './store.ts';

export interface ScheduleService {
  set(name: string, body: unknown): Promise<ScheduleView>;
  get(name: string): Promise<ScheduleView>;
  list(): Promise<ScheduleView[]>;
  remove(name: string): Promise<void>;
  /** Queue a run now; answers the id of the backup it makes. A ConflictError while a run is going on. */
  runNow(name: string): Promise<{ schedule: string; id: string; dueAt: string }>;
  close(): Promise<void>;
}

export function createScheduleService(deps: { config: Config; redis: Redis; logger: Logger }): ScheduleService {
  const store = new ScheduleStore(deps.redis);
  const operations = new OperationStore(deps.redis);
  // Only for reading a claimed backup's state as the status path does (readRepairingStuck).
  const producer = openProducer(deps.redis);
  const queue = new Queue<ScheduleRunPayload>(SCHEDULES_QUEUE, { connection: deps.redis, prefix: PREFIX });
  const enabled = enabledBackends(deps.config.backends);

  async function definition(name: string): Promise<ScheduleDefinition> {
    const def = await store.get(assertScheduleName(name));
    if (!def) throw new NotFoundError(`backup schedule ${JSON.stringify(name)} not found`);
    return def;
  }

  async function view(def: ScheduleDefinition): Promise<ScheduleView> {
    const [state, scheduler] = await Promise.all([store.state(def.name), queue.getJobScheduler(def.name)]);
    return { ...def, ...state, ...(scheduler?.next ? { nextRunAt: new Date(scheduler.next).toISOString() } : {}) };
  }

  return {
    async set(name, body) {
      const def = parseSchedule(name, body, enabled);
      await store.save(def);
      // Upserting is idempotent: two replicas setting the same schedule leave one scheduler.
      await queue.upsertJobScheduler(def.name, repeatOptions(def), { name: RUN_SCHEDULE_JOB, data: { schedule: def.name }, opts: SCHEDULE_RUN_OPTIONS });
      deps.logger.info({ schedule: def.name, cron: def.cron, every: def.every, backend: def.backend }, 'backup schedule set');
      return view(def);
    },

    async get(name) {
      return view(await definition(name));
    },

    async list() {
      return Promise.all((await store.list()).map(view));
    },

    async remove(name) {
      await definition(name);
      await queue.removeJobScheduler(name);
      await store.remove(name);
      deps.logger.info({ schedule: name }, 'backup schedule deleted');
    },

    async runNow(name) {
      const def = await definition(name);
      // A run while one is going would only be recorded SKIPPED: refused instead, naming it. (A
      // claim whose backup has ended, or that Redis no longer knows, is taken over by the run; a
      // backup that can no longer end by itself is recorded FAILED first, as a status read does.)
      const { running } = await store.state(def.name);
      const op = running ? operationRef('backup', def.backend, running) : undefined;
      const state = op ? await readRepairingStuck({ ops: operations, producer, logger: deps.logger }, op) : undefined;
      if (state && !isTerminal(state.status)) {
        throw new ConflictError(`backup schedule ${JSON.stringify(name)} has a run going on: backup ${running} is ${state.status}; run it again once that has ended`);
      }
      const due = new Date();
      await queue.add(RUN_SCHEDULE_JOB, { schedule: def.name, dueAt: due.getTime() }, { ...SCHEDULE_RUN_OPTIONS, jobId: `run:${def.name}:${due.getTime()}` });
      return { schedule: def.name, id: backupIdFor(def, due), dueAt: due.toISOString() };
    },

    close: async () => {
      await Promise.all([queue.close(), producer.close()]);
    },
  };
}
