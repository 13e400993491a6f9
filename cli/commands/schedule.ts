/**
 * `shardvault schedule …`: backup schedules through a running shardvault's
 * /v1/backup-schedules API.
 *
 *     shardvault schedule set nightly --cron "0 3 * * *" --timezone Europe/Berlin --backend s3 --keep-daily 7 --keep-weekly 4
 *     shardvault schedule list
 *     shardvault schedule show nightly
 *     shardvault schedule run nightly
 *     shardvault schedule delete nightly
 */
import type { ScheduleView } from '../../shared/schedules/contract.ts';
import { parseCommandLine, runApiCommand, UsageError } from '../api-command.ts';
import { apiKeyFromEnv, createClient, DEFAULT_URL } from '../client.ts';
import type { CliIo } from '../command.ts';
import { EXIT } from '../exit-codes.ts';

const HELP = `Usage: shardvault schedule <command> [options]   (through a running shardvault's API)

  shardvault schedule set    NAME (--cron EXPR [--timezone TZ] | --every DURATION) --backend BACKEND
                             [--include A,B | --exclude A,B] [--compression LEVEL] [--id-prefix P]
                             [--keep-last N] [--keep-hourly N] [--keep-daily N] [--keep-weekly N]
                             [--keep-monthly N] [--max-age DURATION]
  shardvault schedule list
  shardvault schedule show   NAME
  shardvault schedule run    NAME        run it now (refused while a run of it is going on)
  shardvault schedule delete NAME        its backups stay

Each run backs up under the id <id-prefix>-<yyyymmdd>-<hhmmss> (the UTC time it was due; the
prefix defaults to NAME), incremental on the schedule's last successful backup. EXPR has 5 or 6
fields (or is a name such as @daily); --every first runs one DURATION after it is set. A run due
while the previous one goes on is skipped. After each successful run the retention (restic's rules,
periods in --timezone) deletes the schedule's own backups it does not keep; never the newest,
never one made by hand or by another schedule. DURATION is a number and s, m, h, d or w.

Options:
  --url=URL        the API (default ${DEFAULT_URL})
  --json           print the API's JSON answers on stdout instead of text
  -h, --help       this help

Exit status: 0 done; 1 refused by the API or unreachable; 2 bad arguments.
`;

const SUBCOMMANDS = ['set', 'list', 'show', 'run', 'delete'] as const;
type Subcommand = (typeof SUBCOMMANDS)[number];

const KEEP = { 'keep-last': 'keepLast', 'keep-hourly': 'keepHourly', 'keep-daily': 'keepDaily', 'keep-weekly': 'keepWeekly', 'keep-monthly': 'keepMonthly' } as const;
const SET_OPTIONS = ['cron', 'every', 'timezone', 'backend', 'include', 'exclude', 'compression', 'id-prefix', 'max-age', ...Object.keys(KEEP)];

const OPTIONS = {
  url: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  cron: { type: 'string' },
  every: { type: 'string' },
  timezone: { type: 'string' },
  backend: { type: 'string' },
  include: { type: 'string', multiple: true },
  exclude: { type: 'string', multiple: true },
  compression: { type: 'string' },
  'id-prefix': { type: 'string' },
  'max-age': { type: 'string' },
  'keep-last': { type: 'string' },
  'keep-hourly': { type: 'string' },
  'keep-daily': { type: 'string' },
  'keep-weekly': { type: 'string' },
  'keep-monthly': { type: 'string' },
} as const;

type Values = Partial<Record<keyof typeof OPTIONS, string | string[] | boolean>>;

function parse(argv: string[]): { sub: Subcommand; name: string; values: Values } | 'help' {
  const { values, positionals } = parseCommandLine(argv, OPTIONS);
  if (values.help) return 'help';
  const [sub, ...rest] = positionals;
  if (!sub || !(SUBCOMMANDS as readonly string[]).includes(sub)) {
    throw new UsageError(sub ? `unknown command ${JSON.stringify(sub)}: use set, list, show, run or delete` : 'name a command: set, list, show, run or delete');
  }
  const command = sub as Subcommand;
  const wanted = command === 'list' ? 0 : 1;
  if (rest.length !== wanted) throw new UsageError(`${command} takes ${wanted ? 'NAME' : 'no argument'}${rest.length > wanted ? `; unexpected ${JSON.stringify(rest[wanted])}` : ''}`);
  for (const option of Object.keys(values)) {
    if (!['url', 'json', 'help', ...(command === 'set' ? SET_OPTIONS : [])].includes(option)) throw new UsageError(`${command} does not take --${option}`);
  }
  return { sub: command, name: rest[0] ?? '', values };
}

/** The PUT body of `set`: only what was given, so the API names what is missing or wrong. */
function scheduleBody(v: Values): Record<string, unknown> {
  const text = (k: keyof typeof OPTIONS) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const list = (k: 'include' | 'exclude') => ((v[k] as string[] | undefined) ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  const retention: Record<string, unknown> = {};
  for (const [flag, field] of Object.entries(KEEP)) {
    const raw = text(flag as keyof typeof OPTIONS);
    if (raw === undefined) continue;
    if (!/^\d+$/.test(raw)) throw new UsageError(`--${flag} takes a whole number, got ${JSON.stringify(raw)}`);
    retention[field] = Number(raw);
  }
  if (text('max-age') !== undefined) retention.maxAge = text('max-age');
  return {
    ...(text('cron') !== undefined ? { cron: text('cron') } : {}),
    ...(text('every') !== undefined ? { every: text('every') } : {}),
    ...(text('timezone') !== undefined ? { timezone: text('timezone') } : {}),
    ...(text('backend') !== undefined ? { backend: text('backend') } : {}),
    ...(list('include').length ? { include: list('include') } : {}),
    ...(list('exclude').length ? { exclude: list('exclude') } : {}),
    ...(text('compression') !== undefined ? { config: { CompressionLevel: text('compression') } } : {}),
    ...(text('id-prefix') !== undefined ? { idPrefix: text('id-prefix') } : {}),
    ...(Object.keys(retention).length ? { retention } : {}),
  };
}

function describeRetention(s: ScheduleView): string {
  const r = s.retention;
  if (!r) return 'keeps every backup';
  const parts = Object.entries(KEEP).flatMap(([flag, field]) => (r[field] ? [`${flag.slice(5)} ${r[field]}`] : []));
  if (r.maxAge) parts.push(`younger than ${r.maxAge}`);
  return `keeps ${parts.join(', ')}`;
}

function printSchedule(io: CliIo, s: ScheduleView): void {
  const run = (r: ScheduleView['lastRun']) => (r ? `${r.id} ${r.status}${r.durationSeconds !== undefined ? ` in ${r.durationSeconds.toFixed(1)} s` : ''}${r.error ? ` — ${r.error}` : ''}` : undefined);
  const rows: [string, string | undefined][] = [
    ['when', s.cron ? `cron "${s.cron}" (${s.timezone})` : `every ${s.every}`],
    ['backend', `${s.backend}${s.include ? `, include ${s.include.join(',')}` : ''}${s.exclude ? `, exclude ${s.exclude.join(',')}` : ''}`],
    ['retention', `${describeRetention(s)}${s.kept ? ` (kept: ${s.kept.join(', ')})` : ''}`],
    ['next run', s.nextRunAt],
    ['running', s.running],
    ['last run', run(s.lastRun)],
    ['last success', s.lastSuccess ? `${s.lastSuccess.id} at ${s.lastSuccess.completedAt ?? s.lastSuccess.dueAt}` : undefined],
    ['last skip', run(s.lastSkip)],
    ['runs', Object.entries(s.runs).map(([k, n]) => `${n} ${k}`).join(', ')],
  ];
  io.stdout.write(`schedule ${s.name}\n`);
  for (const [k, v] of rows) if (v) io.stdout.write(`  ${`${k}:`.padEnd(14)}${v}\n`);
}

/** `shardvault schedule …` (registered in cli/main.ts). */
export function runScheduleCommand(argv: string[], io: CliIo): Promise<number> {
  return runApiCommand('schedule', io, async () => {
    const parsed = parse(argv);
    if (parsed === 'help') {
      io.stdout.write(HELP);
      return EXIT.OK;
    }
    const { sub, name, values } = parsed;
    const client = createClient({ url: typeof values.url === 'string' ? values.url : DEFAULT_URL, apiKey: apiKeyFromEnv(io.env) }).schedules;
    const json = values.json === true;
    const out = (data: unknown, text: () => void) => (json ? io.stdout.write(`${JSON.stringify(data)}\n`) : text());
    switch (sub) {
      case 'set': {
        const s = await client.set(name, scheduleBody(values));
        out(s, () => printSchedule(io, s));
        break;
      }
      case 'show': {
        const s = await client.get(name);
        out(s, () => printSchedule(io, s));
        break;
      }
      case 'list': {
        const all = await client.list();
        out(all, () => {
          if (all.length === 0) io.stdout.write('no backup schedules\n');
          for (const s of all) {
            io.stdout.write(`${s.name.padEnd(20)} ${(s.cron ? `cron "${s.cron}" ${s.timezone}` : `every ${s.every}`).padEnd(30)} ${s.backend.padEnd(10)} next ${s.nextRunAt ?? '-'}  last ${s.lastRun ? `${s.lastRun.id} ${s.lastRun.status}` : '-'}\n`);
          }
        });
        break;
      }
      case 'run': {
        const r = await client.run(name);
        out(r, () => io.stdout.write(`schedule ${r.schedule}: run queued, backup ${r.id}\n`));
        break;
      }
      case 'delete':
        await client.remove(name);
        out({ deleted: name }, () => io.stdout.write(`schedule ${name} deleted (its backups stay)\n`));
        break;
    }
    return EXIT.OK;
  });
}
