/**
 * Backup schedules, beside Weaviate's backup paths (shared/schedules/service.ts):
 *
 *   PUT    /v1/backup-schedules/{name}       {cron | every, timezone?, backend, include?, exclude?, config?, idPrefix?, retention?}
 *                                            → the schedule, with nextRunAt and its runs
 *   GET    /v1/backup-schedules              → {schedules: [...]}
 *   GET    /v1/backup-schedules/{name}       → the schedule
 *   DELETE /v1/backup-schedules/{name}       → 204 (its backups stay)
 *   POST   /v1/backup-schedules/{name}/run   run it now → 202 {schedule, id, dueAt}
 */
import { Hono } from 'hono';
import { createScheduleService, type ScheduleService } from '../../shared/schedules/service.ts';
import { readJson } from '../body.ts';
import type { ApiDeps } from '../deps.ts';
import { reply } from '../reply.ts';
import { requireRedis } from '../require-redis.ts';

export interface ScheduleRoutes {
  app: Hono;
  close(): Promise<void>;
}

export function scheduleRoutes(deps: ApiDeps): ScheduleRoutes {
  let created: ScheduleService | undefined;
  // Created on first use, so an API that never sees a schedule call opens no queue.
  const service = (): ScheduleService => (created ??= createScheduleService(deps));
  const app = new Hono();
  app.use('*', requireRedis(deps.redis));

  app.get('/', async (c) => reply(c, { schedules: await service().list() }));
  app.put('/:name', async (c) => reply(c, await service().set(c.req.param('name'), await readJson(c, deps.config.maxBodyBytes))));
  app.get('/:name', async (c) => reply(c, await service().get(c.req.param('name'))));
  app.delete('/:name', async (c) => {
    await service().remove(c.req.param('name'));
    return c.body(null, 204);
  });
  app.post('/:name/run', async (c) => reply(c, await service().runNow(c.req.param('name')), 202));

  return { app, close: async () => created?.close() };
}
