/**
 * The backend layout of a backup (docs/formats.md §1) and its two manifests:
 *
 *   <id>/backup_config.json          global manifest, written last: status, nodes, classes, sizes
 *   <id>/<node>/backup.json          per-node manifest: indexes, schemas, shards with sha256
 *   <id>/<node>/<index>/<shard>      one shard: the docs dump stream (docs/formats.md §2), compressed
 *
 * A backup exists for readers once backup_config.json exists; a backup that failed keeps only
 * that file (status FAILED and the error), a cancelled one leaves nothing.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { z } from 'zod';
import type { Backend, CallOptions } from '../backends/backend.ts';
import { readSmall } from '../backends/bodies.ts';
import { IntegrityError } from '../errors.ts';
import { COMPRESSION_LEVELS } from '../formats/compression.ts';
import { indexSnapshotSchema, shardObjectResult } from '../jobs/catalog.ts';
import { STATUSES } from './contract.ts';

/** Version of the manifests' own shape. */
export const MANIFEST_VERSION = 1;
/** Largest manifest read back (they hold schemas and shard lists, never documents). */
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

export const globalManifestKey = (id: string): string => `${id}/backup_config.json`;
export const nodeManifestKey = (id: string, node: string): string => `${id}/${node}/backup.json`;
export const shardObjectKey = (id: string, node: string, index: string, shard: number): string => `${id}/${node}/${index}/${shard}`;
export const backupPrefix = (id: string): string => `${id}/`;

export const nodeManifestSchema = z.object({
  version: z.literal(MANIFEST_VERSION),
  id: z.string(),
  node: z.string(),
  /** Indexes with at least one shard on this node, as they were when the backup started. */
  indexes: z.array(indexSnapshotSchema),
  /** Every shard object this node wrote. */
  shards: z.array(shardObjectResult),
});
export type NodeManifest = z.infer<typeof nodeManifestSchema>;

export const globalManifestSchema = z.object({
  version: z.literal(MANIFEST_VERSION),
  id: z.string(),
  backend: z.string(),
  /** Where the backup was written (an absolute path, or s3://… / gs://…). */
  path: z.string().optional(),
  status: z.enum(STATUSES),
  error: z.string().optional(),
  /** Source nodes in the cluster's order; a restore needs as many. */
  nodes: z.array(z.string()),
  classes: z.array(z.string()),
  startedAt: z.string(),
  completedAt: z.string().optional(),
  /** Format of the shard objects (docs/formats.md): 1 one compressed dump each, 2 repository snapshots. */
  formatVersion: z.number().int(),
  /** The backup this one was asked to be incremental to (Weaviate's name); every backup reuses every stored chunk. */
  incremental_base_backup_id: z.string().optional(),
  /** The backup schedule that made it (beyond Weaviate); that schedule's retention may delete it, nothing else's. */
  schedule: z.string().optional(),
  compression: z.enum(COMPRESSION_LEVELS),
  totals: z.object({ shards: z.number().int(), docs: z.number().int(), bytes: z.number().int() }),
  /**
   * Weaviate's name: bytes of the shard files the backup holds, before compression (format 2: the
   * sum of its shards' `file.size`). Absent from format 1 and from backups written before
   * 2026-12-07. Status and list answer it in GiB as `size`, as Weaviate does.
   */
  preCompressionSizeBytes: z.number().int().min(0).optional(),
  /** Every per-node manifest with its sha256, so a restore can verify them too. */
  nodeManifests: z.record(z.string(), z.object({ key: z.string(), sha256: z.string(), bytes: z.number().int() })),
});
export type GlobalManifest = z.infer<typeof globalManifestSchema>;

/** The format this version writes. */
export const FORMAT_VERSION = 2;

/** Write a JSON object; answers its sha256 and size. */
export async function writeJson(backend: Backend, key: string, value: unknown, options: CallOptions = {}): Promise<{ sha256: string; bytes: number }> {
  const body = Buffer.from(`${JSON.stringify(value, null, 2)}\n`);
  await backend.write(key, Readable.from([body]), options);
  return { sha256: createHash('sha256').update(body).digest('hex'), bytes: body.length };
}

/**
 * Read a JSON object and check its shape (and sha256 when given). A missing key rejects with
 * the backend's NotFoundError; a bad one with IntegrityError naming the object.
 */
export async function readJson<T>(
  backend: Backend,
  key: string,
  schema: z.ZodType<T>,
  options: CallOptions & { sha256?: string } = {},
): Promise<T> {
  const body = await readSmall(await backend.read(key, options), MAX_MANIFEST_BYTES, `${backend.locate(key)} (not a manifest)`);
  if (options.sha256) {
    const actual = createHash('sha256').update(body).digest('hex');
    if (actual !== options.sha256) {
      throw new IntegrityError(`checksum mismatch for ${backend.locate(key)}: expected sha256 ${options.sha256}, got ${actual}`);
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new IntegrityError(`${backend.locate(key)} is not valid JSON: ${(err as Error).message}`);
  }
  const result = schema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new IntegrityError(`${backend.locate(key)} is not a valid manifest: ${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  return result.data;
}
