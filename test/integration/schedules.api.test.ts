/**
 * /v1/backup-schedules over the in-process API and a worker: set, show, list, run now, delete;
 * every bad body refused with a 422 naming the field; the metrics alerting needs.
 */
import { describe, expect, it } from 'vitest';
import { useApiWithWorker } from '../support/api-worker.ts';

const t = useApiWithWorker({ index: 'Notes', docs: 50 });

const json = async (res: Response) => (await res.json()) as Record<string, unknown>;

describe('/v1/backup-schedules', () => {
  it('refuses bad schedules with a 422 naming the field, and stores nothing', async () => {
    const cases: [unknown, RegExp][] = [
      [{ cron: 'every day', backend: 'filesystem' }, /^cron "every day" is not a valid cron expression/],
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
});
