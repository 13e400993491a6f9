/**
 * The wire contract of `/v1/backups` (Weaviate's shapes, plus shardvault's progress fields):
 * every request body and every answer, defined once as zod schemas. The service validates
 * requests with them (validate.ts), the OpenAPI document is generated from them
 * (api/openapi.ts), and the CLI's client parses the API's answers with them (cli/client.ts),
 * so the three cannot drift apart; test/integration/openapi.test.ts checks real answers too.
 */
import { z } from 'zod';
import { BACKEND_NAMES } from '../backends/backend.ts';
import { compressionLevelOf, REQUESTED_COMPRESSION_LEVELS } from '../formats/compression.ts';

// ---- statuses ----------------------------------------------------------------------------

/** Weaviate's backup and restore statuses (ARCHITECTURE.md §6 for the transitions). */
export const STATUSES = ['STARTED', 'TRANSFERRING', 'TRANSFERRED', 'FINALIZING', 'SUCCESS', 'FAILED', 'CANCELLING', 'CANCELED'] as const;
export type Status = (typeof STATUSES)[number];
const TERMINAL: ReadonlySet<Status> = new Set(['SUCCESS', 'FAILED', 'CANCELED']);
export const isTerminal = (s: Status): boolean => TERMINAL.has(s);

// ---- requests ----------------------------------------------------------------------------

export const BACKUP_ID = /^[a-z0-9_-]+$/;
export const MAX_BACKUP_ID_LENGTH = 128;

const ID_REQUIRED = 'backup id is required: a string of lowercase letters, digits, "_" or "-"';

/** The id of a backup, as given in a body or a path; checked the same way on every endpoint. */
export const backupIdSchema = z
  .string({ error: ID_REQUIRED })
  .min(1, ID_REQUIRED)
  .max(MAX_BACKUP_ID_LENGTH, {
    error: (iss) => `invalid backup id: longer than ${MAX_BACKUP_ID_LENGTH} characters (${String(iss.input).length})`,
  })
  .regex(BACKUP_ID, {
    error: (iss) => `invalid backup id ${JSON.stringify(iss.input)}: use only lowercase letters, digits, "_" or "-" (^[a-z0-9_-]+$)`,
  });

const classList = z.array(z.string().min(1, 'class names are not empty')).nullish();

/** Weaviate's config (BackupConfig / RestoreConfig); both spellings of Bucket/Path accepted. */
export const configSchema = z
  .looseObject({
    Bucket: z.string().nullish(),
    bucket: z.string().nullish(),
    Path: z.string().nullish(),
    path: z.string().nullish(),
    Endpoint: z.string().nullish(),
    CPUPercentage: z.number().int().min(1).max(80).nullish(),
    ChunkSize: z.number().int().min(2).max(512).nullish(),
    CompressionLevel: z
      .enum(REQUESTED_COMPRESSION_LEVELS, {
        error: (iss) => `invalid config.CompressionLevel ${JSON.stringify(iss.input)}: use one of ${REQUESTED_COMPRESSION_LEVELS.join(', ')}`,
      })
      .transform(compressionLevelOf)
      .nullish(),
  })
  .nullish();

/**
 * Weaviate's BackupCreateRequest. `id` comes last so that, as before it was part of the
 * schema, a body with several faults reports the class lists and config first.
 */
export const createSchema = z.looseObject({
  include: classList,
  exclude: classList,
  config: configSchema,
  /** Weaviate's incremental backups: the backup this one builds on (same backend and location, SUCCESS). */
  incremental_base_backup_id: backupIdSchema.nullish(),
  id: backupIdSchema,
});

/** Weaviate's BackupRestoreRequest. */
export const restoreSchema = z.looseObject({
  include: classList,
  exclude: classList,
  node_mapping: z.record(z.string(), z.string()).nullish(),
  config: configSchema,
});

// ---- answers -----------------------------------------------------------------------------

const backendName = z.enum(BACKEND_NAMES);
const status = z.enum(STATUSES);
const notes = z.array(z.string()).optional().meta({ description: "Weaviate config fields the request gave that shardvault does not apply, each with why" });
const size = z.number().min(0).optional().meta({ description: "Weaviate's: the backup's shard files before compression, in GiB (a finished backup; absent for those written before 2026-12-07)" });

export const errorResponseSchema = z
  .object({ error: z.array(z.object({ message: z.string() })).min(1) })
  .meta({ description: "Weaviate's error envelope" });

export const operationStartedSchema = z.object({
  id: z.string(),
  backend: backendName,
  classes: z.array(z.string()),
  path: z.string().meta({ description: 'where the backup lives in the backend' }),
  status: z.literal('STARTED'),
  bucket: z.string().optional(),
  notes,
});

export const operationStatusSchema = z.object({
  id: z.string(),
  backend: backendName,
  path: z.string(),
  status,
  error: z.string().optional().meta({ description: 'why it FAILED or was CANCELED' }),
  classes: z.array(z.string()),
  startedAt: z.string(),
  completedAt: z.string().optional(),
  size,
  incremental_base_backup_id: z.string().optional(),
  notes,
  progress: z.object({
    shardsDone: z.int().min(0),
    shardsTotal: z.int().min(0),
    docs: z.int().min(0),
    bytes: z.int().min(0).meta({ description: 'bytes of shard objects (compressed) moved so far' }),
  }),
});

export const backupListSchema = z.array(
  z.object({
    id: z.string(),
    classes: z.array(z.string()),
    status,
    startedAt: z.string(),
    completedAt: z.string().optional(),
    size,
    incremental_base_backup_id: z.string().optional(),
    /** The backup schedule that made it (beyond Weaviate's list). */
    schedule: z.string().optional(),
  }),
);

export const verifyReportSchema = z.object({
  id: z.string(),
  backend: backendName,
  status: z.enum(['OK', 'CORRUPT']),
  objects: z.int().min(0).meta({ description: 'objects read and checked: the manifests and every shard object' }),
  bytes: z.int().min(0).meta({ description: 'bytes read' }),
  problems: z.array(z.object({ key: z.string().meta({ description: 'the object, relative to the backend root' }), problem: z.string() })),
});

export const deleteResultSchema = z.object({
  id: z.string(),
  backend: backendName,
  /** Objects of the backup removed (manifests and snapshots). */
  deleted: z.int().min(0),
  /** What garbage collection of the location's repository removed after it. */
  collected: z
    .object({
      runs: z.int().min(0).meta({ description: 'snapshot runs (index files) no backup names any more, removed with their packs' }),
      packs: z.int().min(0),
      bytes: z.int().min(0).meta({ description: 'bytes of the packs removed' }),
      kept: z.int().min(0).meta({ description: 'runs kept because a backup still names them' }),
    })
    .optional(),
  /** Why no collection ran after the delete (the repository stayed locked, or its backend away). */
  collectionDeferred: z.string().optional().meta({ description: 'the backup is deleted, but the collection could not run (why): the next delete in this location collects what it left' }),
});

export type OperationStarted = z.infer<typeof operationStartedSchema>;
export type OperationStatus = z.infer<typeof operationStatusSchema>;
export type Progress = OperationStatus['progress'];
export type BackupListItem = z.infer<typeof backupListSchema>[number];
export type VerifyReport = z.infer<typeof verifyReportSchema>;
export type DeleteResult = z.infer<typeof deleteResultSchema>;
