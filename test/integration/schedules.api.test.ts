/**
 * /v1/backup-schedules over the in-process API and a worker: set, show, list, run now, delete;
 * every bad body refused with a 422 naming the field; the metrics alerting needs.
 */
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { OperationStore } from '../../shared/backups/state.ts';
import { operationRef } from '../../shared/jobs/operation.ts';
import { ScheduleStore } from '../../shared/schedules/store.ts';
import { useApiWithWorker } from '../support/api-worker.ts';

const t = useApiWithWorker({ index: 'Notes', docs: 50 });

const json = async (res: Response) => (await res.json()) as Record<string, unknown>;

describe('/v1/backup-schedules', () => {
  it('refuses bad schedules with a 422 naming the field, and stores nothing', async () => {
    const cases: [unknown, RegExp][] = [
      [{ cron: 'every day', backend: 'filesystem' }, /^cron "every day" has 2 fields: give 5/],
      [{ cron: 'every day at 3 am', backend: 'filesystem' }, /^cron "every day at 3 am" is not a valid cron expression/],
      [{ cron: '0 3 * * *', timezone: 'Berlin', backend: 'filesystem' }, /^timezone "Berlin" is not an IANA time zone/],
      [{ every: '0s', backend: 'filesystem' }, /^every "0s" is shorter than the minimum/],
      [{ every: '1h', backend: 'tape' }, /^backend "tape" is unknown/],
      [{ every: '1h', backend: 's3' }, /^backend s3 is not configured/],
      [{ every: '1h', backend: 'filesystem', retention: { keepLast: 0 } }, /^retention keeps nothing/],
      [{ every: '1h', backend: 'filesystem', retention: { keepWeekly: 'two' } }, /retention\.keepWeekly must be a whole number/],
      [{ every: '1h', backend: 'filesystem', config: { CompressionLevel: 'Max' } }, /^config: /],
      ['not json', /JSON/],
    ];
    for (const [body, message] of cases) {
      const res = await t.call('PUT', '/v1/backup-schedules/nightly', body);
      expect(res.status, JSON.stringify(body)).toBe(body === 'not json' ? 400 : 422);
      expect((await json(res)).error).toEqual([{ message: expect.stringMatching(message) }]);
    }
    expect((await t.call('PUT', '/v1/backup-schedules/Bad!', { every: '1h', backend: 'filesystem' })).status).toBe(422);
    expect((await t.call('GET', '/v1/backup-schedules/nightly')).status).toBe(404);
    expect(await json(await t.call('GET', '/v1/backup-schedules'))).toEqual({ schedules: [] });
  });

  it('sets, shows, runs, lists and deletes a schedule; its runs show in the metrics', async () => {
    const set = await t.call('PUT', '/v1/backup-schedules/nightly', {
      cron: '0 3 * * *', timezone: 'Europe/Berlin', backend: 'filesystem', include: ['Notes'], config: { CompressionLevel: 'BestSpeed' }, retention: { keepDaily: 7, keepLast: 2 },
    });
    expect(set.status).toBe(200);
    const shown = await json(set);
    expect(shown).toMatchObject({ name: 'nightly', cron: '0 3 * * *', timezone: 'Europe/Berlin', backend: 'filesystem', idPrefix: 'nightly', runs: { SUCCESS: 0, FAILED: 0, CANCELED: 0, SKIPPED: 0 } });
    // The next 03:00 in Berlin is 01:00 or 02:00 UTC.
    expect(shown.nextRunAt).toMatch(/T0[12]:00:00\.000Z$/);

    const run = await t.call('POST', '/v1/backup-schedules/nightly/run');
    expect(run.status).toBe(202);
    const { id } = (await json(run)) as { id: string };
    expect(id).toMatch(/^nightly-\d{8}-\d{6}$/);
    const deadline = Date.now() + 30_000;
    let state = shown;
    // A successful run is recorded, then its retention applied: `kept` comes last.
    while (!(state.lastRun && ((state.lastRun as { status: string }).status !== 'SUCCESS' || state.kept)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      state = await json(await t.call('GET', '/v1/backup-schedules/nightly'));
    }
    expect(state.lastRun).toMatchObject({ id, status: 'SUCCESS', durationSeconds: expect.any(Number) });
    expect(state.lastSuccess).toMatchObject({ id });
    expect(state.kept).toEqual([id]);
    expect(state.runs).toEqual({ SUCCESS: 1, FAILED: 0, CANCELED: 0, SKIPPED: 0 });
    // The backup it made is an ordinary backup, marked with the schedule.
    const list = (await (await t.call('GET', '/v1/backups/filesystem')).json()) as { id: string; schedule?: string; status: string }[];
    expect(list.find((b) => b.id === id)).toMatchObject({ status: 'SUCCESS', schedule: 'nightly' });

    const metrics = await (await t.call('GET', '/metrics')).text();
    const completedAt = Date.parse((state.lastSuccess as { completedAt: string }).completedAt) / 1000;
    expect(metrics).toContain(`shardvault_schedule_last_success_timestamp_seconds{schedule="nightly"} ${completedAt}`);
    expect(metrics).toContain('shardvault_schedule_runs_total{schedule="nightly",outcome="SUCCESS"} 1');
    expect(metrics).toContain('shardvault_schedule_runs_total{schedule="nightly",outcome="SKIPPED"} 0');

    const all = await json(await t.call('GET', '/v1/backup-schedules'));
    expect((all.schedules as { name: string }[]).map((s) => s.name)).toEqual(['nightly']);
    expect((await t.call('DELETE', '/v1/backup-schedules/nightly')).status).toBe(204);
    expect((await t.call('GET', '/v1/backup-schedules/nightly')).status).toBe(404);
    expect((await t.call('DELETE', '/v1/backup-schedules/nightly')).status).toBe(404);
    expect((await t.call('POST', '/v1/backup-schedules/nightly/run')).status).toBe(404);
    // Its backups stay.
    expect((await t.call('GET', `/v1/backups/filesystem/${id}`)).status).toBe(200);
  });

  it('first runs an interval schedule one interval after it is set, and refuses to run it now while a run is going', async () => {
    const set = await json(await t.call('PUT', '/v1/backup-schedules/hourly', { every: '1h', backend: 'filesystem', include: ['Notes'] }));
    expect(Date.parse(set.nextRunAt as string) - Date.parse(set.updatedAt as string)).toBe(3_600_000);

    // A run that is going (its claim held, its backup STARTED): run now would only be skipped.
    const redis = new Redis(t.redisUrl);
    try {
      const going = 'hourly-20261206-000000';
      const op = operationRef('backup', 'filesystem', going);
      const operations = new OperationStore(redis);
      expect(await new ScheduleStore(redis).claim('hourly', going)).toBe(going);
      await operations.begin(op, { path: 'hourly', classes: ['Notes'], startedAt: new Date().toISOString(), shardsTotal: 1, overrides: {} });
      const refused = await t.call('POST', '/v1/backup-schedules/hourly/run');
      expect(refused.status).toBe(422);
      expect((await json(refused)).error).toEqual([{ message: `backup schedule "hourly" has a run going on: backup ${going} is STARTED; run it again once that has ended` }]);

      // Once it has ended, run now starts a run, which takes the claim over.
      await operations.advance(op, 'FAILED', { error: 'ended for the test', completedAt: new Date().toISOString() });
      const run = await t.call('POST', '/v1/backup-schedules/hourly/run');
      expect(run.status).toBe(202);
      const { id } = (await json(run)) as { id: string };
      expect(await lastRunOf('hourly')).toMatchObject({ id, status: 'SUCCESS' });
    } finally {
      redis.disconnect();
    }
    expect((await t.call('DELETE', '/v1/backup-schedules/hourly')).status).toBe(204);
  });

  it('runs a schedule now whose claimed backup can no longer end (its jobs never added), recording that one FAILED as a status read does', async () => {
    expect((await t.call('PUT', '/v1/backup-schedules/stuck', { every: '1h', backend: 'filesystem', include: ['Notes'] })).status).toBe(200);
    const redis = new Redis(t.redisUrl);
    try {
      const stuck = 'stuck-20261206-000000';
      const op = operationRef('backup', 'filesystem', stuck);
      const operations = new OperationStore(redis);
      expect(await new ScheduleStore(redis).claim('stuck', stuck)).toBe(stuck);
      // Recorded STARTED a minute ago, and its flow never added (Redis went away as it started).
      await operations.begin(op, { path: 'stuck', classes: ['Notes'], startedAt: new Date(Date.now() - 60_000).toISOString(), shardsTotal: 1, overrides: {} });
      const run = await t.call('POST', '/v1/backup-schedules/stuck/run');
      expect(run.status, JSON.stringify(await json(run.clone()))).toBe(202);
      expect(await operations.get(op)).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/was lost: its jobs do not exist/) });
      const { id } = (await json(run)) as { id: string };
      expect(await lastRunOf('stuck')).toMatchObject({ id, status: 'SUCCESS' });
    } finally {
      redis.disconnect();
    }
    expect((await t.call('DELETE', '/v1/backup-schedules/stuck')).status).toBe(204);
  });
});

/** The schedule's last run once it has one and no run is going (30 s at most). */
async function lastRunOf(name: string): Promise<unknown> {
  const deadline = Date.now() + 30_000;
  let state: Record<string, unknown> = {};
  while (!(state.lastRun && !state.running) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    state = await json(await t.call('GET', `/v1/backup-schedules/${name}`));
  }
  return state.lastRun;
}
