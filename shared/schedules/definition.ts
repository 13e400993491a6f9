/**
 * A backup schedule as users write it (`PUT /v1/backup-schedules/{name}`), checked completely
 * before anything is stored: every refusal is a ValidationError (422) naming the field.
 *
 *   {cron | every, timezone?, backend, include?, exclude?, config?, idPrefix?, retention?}
 *
 * `cron` is a 5- or 6-field cron expression (or a name such as `@daily`) evaluated in
 * `timezone` (an IANA name, default UTC); `every` a duration (`30s`, `15m`, `6h`, `1d`) of at
 * least MIN_EVERY_MS. Backup ids are `<idPrefix>-<yyyymmdd>-<hhmmss>` (UTC) of the time the
 * run was due, valid under Weaviate's id rule; idPrefix defaults to the schedule's name.
 */
import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';
import { BACKEND_NAMES, type BackendName } from '../backends/backend.ts';
import { parseBackendName } from '../backends/index.ts';
import { MAX_BACKUP_ID_LENGTH } from '../backups/contract.ts';
import { parseCreateRequest } from '../backups/validate.ts';
import { ValidationError } from '../errors.ts';

/** Schedule names: what a backup id may hold, short enough to leave room for the time. */
export const SCHEDULE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** The shortest interval `every` accepts. */
export const MIN_EVERY_MS = 1000;
/** `-yyyymmdd-hhmmss` */
const TIME_SUFFIX_LENGTH = 16;

const DURATION = /^(\d+)(s|m|h|d|w)$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

/** Milliseconds of a duration such as `90s`, `15m`, `6h`, `30d`, `2w`; undefined when it is not one. */
export function durationMs(text: string): number | undefined {
  const m = DURATION.exec(text);
  return m ? Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS] : undefined;
}

const count = (field: string) =>
  z.number({ error: `retention.${field} must be a whole number` }).int(`retention.${field} must be a whole number`).min(0, `retention.${field} must be 0 or more`).optional();

export const retentionSchema = z
  .object({
    keepLast: count('keepLast'),
    keepHourly: count('keepHourly'),
    keepDaily: count('keepDaily'),
    keepWeekly: count('keepWeekly'),
    keepMonthly: count('keepMonthly'),
    maxAge: z.string().optional(),
  })
  .strict();
export type Retention = z.infer<typeof retentionSchema>;

const classList = z.array(z.string().min(1)).optional();

/** The body of PUT /v1/backup-schedules/{name}, before the checks zod cannot make. */
export const scheduleBodySchema = z
  .object({
    cron: z.string().optional(),
    every: z.string().optional(),
    timezone: z.string().optional(),
    backend: z.string({ error: 'backend is required: filesystem, s3 or gcs' }),
    include: classList,
    exclude: classList,
    /** Weaviate's backup config (CompressionLevel, Bucket, Path, …), as POST /v1/backups takes it. */
    config: z.record(z.string(), z.unknown()).optional(),
    idPrefix: z.string().optional(),
    retention: retentionSchema.optional(),
  })
  .strict();

export interface ScheduleDefinition {
  name: string;
  cron?: string;
  every?: string;
  timezone: string;
  backend: BackendName;
  include?: string[];
  exclude?: string[];
  config?: Record<string, unknown>;
  idPrefix: string;
  retention?: Retention;
  updatedAt: string;
}

export function assertScheduleName(name: string): string {
  if (!SCHEDULE_NAME.test(name)) {
    throw new ValidationError(`invalid schedule name ${JSON.stringify(name.slice(0, 140))}: use 1-64 lowercase letters, digits, "_" or "-", starting with a letter or digit`);
  }
  return name;
}

function assertTimezone(tz: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    throw new ValidationError(`timezone ${JSON.stringify(tz.slice(0, 80))} is not an IANA time zone (e.g. "UTC", "Europe/Berlin")`);
  }
}

/**
 * Check a schedule body. `enabled` names the backends this cluster has configured: a schedule
 * of another one could never run.
 */
export function parseSchedule(name: string, body: unknown, enabled: readonly BackendName[], now = new Date()): ScheduleDefinition {
  assertScheduleName(name);
  const parsed = scheduleBodySchema.safeParse(body ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.');
    if (issue.code === 'unrecognized_keys') {
      throw new ValidationError(`unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `${field ? `${field}.` : ''}${k}`).join(', ')}: a schedule has cron or every, timezone, backend, include, exclude, config, idPrefix and retention`);
    }
    throw new ValidationError(field && !issue.message.includes(field) ? `${field}: ${issue.message}` : issue.message);
  }
  const b = parsed.data;
  if ((b.cron === undefined) === (b.every === undefined)) throw new ValidationError('give exactly one of cron (a cron expression) and every (an interval such as "15m")');
  const timezone = b.timezone ?? 'UTC';
  assertTimezone(timezone);
  if (b.cron !== undefined) {
    // cron-parser reads fewer fields as the leading ones ("0 3 * *" as minute 0–59 of hour 0 on
    // day 3): a forgotten field would silently mean another schedule.
    const fields = b.cron.trim().split(/\s+/);
    if (!(fields.length === 5 || fields.length === 6 || (fields.length === 1 && fields[0]!.startsWith('@')))) {
      throw new ValidationError(`cron ${JSON.stringify(b.cron.slice(0, 80))} has ${fields.length} field${fields.length === 1 ? '' : 's'}: give 5 (minute hour day-of-month month day-of-week), 6 (seconds first) or a name such as @daily`);
    }
    try {
      CronExpressionParser.parse(b.cron, { tz: timezone, currentDate: now }).next();
    } catch (err) {
      throw new ValidationError(`cron ${JSON.stringify(b.cron.slice(0, 80))} is not a valid cron expression: ${(err as Error).message}`);
    }
  }
  if (b.every !== undefined) {
    const ms = durationMs(b.every);
    if (ms === undefined) throw new ValidationError(`every ${JSON.stringify(b.every.slice(0, 40))} is not an interval: use a number and s, m, h, d or w (e.g. "15m")`);
    if (ms < MIN_EVERY_MS) throw new ValidationError(`every ${JSON.stringify(b.every)} is shorter than the minimum of ${MIN_EVERY_MS / 1000} s`);
  }
  let backend: BackendName;
  try {
    backend = parseBackendName(b.backend);
  } catch {
    throw new ValidationError(`backend ${JSON.stringify(b.backend.slice(0, 40))} is unknown: use one of ${BACKEND_NAMES.join(', ')}`);
  }
  if (!enabled.includes(backend)) throw new ValidationError(`backend ${backend} is not configured in this cluster (configured: ${enabled.join(', ')})`);
  if (b.include?.length && b.exclude?.length) throw new ValidationError('include and exclude cannot both be given');
  const idPrefix = b.idPrefix ?? name;
  if (!/^[a-z0-9_-]+$/.test(idPrefix) || idPrefix.length + TIME_SUFFIX_LENGTH > MAX_BACKUP_ID_LENGTH) {
    throw new ValidationError(`idPrefix ${JSON.stringify(idPrefix.slice(0, 80))} must be lowercase letters, digits, "_" or "-", at most ${MAX_BACKUP_ID_LENGTH - TIME_SUFFIX_LENGTH} long (backup ids add "-yyyymmdd-hhmmss")`);
  }
  if (b.config) {
    // The backups it starts are checked as POST /v1/backups checks them, once, here.
    try {
      parseCreateRequest({ id: backupIdFor({ idPrefix }, now), config: b.config });
    } catch (err) {
      throw new ValidationError(`config: ${(err as Error).message}`);
    }
  }
  if (b.retention) {
    const r = b.retention;
    if (r.maxAge !== undefined && durationMs(r.maxAge) === undefined) {
      throw new ValidationError(`retention.maxAge ${JSON.stringify(r.maxAge.slice(0, 40))} is not a duration: use a number and s, m, h, d or w (e.g. "30d")`);
    }
    const keeps = [r.keepLast, r.keepHourly, r.keepDaily, r.keepWeekly, r.keepMonthly].some((n) => (n ?? 0) > 0) || (r.maxAge !== undefined && durationMs(r.maxAge)! > 0);
    if (!keeps) throw new ValidationError('retention keeps nothing: give keepLast, keepHourly, keepDaily, keepWeekly or keepMonthly above 0, or a maxAge (omit retention to keep every backup)');
  }
  return {
    name,
    ...(b.cron !== undefined ? { cron: b.cron } : { every: b.every! }),
    timezone,
    backend,
    ...(b.include?.length ? { include: b.include } : {}),
    ...(b.exclude?.length ? { exclude: b.exclude } : {}),
    ...(b.config ? { config: b.config } : {}),
    idPrefix,
    ...(b.retention ? { retention: b.retention } : {}),
    updatedAt: now.toISOString(),
  };
}

/** The backup id of a run due at `due`: `<idPrefix>-yyyymmdd-hhmmss` in UTC. */
export function backupIdFor(def: Pick<ScheduleDefinition, 'idPrefix'>, due: Date): string {
  const iso = due.toISOString();
  return `${def.idPrefix}-${iso.slice(0, 10).replaceAll('-', '')}-${iso.slice(11, 19).replaceAll(':', '')}`;
}

/**
 * BullMQ's repeat options of a schedule. An interval's first run is one interval after the
 * schedule was set (`updatedAt`), as a cron schedule's is at its first due time (BullMQ would run it at once; `run now`
 * is for that). A schedule set again with the same interval keeps its times (BullMQ reads
 * startDate only for a scheduler's first run).
 */
export function repeatOptions(def: ScheduleDefinition): { pattern: string; tz: string } | { every: number; startDate: number } {
  if (def.cron !== undefined) return { pattern: def.cron, tz: def.timezone };
  const every = durationMs(def.every!)!;
  return { every, startDate: Date.parse(def.updatedAt) + every };
}
