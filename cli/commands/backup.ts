/**
 * `shardvault backup …`: backups and restores through a running shardvault's /v1/backups API
 * (unlike the dump/restore flags, which work on a data directory directly).
 *
 *     shardvault backup create filesystem nightly-1 --include Article,Author --wait
 *     shardvault backup status filesystem nightly-1
 *     shardvault backup restore filesystem nightly-1 --node-mapping node-1=node-a --wait
 *     shardvault backup list filesystem
 *     shardvault backup cancel filesystem nightly-1 [--restore]
 *     shardvault backup verify filesystem nightly-1
 */
import { EXIT } from '../exit-codes.ts';
import type { CliIo } from '../command.ts';
import { parseCommandLine, runApiCommand, UsageError } from '../api-command.ts';
import {
  ApiError,
  apiKeyFromEnv,
  createClient,
  DEFAULT_URL,
  type BackupClient,
} from '../client.ts';
import { isTerminal, type OperationStatus } from '../../shared/backups/contract.ts';
import type { Overrides } from '../../shared/backups/validate.ts';
import type { OperationKind } from '../../shared/jobs/operation.ts';
import { createOperationProgress, describeProgress, formatBytes, formatDuration } from '../operation-progress.ts';

const HELP = `Usage: shardvault backup <command> [options]   (through a running shardvault's API)

  shardvault backup create  BACKEND ID [--include A,B | --exclude A,B] [--compression LEVEL] [--wait]
  shardvault backup status  BACKEND ID [--restore]
  shardvault backup restore BACKEND ID [--include A,B | --exclude A,B] [--node-mapping SRC=DST,…] [--wait]
  shardvault backup list    BACKEND
  shardvault backup cancel  BACKEND ID [--restore] [--wait]
  shardvault backup verify  BACKEND ID        check every object against the manifests, restoring nothing
  shardvault backup delete  BACKEND ID        remove a finished backup and the chunks no other backup uses

BACKEND is filesystem, s3 or gcs. ID is lowercase letters, digits, "_" and "-".
Classes in --include/--exclude may use * and ? wildcards; the options may be repeated.

Options:
  --url=URL             the API (default ${DEFAULT_URL})
  --include=A,B         only these classes
  --exclude=A,B         every class but these
  --compression=LEVEL   BestSpeed, DefaultCompression (default), BestCompression or NoCompression
  --node-mapping=A=B,…  restore the backup's node A onto this cluster's node B
  --restore             status/cancel: the restore of backup ID, not the backup
  --wait                wait until it ends, with a progress bar on stderr
                        (shards, documents, bytes, rate); exit 1 if it ends FAILED or CANCELED
  --bucket=B --path=P   another bucket or path of the backend than the configured one
  --interval=MS         how often --wait asks for the status (default 500)
  --json                print the API's JSON answers on stdout instead of text
  -h, --help            this help

The API key is $SHARDVAULT_API_KEY, else the first of $AUTHENTICATION_APIKEY_ALLOWED_KEYS
(needed when the API runs with AUTHENTICATION_APIKEY_ENABLED=true).

Exit status: 0 done (with --wait: SUCCESS, or CANCELED for cancel --wait; verify: OK); 1 refused
by the API, unreachable, ended FAILED or CANCELED, or verify found damage; 2 bad arguments.
`;

const SUBCOMMANDS = ['create', 'status', 'restore', 'list', 'cancel', 'verify', 'delete'] as const;
type Subcommand = (typeof SUBCOMMANDS)[number];

/** The options each subcommand takes (besides --url, --json, --help). */
const ALLOWED: Record<Subcommand, string[]> = {
  create: ['include', 'exclude', 'compression', 'wait', 'bucket', 'path', 'interval'],
  status: ['restore', 'bucket', 'path'],
  restore: ['include', 'exclude', 'node-mapping', 'wait', 'bucket', 'path', 'interval'],
  list: ['bucket', 'path'],
  cancel: ['restore', 'wait', 'bucket', 'path', 'interval'],
  verify: ['bucket', 'path'],
  delete: ['bucket', 'path'],
};
const POSITIONALS: Record<Subcommand, string[]> = {
  create: ['BACKEND', 'ID'],
  status: ['BACKEND', 'ID'],
  restore: ['BACKEND', 'ID'],
  list: ['BACKEND'],
  cancel: ['BACKEND', 'ID'],
  verify: ['BACKEND', 'ID'],
  delete: ['BACKEND', 'ID'],
};

const OPTIONS = {
  url: { type: 'string' },
  include: { type: 'string', multiple: true },
  exclude: { type: 'string', multiple: true },
  compression: { type: 'string' },
  'node-mapping': { type: 'string', multiple: true },
  restore: { type: 'boolean' },
  wait: { type: 'boolean' },
  bucket: { type: 'string' },
  path: { type: 'string' },
  interval: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

interface Parsed {
  sub: Subcommand;
  backend: string;
  id: string;
  values: {
    url?: string;
    include?: string[];
    exclude?: string[];
    compression?: string;
    'node-mapping'?: string[];
    restore?: boolean;
    wait?: boolean;
    bucket?: string;
    path?: string;
    interval?: string;
    json?: boolean;
    help?: boolean;
  };
  intervalMs: number;
}

function parse(argv: string[]): Parsed | 'help' {
  const { values, positionals } = parseCommandLine(argv, OPTIONS);
  if (values.help) return 'help';
  const [sub, ...rest] = positionals;
  if (sub === undefined) throw new UsageError(`name a command: ${SUBCOMMANDS.join(', ')}`);
  if (!(SUBCOMMANDS as readonly string[]).includes(sub)) {
    throw new UsageError(`unknown command ${JSON.stringify(sub)}: use ${SUBCOMMANDS.join(', ')}`);
  }
  const command = sub as Subcommand;
  const expected = POSITIONALS[command];
  if (rest.length !== expected.length) {
    throw new UsageError(`${command} takes ${expected.join(' ')}${rest.length > expected.length ? `; unexpected ${JSON.stringify(rest[expected.length])}` : ''}`);
  }
  for (const name of Object.keys(values)) {
    if (!['url', 'json', 'help', ...ALLOWED[command]].includes(name)) throw new UsageError(`${command} does not take --${name}`);
  }
  const list = (v: string[] | undefined) => (v ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  if (list(values.include).length > 0 && list(values.exclude).length > 0) {
    throw new UsageError('--include and --exclude are mutually exclusive: give one of them');
  }
  const intervalMs = values.interval === undefined ? 500 : Number(values.interval);
  if (!Number.isInteger(intervalMs) || intervalMs < 50 || intervalMs > 60_000) {
    throw new UsageError(`--interval must be a number of milliseconds from 50 to 60000, got ${JSON.stringify(values.interval)}`);
  }
  return { sub: command, backend: rest[0]!, id: rest[1] ?? '', values: { ...values, include: list(values.include), exclude: list(values.exclude) }, intervalMs };
}

/** `a=b,c=d` (also given as several --node-mapping options) → {a: 'b', c: 'd'}. */
function parseNodeMapping(values: string[]): Record<string, string> {
  const mapping: Record<string, string> = {};
  for (const pair of values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean)) {
    const m = /^([^=\s]+)=([^=\s]+)$/.exec(pair);
    if (!m) throw new UsageError(`--node-mapping takes SOURCE=TARGET pairs, got ${JSON.stringify(pair)}`);
    if (m[1]! in mapping) throw new UsageError(`--node-mapping names ${m[1]} twice`);
    mapping[m[1]!] = m[2]!;
  }
  return mapping;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function durationOf(s: OperationStatus): string {
  const ms = s.startedAt && s.completedAt ? Date.parse(s.completedAt) - Date.parse(s.startedAt) : NaN;
  return Number.isFinite(ms) ? ` in ${formatDuration(ms)}` : '';
}

/**
 * Poll the status until it is final, drawing progress on stderr. Answers the final status.
 * A few failed polls in a row (the API restarting, Redis away) are waited out.
 */
async function waitUntilFinal(client: BackupClient, kind: OperationKind, backend: string, id: string, overrides: Overrides, intervalMs: number, io: CliIo): Promise<OperationStatus> {
  const progress = createOperationProgress(io.stderr, kind, id);
  const patienceMs = 30_000;
  let failingSince: number | undefined;
  try {
    for (;;) {
      let status: OperationStatus;
      try {
        status = await client.status(kind, backend, id, overrides);
        failingSince = undefined;
      } catch (err) {
        if (!(err instanceof ApiError && err.transient)) throw err;
        failingSince ??= Date.now();
        if (Date.now() - failingSince > patienceMs) throw err;
        await sleep(intervalMs);
        continue;
      }
      progress.update(status);
      if (isTerminal(status.status)) return status;
      await sleep(intervalMs);
    }
  } finally {
    progress.done();
  }
}

/** Print the end of an operation; answers the exit code (`wanted` is the good outcome). */
function reportFinal(io: CliIo, kind: OperationKind, s: OperationStatus, json: boolean, wanted: 'SUCCESS' | 'CANCELED' = 'SUCCESS'): number {
  if (json) io.stdout.write(`${JSON.stringify(s)}\n`);
  const line = `${kind} ${s.id} ${s.status}${s.progress ? `: ${describeProgress(s.progress)}` : ''}${durationOf(s)}`;
  if (s.status === wanted) {
    if (!json) io.stdout.write(`${line}\n`);
    return EXIT.OK;
  }
  io.stderr.write(`shardvault: ${line}${s.error ? ` — ${s.error}` : ''}\n`);
  return EXIT.FAILED;
}

function printStatus(io: CliIo, kind: OperationKind, s: OperationStatus): void {
  const rows: [string, string | undefined][] = [
    ['classes', s.classes?.join(', ')],
    ['path', s.path],
    ['started', s.startedAt],
    ['completed', s.completedAt],
    ['progress', s.progress ? describeProgress(s.progress) : undefined],
    ['error', s.error],
  ];
  io.stdout.write(`${kind} ${s.id} on ${s.backend}: ${s.status}\n`);
  for (const [k, v] of rows) if (v) io.stdout.write(`  ${`${k}:`.padEnd(11)}${v}\n`);
}

async function execute(p: Parsed, io: CliIo): Promise<number> {
  const { values: v } = p;
  const client = createClient({ url: v.url ?? DEFAULT_URL, apiKey: apiKeyFromEnv(io.env) });
  const overrides: Overrides = { ...(v.bucket ? { bucket: v.bucket } : {}), ...(v.path ? { path: v.path } : {}) };
  const config = { ...(v.bucket ? { Bucket: v.bucket } : {}), ...(v.path ? { Path: v.path } : {}) };
  const selection = { ...(v.include!.length ? { include: v.include } : {}), ...(v.exclude!.length ? { exclude: v.exclude } : {}) };
  const json = v.json === true;

  switch (p.sub) {
    case 'create':
    case 'restore': {
      const kind: OperationKind = p.sub === 'create' ? 'backup' : 'restore';
      const started =
        kind === 'backup'
          ? await client.create(p.backend, {
              id: p.id,
              ...selection,
              ...(v.compression || Object.keys(config).length ? { config: { ...config, ...(v.compression ? { CompressionLevel: v.compression } : {}) } } : {}),
            })
          : await client.restore(p.backend, p.id, {
              ...selection,
              ...(v['node-mapping']?.length ? { node_mapping: parseNodeMapping(v['node-mapping']) } : {}),
              ...(Object.keys(config).length ? { config } : {}),
            });
      if (json) io.stdout.write(`${JSON.stringify(started)}\n`);
      else io[v.wait ? 'stderr' : 'stdout'].write(`${kind} ${started.id} started on ${started.backend}: ${started.classes.join(', ')} (${started.path})\n`);
      if (!v.wait) return EXIT.OK;
      const final = await waitUntilFinal(client, kind, started.backend, started.id, overrides, p.intervalMs, io);
      return reportFinal(io, kind, final, json);
    }
    case 'status': {
      const kind: OperationKind = v.restore ? 'restore' : 'backup';
      const s = await client.status(kind, p.backend, p.id, overrides);
      if (json) io.stdout.write(`${JSON.stringify(s)}\n`);
      else printStatus(io, kind, s);
      return EXIT.OK;
    }
    case 'list': {
      const items = await client.list(p.backend, overrides);
      if (json) {
        io.stdout.write(`${JSON.stringify(items)}\n`);
        return EXIT.OK;
      }
      if (items.length === 0) {
        io.stdout.write(`no backups in ${p.backend}\n`);
        return EXIT.OK;
      }
      const rows = [['ID', 'STATUS', 'STARTED', 'COMPLETED', 'CLASSES'], ...items.map((b) => [b.id, b.status, b.startedAt, b.completedAt ?? '-', b.classes.join(',')])];
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows) io.stdout.write(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}\n`);
      return EXIT.OK;
    }
    case 'cancel': {
      const kind: OperationKind = v.restore ? 'restore' : 'backup';
      await client.cancel(kind, p.backend, p.id, overrides);
      if (!v.wait) {
        io.stdout.write(`cancel requested for ${kind} ${p.id}\n`);
        return EXIT.OK;
      }
      io.stderr.write(`cancel requested for ${kind} ${p.id}\n`);
      const final = await waitUntilFinal(client, kind, p.backend, p.id, overrides, p.intervalMs, io);
      return reportFinal(io, kind, final, json, 'CANCELED');
    }
    case 'delete': {
      const result = await client.delete(p.backend, p.id, overrides);
      if (json) io.stdout.write(`${JSON.stringify(result)}\n`);
      else {
        const { collected } = result;
        io.stdout.write(
          `backup ${result.id} deleted from ${result.backend} (${result.deleted} objects); ` +
            (collected
              ? `repository: ${collected.packs} pack${collected.packs === 1 ? '' : 's'} (${formatBytes(collected.bytes)}) removed, ${collected.kept} run${collected.kept === 1 ? '' : 's'} still in use\n`
              : `repository not collected: ${result.collectionDeferred}\n`),
        );
      }
      return EXIT.OK;
    }
    case 'verify': {
      const report = await client.verify(p.backend, p.id, overrides);
      if (json) io.stdout.write(`${JSON.stringify(report)}\n`);
      const line = `backup ${report.id} on ${report.backend}: ${report.status} (${report.objects} objects, ${formatBytes(report.bytes)} checked)`;
      if (report.status === 'OK') {
        if (!json) io.stdout.write(`${line}\n`);
        return EXIT.OK;
      }
      io.stderr.write(`shardvault: ${line}, ${report.problems.length} problem${report.problems.length === 1 ? '' : 's'}:\n`);
      for (const { key, problem } of report.problems) io.stderr.write(`  ${key}: ${problem}\n`);
      return EXIT.FAILED;
    }
  }
}

/** `shardvault backup …` (registered in cli/main.ts). */
export function runBackupCommand(argv: string[], io: CliIo): Promise<number> {
  return runApiCommand('backup', io, async () => {
    const parsed = parse(argv);
    if (parsed === 'help') {
      io.stdout.write(HELP);
      return EXIT.OK;
    }
    return execute(parsed, io);
  });
}
