/**
 * Validation of backup and restore requests, shared by the API and the CLI: ids, bodies
 * (Weaviate's BackupCreateRequest and BackupRestoreRequest), class selection with `*`/`?`
 * wildcards, and the source → target node mapping of a restore. Every failure is a
 * ValidationError (422) whose message says exactly what is wrong.
 */
import { z } from 'zod';
import { ValidationError } from '../errors.ts';
import type { CompressionLevel } from '../formats/compression.ts';
import { BACKUP_ID, backupIdSchema, createSchema, restoreSchema, type configSchema } from './contract.ts';

export function assertBackupId(id: unknown): string {
  const parsed = backupIdSchema.safeParse(id);
  if (!parsed.success) throw new ValidationError(parsed.error.issues[0]!.message);
  return parsed.data;
}

export interface Overrides {
  bucket?: string;
  path?: string;
}

export interface CreateRequest {
  id: string;
  include: string[];
  exclude: string[];
  overrides: Overrides;
  compression: CompressionLevel;
  /** `incremental_base_backup_id`: checked by the service (it must exist, be SUCCESS, in the same location). */
  incrementalBase?: string;
  /** What the request asked for that is not applied, and why. */
  notes: string[];
}

export interface RestoreRequest {
  include: string[];
  exclude: string[];
  nodeMapping: Record<string, string>;
  overrides: Overrides;
  notes: string[];
}

/** Fields whose messages name the field themselves; they are answered as they are. */
const SELF_DESCRIBED = new Set(['id', 'config.CompressionLevel']);

function zodMessage(what: string, error: z.ZodError): ValidationError {
  const issue = error.issues[0]!;
  const where = issue.path.join('.');
  if (SELF_DESCRIBED.has(where)) return new ValidationError(issue.message);
  return new ValidationError(`invalid ${what}: ${where ? `${where}: ` : ''}${issue.message}`);
}

function requireObject(body: unknown, what: string): Record<string, unknown> {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw new ValidationError(`${what} must be a JSON object`);
  return body as Record<string, unknown>;
}

function overridesOf(config: z.infer<typeof configSchema>): Overrides {
  const bucket = config?.Bucket ?? config?.bucket ?? undefined;
  const path = config?.Path ?? config?.path ?? undefined;
  return { ...(bucket ? { bucket } : {}), ...(path ? { path } : {}) };
}

/**
 * Weaviate's config fields shardvault accepts (so Weaviate's clients can send them) but does
 * not apply, each with why; the create and restore answers and the status carry them as
 * `notes`, so a caller is told rather than silently ignored.
 */
const NOT_APPLIED = {
  Endpoint: "config.Endpoint is not applied: the S3 endpoint is the server's (BACKUP_S3_ENDPOINT); a request cannot send the server's credentials to another host",
  CPUPercentage: "config.CPUPercentage is not applied: a worker's share of the machine is set by WORKER_CONCURRENCY and WORKER_MAX_BYTES_PER_SECOND",
  ChunkSize: 'config.ChunkSize is not applied: shard objects are streamed to the backend, whose own part size applies',
} as const;

function notesOf(config: z.infer<typeof configSchema>): string[] {
  return (Object.keys(NOT_APPLIED) as (keyof typeof NOT_APPLIED)[]).filter((k) => config?.[k] != null).map((k) => NOT_APPLIED[k]);
}

function exclusive(include: string[], exclude: string[]): void {
  if (include.length > 0 && exclude.length > 0) {
    throw new ValidationError('include and exclude are mutually exclusive: give one of them, not both');
  }
}

/** BackupCreateRequest `{id, include?, exclude?, config?}`. */
export function parseCreateRequest(body: unknown): CreateRequest {
  const parsed = createSchema.safeParse(requireObject(body, 'backup request'));
  if (!parsed.success) throw zodMessage('backup request', parsed.error);
  const b = parsed.data;
  const include = b.include ?? [];
  const exclude = b.exclude ?? [];
  exclusive(include, exclude);
  const compression: CompressionLevel = b.config?.CompressionLevel ?? 'DefaultCompression';
  return {
    id: b.id,
    include,
    exclude,
    overrides: overridesOf(b.config),
    compression,
    ...(b.incremental_base_backup_id ? { incrementalBase: b.incremental_base_backup_id } : {}),
    notes: notesOf(b.config),
  };
}

/** BackupRestoreRequest `{include?, exclude?, node_mapping?, config?}`. */
export function parseRestoreRequest(body: unknown): RestoreRequest {
  const parsed = restoreSchema.safeParse(requireObject(body, 'restore request'));
  if (!parsed.success) throw zodMessage('restore request', parsed.error);
  const b = parsed.data;
  const include = b.include ?? [];
  const exclude = b.exclude ?? [];
  exclusive(include, exclude);
  return { include, exclude, nodeMapping: b.node_mapping ?? {}, overrides: overridesOf(b.config), notes: notesOf(b.config) };
}

/** Overrides given as query parameters (`?bucket=&path=`) on status and cancel calls. */
export function overridesFromQuery(query: { bucket?: string; path?: string }): Overrides {
  return { ...(query.bucket ? { bucket: query.bucket } : {}), ...(query.path ? { path: query.path } : {}) };
}

/** Largest page of the backup list. */
export const MAX_LIST_LIMIT = 10_000;

/**
 * How the backup list answers: the whole list by starting time, `order` `asc` (oldest first,
 * BackupService.list's default) or `desc` (newest first: Weaviate's default, the HTTP API's); or
 * a page, beyond Weaviate's list, which has no paging: at most `limit` backups in id order
 * after the id `after`.
 */
export interface ListPage {
  order?: 'asc' | 'desc';
  limit?: number;
  after?: string;
}

/**
 * `?order=` (Weaviate's: the whole list by starting time, `desc` newest first — its default —
 * or `asc`) and `?limit=&after=` (beyond Weaviate's: a page in id order) of the backup list;
 * a page has no other order, so `order` with either is refused.
 */
export function listPageFromQuery(query: { limit?: string; after?: string; order?: string }): ListPage {
  const page: ListPage = {};
  if (query.limit !== undefined) {
    const limit = Number(query.limit);
    if (!/^\d+$/.test(query.limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
      throw new ValidationError(`limit must be an integer from 1 to ${MAX_LIST_LIMIT}, got ${JSON.stringify(query.limit.slice(0, 40))}`);
    }
    page.limit = limit;
  }
  if (query.after !== undefined) {
    if (!BACKUP_ID.test(query.after)) throw new ValidationError(`after must be a backup id (the last id of the previous page), got ${JSON.stringify(query.after.slice(0, 140))}`);
    page.after = query.after;
  }
  const paged = page.limit !== undefined || page.after !== undefined;
  if (query.order !== undefined) {
    if (query.order !== 'asc' && query.order !== 'desc') throw new ValidationError(`order must be asc or desc (by starting time), got ${JSON.stringify(query.order.slice(0, 40))}`);
    if (paged) throw new ValidationError('order cannot be given with limit or after: a page of the list is in id order');
  }
  if (!paged) page.order = query.order === 'asc' ? 'asc' : 'desc';
  return page;
}

// ---- class selection -----------------------------------------------------------------------

const isPattern = (name: string): boolean => /[*?]/.test(name);

function patternRegex(pattern: string): RegExp {
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${source}$`);
}

/** Weaviate capitalises class names; `article` finds `Article` when no `article` exists. */
function findClass(available: readonly string[], name: string): string | undefined {
  if (available.includes(name)) return name;
  const capitalised = name.charAt(0).toUpperCase() + name.slice(1);
  return available.includes(capitalised) ? capitalised : undefined;
}

function expand(available: readonly string[], names: string[], unknown: (name: string) => string): Set<string> {
  const out = new Set<string>();
  for (const name of names) {
    if (isPattern(name)) {
      const re = patternRegex(name);
      const matches = available.filter((c) => re.test(c));
      if (matches.length === 0) throw new ValidationError(`no class matches ${JSON.stringify(name)}`);
      for (const m of matches) out.add(m);
    } else {
      const found = findClass(available, name);
      if (!found) throw new ValidationError(unknown(name));
      out.add(found);
    }
  }
  return out;
}

/**
 * The classes an include/exclude pair selects from `available` (sorted). Names may use `*`
 * (any run of characters) and `?` (one character). A name that matches nothing is refused,
 * in include and exclude alike; so is a selection that ends up empty.
 *
 * @param where  how to name `available` in messages, e.g. `this cluster` or `backup "b1"`.
 */
export function selectClasses(available: readonly string[], include: string[], exclude: string[], where: string): string[] {
  exclusive(include, exclude);
  const unknown = (name: string) => `class ${JSON.stringify(name)} does not exist in ${where}`;
  let selected: string[];
  if (include.length > 0) {
    selected = [...expand(available, include, unknown)];
  } else {
    const excluded = expand(available, exclude, unknown);
    selected = available.filter((c) => !excluded.has(c));
  }
  if (selected.length === 0) {
    throw new ValidationError(
      available.length === 0 ? `nothing to select: ${where} has no classes` : `nothing to select: every class of ${where} is excluded`,
    );
  }
  return selected.sort();
}

// ---- node mapping --------------------------------------------------------------------------

/**
 * Which target node receives each source node's shards. `mapping` may name some or all source
 * nodes; the others pair up in sorted order (the i-th remaining source node, sorted, goes to
 * the i-th remaining target node, sorted). Refuses a different node count (naming both
 * numbers), unknown source or target nodes, and two sources mapped to one target.
 */
export function mapNodes(source: readonly string[], target: readonly string[], mapping: Record<string, string>): Record<string, string> {
  if (source.length !== target.length) {
    throw new ValidationError(
      `node count mismatch: the backup was taken on ${source.length} node${source.length === 1 ? '' : 's'} ` +
        `(${source.join(', ')}) and this cluster has ${target.length} (${target.join(', ')}); a restore needs the same number of nodes`,
    );
  }
  const result: Record<string, string> = {};
  const used = new Set<string>();
  for (const [from, to] of Object.entries(mapping)) {
    if (!source.includes(from)) {
      throw new ValidationError(`node_mapping: ${JSON.stringify(from)} is not a node of the backup (${source.join(', ')})`);
    }
    if (!target.includes(to)) {
      throw new ValidationError(`node_mapping: ${JSON.stringify(to)} is not a node of this cluster (${target.join(', ')})`);
    }
    if (used.has(to)) throw new ValidationError(`node_mapping: two backup nodes are mapped to ${JSON.stringify(to)}`);
    used.add(to);
    result[from] = to;
  }
  const restSource = source.filter((n) => !(n in result)).sort();
  const restTarget = target.filter((n) => !used.has(n)).sort();
  restSource.forEach((from, i) => {
    result[from] = restTarget[i]!;
  });
  return result;
}
