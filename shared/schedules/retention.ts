/**
 * Which of a schedule's backups its retention keeps, with restic's `forget --keep-*`
 * semantics, in the schedule's time zone:
 *
 * - `keepLast n`: the n newest;
 * - `keepHourly|Daily|Weekly|Monthly n`: walking from the newest, the newest backup of each
 *   hour / day / ISO week / month that has one, for the n most recent such periods;
 * - `maxAge d`: every backup younger than d (restic's `--keep-within`, counted from now).
 *
 * A backup is kept when any rule keeps it; the newest is always kept, so a retention never
 * leaves a schedule without a backup. Pure: the caller lists the schedule's SUCCESS backups and
 * deletes the rest.
 */
import { durationMs, type Retention } from './definition.ts';

export interface Dated {
  id: string;
  /** When the backup started (ISO 8601). */
  startedAt: string;
}

type Period = 'hour' | 'day' | 'week' | 'month';

/** The wall-clock parts of an instant in a time zone. */
function wallClock(at: Date, timezone: string): { year: number; month: number; day: number; hour: number } {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone: timezone, year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', hourCycle: 'h23' }).formatToParts(at);
  const get = (type: string) => Number(parts.find((p) => p.type === type)!.value);
  return { year: get('year'), month: get('month'), day: get('day'), hour: get('hour') };
}

/** ISO 8601 week (year and number) of a calendar date. */
function isoWeek(year: number, month: number, day: number): string {
  const date = new Date(Date.UTC(year, month - 1, day));
  const weekday = date.getUTCDay() || 7;
  date.setUTCDate(date.getUTCDate() + 4 - weekday); // the Thursday of this week decides its year
  const weekYear = date.getUTCFullYear();
  const week = Math.ceil(((date.getTime() - Date.UTC(weekYear, 0, 1)) / 86_400_000 + 1) / 7);
  return `${weekYear}-W${week}`;
}

function periodOf(at: Date, period: Period, timezone: string): string {
  const c = wallClock(at, timezone);
  switch (period) {
    case 'hour':
      return `${c.year}-${c.month}-${c.day}T${c.hour}`;
    case 'day':
      return `${c.year}-${c.month}-${c.day}`;
    case 'week':
      return isoWeek(c.year, c.month, c.day);
    case 'month':
      return `${c.year}-${c.month}`;
  }
}

/** The ids to keep, newest first. */
export function keptBackups(backups: readonly Dated[], retention: Retention, timezone: string, now: Date): string[] {
  const newestFirst = [...backups].sort((a, b) => (a.startedAt < b.startedAt ? 1 : a.startedAt > b.startedAt ? -1 : a.id < b.id ? 1 : -1));
  const rules: { period: Period; left: number; last?: string }[] = [
    { period: 'hour', left: retention.keepHourly ?? 0 },
    { period: 'day', left: retention.keepDaily ?? 0 },
    { period: 'week', left: retention.keepWeekly ?? 0 },
    { period: 'month', left: retention.keepMonthly ?? 0 },
  ];
  let last = retention.keepLast ?? 0;
  const within = retention.maxAge !== undefined ? durationMs(retention.maxAge) : undefined;
  const kept: string[] = [];
  for (const b of newestFirst) {
    const at = new Date(b.startedAt);
    let keep = false;
    if (last > 0) {
      last--;
      keep = true;
    }
    for (const rule of rules) {
      if (rule.left === 0) continue;
      const period = periodOf(at, rule.period, timezone);
      if (period !== rule.last) {
        rule.last = period;
        rule.left--;
        keep = true;
      }
    }
    if (within !== undefined && now.getTime() - at.getTime() < within) keep = true;
    if (keep) kept.push(b.id);
  }
  if (kept.length === 0 && newestFirst.length > 0) kept.push(newestFirst[0]!.id);
  return kept;
}
