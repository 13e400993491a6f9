import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.ts';
import { backupIdFor, parseSchedule } from '../../shared/schedules/definition.ts';
import { keptBackups, type Dated } from '../../shared/schedules/retention.ts';

const at = (iso: string): Dated => ({ id: iso, startedAt: iso });
/** One backup a day at 12:00 UTC, from `from` for `days` days. */
const daily = (from: string, days: number): Dated[] =>
  Array.from({ length: days }, (_, i) => at(new Date(Date.parse(`${from}T12:00:00Z`) + i * 86_400_000).toISOString()));
const NOW = new Date('2026-03-10T13:00:00Z');

describe("retention: restic's keep rules over a fixed history", () => {
  // 2026-02-25 … 2026-03-10, one a day at 12:00 UTC. 2026-03-01 is a Sunday, 03-02 a Monday.
  const history = daily('2026-02-25', 14);

  it('keepLast keeps the n newest', () => {
    expect(keptBackups(history, { keepLast: 3 }, 'UTC', NOW)).toEqual(['2026-03-10T12:00:00.000Z', '2026-03-09T12:00:00.000Z', '2026-03-08T12:00:00.000Z']);
  });

  it('keepDaily keeps the newest of each of the n latest days, days counted in the time zone', () => {
    const backups = ['2026-03-10T23:30:00Z', '2026-03-10T12:00:00Z', '2026-03-09T08:00:00Z', '2026-03-09T07:00:00Z', '2026-03-08T10:00:00Z', '2026-03-07T10:00:00Z'].map(
      (t) => at(new Date(t).toISOString()),
    );
    expect(keptBackups(backups, { keepDaily: 3 }, 'UTC', NOW)).toEqual(['2026-03-10T23:30:00.000Z', '2026-03-09T08:00:00.000Z', '2026-03-08T10:00:00.000Z']);
    // In Tokyo (UTC+9) 03-10 23:30 UTC is already the 11th, and 12:00 UTC the evening of the 10th.
    expect(keptBackups(backups, { keepDaily: 3 }, 'Asia/Tokyo', NOW)).toEqual(['2026-03-10T23:30:00.000Z', '2026-03-10T12:00:00.000Z', '2026-03-09T08:00:00.000Z']);
  });

  it('keepWeekly keeps the newest of each ISO week (Monday to Sunday, in the time zone)', () => {
    expect(keptBackups(history, { keepWeekly: 2 }, 'UTC', NOW)).toEqual(['2026-03-10T12:00:00.000Z', '2026-03-08T12:00:00.000Z']);
    // At UTC+14, 03-08 12:00 UTC is Monday 03-09 already: the week before ends with 03-07.
    expect(keptBackups(history, { keepWeekly: 2 }, 'Pacific/Kiritimati', NOW)).toEqual(['2026-03-10T12:00:00.000Z', '2026-03-07T12:00:00.000Z']);
  });

  it('keepMonthly keeps the newest of each month; keepHourly of each hour', () => {
    expect(keptBackups(history, { keepMonthly: 2 }, 'UTC', NOW)).toEqual(['2026-03-10T12:00:00.000Z', '2026-02-28T12:00:00.000Z']);
    const hours = ['2026-03-10T12:59:00Z', '2026-03-10T12:01:00Z', '2026-03-10T11:30:00Z', '2026-03-10T10:00:00Z'].map((t) => at(new Date(t).toISOString()));
    expect(keptBackups(hours, { keepHourly: 2 }, 'UTC', NOW)).toEqual(['2026-03-10T12:59:00.000Z', '2026-03-10T11:30:00.000Z']);
    // Kolkata is UTC+5:30: 12:01 and 11:30 UTC are 17:31 and 17:00 there, one hour.
    expect(keptBackups(hours, { keepHourly: 2 }, 'Asia/Kolkata', NOW)).toEqual(['2026-03-10T12:59:00.000Z', '2026-03-10T12:01:00.000Z']);
  });

  it('maxAge keeps every backup younger than it; rules add up', () => {
    expect(keptBackups(history, { maxAge: '3d' }, 'UTC', NOW)).toEqual(['2026-03-10T12:00:00.000Z', '2026-03-09T12:00:00.000Z', '2026-03-08T12:00:00.000Z']);
    expect(keptBackups(history, { keepLast: 1, keepMonthly: 2, keepWeekly: 1 }, 'UTC', NOW)).toEqual(['2026-03-10T12:00:00.000Z', '2026-02-28T12:00:00.000Z']);
  });

  it('never keeps nothing: the newest stays when every rule would let it go', () => {
    expect(keptBackups(history, { maxAge: '1h' }, 'UTC', new Date('2027-01-01T00:00:00Z'))).toEqual(['2026-03-10T12:00:00.000Z']);
    expect(keptBackups([], { keepLast: 2 }, 'UTC', NOW)).toEqual([]);
  });
});

describe('schedule definitions', () => {
  const ok = { every: '2s', backend: 'filesystem' };
  const refused = (body: unknown, name = 'nightly') => {
    try {
      parseSchedule(name, body, ['filesystem', 's3']);
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
      return (err as Error).message;
    }
    throw new Error('accepted');
  };

  it('accepts cron or every, with defaults', () => {
    expect(parseSchedule('daily', { cron: '@daily', backend: 'filesystem' }, ['filesystem'], NOW)).toMatchObject({ cron: '@daily' });
    expect(parseSchedule('secondly', { cron: '*/30 * * * * *', backend: 'filesystem' }, ['filesystem'], NOW)).toMatchObject({ cron: '*/30 * * * * *' });
    expect(parseSchedule('nightly', { cron: '0 3 * * *', timezone: 'Europe/Berlin', backend: 'gcp' }, ['filesystem', 'gcs'], NOW)).toMatchObject({
      name: 'nightly', cron: '0 3 * * *', timezone: 'Europe/Berlin', backend: 'gcs', idPrefix: 'nightly',
    });
    expect(parseSchedule('often', { ...ok, retention: { keepLast: 3 } }, ['filesystem'])).toMatchObject({ every: '2s', timezone: 'UTC', retention: { keepLast: 3 } });
  });

  it('refuses bad input naming the field', () => {
    expect(refused({ cron: '61 * * * *', backend: 'filesystem' })).toMatch(/^cron "61 \* \* \* \*" is not a valid cron expression/);
    // Fewer fields would be read as the leading ones: "0 3 * *" as every minute of 00:00–00:59 on the 3rd.
    expect(refused({ cron: '0 3 * *', backend: 'filesystem' })).toMatch(/^cron "0 3 \* \*" has 4 fields: give 5 \(minute hour day-of-month month day-of-week\), 6/);
    expect(refused({ cron: '*', backend: 'filesystem' })).toMatch(/^cron "\*" has 1 field: give 5/);
    expect(refused({ cron: '@sometimes', backend: 'filesystem' })).toMatch(/^cron "@sometimes" is not a valid cron expression/);
    expect(refused({ cron: '0 3 * * *', timezone: 'Mars/Olympus', backend: 'filesystem' })).toMatch(/^timezone "Mars\/Olympus" is not an IANA time zone/);
    expect(refused({ every: '500ms', backend: 'filesystem' })).toMatch(/^every "500ms" is not an interval/);
    expect(refused({ every: '0s', backend: 'filesystem' })).toMatch(/^every "0s" is shorter than the minimum of 1 s/);
    expect(refused({ every: '1m', backend: 'ftp' })).toMatch(/^backend "ftp" is unknown/);
    expect(refused({ every: '1m', backend: 'gcs' })).toMatch(/^backend gcs is not configured/);
    expect(refused({ ...ok, retention: {} })).toMatch(/^retention keeps nothing/);
    expect(refused({ ...ok, retention: { keepLast: 0, keepDaily: 0 } })).toMatch(/^retention keeps nothing/);
    expect(refused({ ...ok, retention: { keepLast: -1 } })).toMatch(/retention\.keepLast must be 0 or more/);
    expect(refused({ ...ok, retention: { maxAge: 'forever' } })).toMatch(/^retention\.maxAge "forever" is not a duration/);
    expect(refused({ ...ok, retention: { keepYearly: 2 } })).toMatch(/^unknown field retention\.keepYearly/);
    expect(refused({ cron: '* * * * *', every: '1m', backend: 'filesystem' })).toMatch(/^give exactly one of cron/);
    expect(refused({ backend: 'filesystem' })).toMatch(/^give exactly one of cron/);
    expect(refused({ every: '1m' })).toMatch(/^backend is required/);
    expect(refused({ ...ok, config: { CompressionLevel: 'Fastest' } })).toMatch(/^config: .*CompressionLevel/);
    expect(refused({ ...ok, idPrefix: 'Nightly!' })).toMatch(/^idPrefix "Nightly!" must be lowercase/);
    expect(refused(ok, 'Bad Name')).toMatch(/^invalid schedule name "Bad Name"/);
  });

  it('names each backup by the time its run was due, as a valid backup id', () => {
    expect(backupIdFor({ idPrefix: 'nightly' }, new Date('2026-03-10T03:00:05.123Z'))).toBe('nightly-20260310-030005');
  });
});
