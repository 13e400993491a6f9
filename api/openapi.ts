/**
 * The OpenAPI 3.1 document of the API (`GET /v1/openapi.json`, rendered at `/docs`).
 *
 * Request bodies are the zod schemas the routes validate with, turned into JSON Schema by
 * `z.toJSONSchema` (OpenAPI 3.1 schemas are JSON Schema 2020-12), so the document and the
 * validation cannot drift apart; test/openapi.test.ts checks that, and that every route of
 * the Hono app is documented and every documented route exists. Response shapes of the
 * backup endpoints are zod schemas too, and the test checks real answers against them.
 */
import { z } from 'zod';
import {
  backupIdSchema,
  backupListSchema,
  createSchema,
  errorResponseSchema,
  operationStartedSchema,
  operationStatusSchema,
  restoreSchema,
  verifyReportSchema,
  deleteResultSchema,
} from '../shared/backups/contract.ts';
import { MAX_LIST_LIMIT } from '../shared/backups/validate.ts';
import { BACKEND_NAMES } from '../shared/backends/backend.ts';
import { INDEX_NAME } from '../shared/store/store.ts';
import { scheduleListSchema, scheduleRunSchema, scheduleViewSchema } from '../shared/schedules/contract.ts';
import { SCHEDULE_NAME, scheduleBodySchema } from '../shared/schedules/definition.ts';
import { batchObjectsSchema, classSchema, objectSchema } from '../shared/weaviate.ts';
import { VERSION } from './routes/weaviate.ts';
import { documentBodySchema, schemaBodySchema } from './routes/xapiand.ts';

// ---- the operation table ----------------------------------------------------------------------

type Schema = Record<string, unknown>;

/** A zod schema as an OpenAPI 3.1 schema object (JSON Schema 2020-12 without `$schema`). */
export function jsonSchema(schema: z.ZodType, io: 'input' | 'output' = 'input'): Schema {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Schema;
  return rest;
}

/** Request body schemas by component name: what the routes validate with. */
export const REQUEST_SCHEMAS = {
  BackupCreateRequest: createSchema,
  BackupRestoreRequest: restoreSchema,
  WeaviateClass: classSchema,
  WeaviateObject: objectSchema,
  BatchObjectsRequest: batchObjectsSchema,
  XapiandSchemaRequest: schemaBodySchema,
  Document: documentBodySchema,
  BackupScheduleRequest: scheduleBodySchema,
} as const satisfies Record<string, z.ZodType>;

const RESPONSE_SCHEMAS = {
  ErrorResponse: errorResponseSchema,
  BackupStartedResponse: operationStartedSchema,
  BackupStatusResponse: operationStatusSchema,
  BackupListResponse: backupListSchema,
  BackupVerifyResponse: verifyReportSchema,
  BackupDeleteResponse: deleteResultSchema,
  BackupScheduleResponse: scheduleViewSchema,
  BackupScheduleListResponse: scheduleListSchema,
  BackupScheduleRunResponse: scheduleRunSchema,
} as const satisfies Record<string, z.ZodType>;

type Component = keyof typeof REQUEST_SCHEMAS | keyof typeof RESPONSE_SCHEMAS;
const ref = (name: Component) => ({ $ref: `#/components/schemas/${name}` });

interface Param {
  name: string;
  description: string;
  schema: Schema;
  required?: boolean;
}

interface Operation {
  method: 'get' | 'head' | 'post' | 'put' | 'patch' | 'delete';
  /** OpenAPI path: `{name}` for a parameter, Xapiand's commands (`:schema`) literally. */
  path: string;
  tag: 'backups' | 'schedules' | 'weaviate' | 'xapiand' | 'operations';
  summary: string;
  description?: string;
  query?: Param[];
  /** A component name (JSON), or media types with their schemas (streams). */
  body?: Component | { required: boolean; description: string; content: Record<string, Schema> };
  /** Status → description and schema of a JSON answer (`text` for text/plain). */
  ok: { status: number; description: string; schema?: Schema; text?: string; content?: Record<string, Schema> };
  /** Another success status with the same answer (a PUT that creates: 201). */
  alsoOk?: { status: number; description: string };
  /** A streamed body, to which MAX_BODY_BYTES does not apply. */
  streamed?: boolean;
  /** Open with auth on. */
  open?: boolean;
}

const OVERRIDES: Param[] = [
  { name: 'bucket', description: "the backend's bucket, instead of the configured one (Weaviate's config.Bucket)", schema: { type: 'string' } },
  { name: 'path', description: 'the path inside the bucket, instead of the configured one (config.Path)', schema: { type: 'string' } },
];
const any = (description: string): Schema => ({ description });
const object = (description: string): Schema => ({ type: 'object', description });
const STREAM_TYPES = {
  'application/json': { type: 'array', items: ref('Document') },
  'application/x-ndjson': { type: 'string', description: 'one JSON document per line' },
  'application/x-msgpack': { type: 'string', contentEncoding: 'binary', description: 'MessagePack documents, one after another' },
  'application/octet-stream': { type: 'string', contentEncoding: 'binary', description: 'a docs dump file (shardvault --dump)' },
};

export const OPERATIONS: readonly Operation[] = [
  // Backups (Weaviate's /v1/backups)
  { method: 'post', path: '/v1/backups/{backend}', tag: 'backups', summary: 'Start a backup', body: 'BackupCreateRequest', ok: { status: 200, description: 'started', schema: ref('BackupStartedResponse') } },
  {
    method: 'get',
    path: '/v1/backups/{backend}',
    tag: 'backups',
    summary: 'List the backups in a backend',
    description:
      "Weaviate's list: every backup by starting time, newest first (`order=asc`: oldest first). Beyond Weaviate, `limit` and `after` page it: at most `limit` backups in id order after the id `after`; pass the last id of a page as `after` for the next, until a page is shorter than `limit` (`order` is refused with them). The answer reads the backend's top-level names (never the repository's objects) and the manifests not read in the last 30 s.",
    query: [
      ...OVERRIDES,
      { name: 'order', description: "by starting time: `desc` newest first (the default, as Weaviate's) or `asc` oldest first", schema: { type: 'string', enum: ['asc', 'desc'] } },
      { name: 'limit', description: `at most this many backups, in id order (1 to ${MAX_LIST_LIMIT})`, schema: { type: 'integer', minimum: 1, maximum: MAX_LIST_LIMIT } },
      { name: 'after', description: 'only backups whose id sorts after this one (the last id of the previous page)', schema: { type: 'string' } },
    ],
    ok: { status: 200, description: 'the backups: newest first (or oldest first), or a page in id order', schema: ref('BackupListResponse') },
  },
  { method: 'get', path: '/v1/backups/{backend}/{id}', tag: 'backups', summary: 'Status of a backup', description: 'From Redis while it runs, from its backup_config.json afterwards.', query: OVERRIDES, ok: { status: 200, description: 'its status and progress', schema: ref('BackupStatusResponse') } },
  { method: 'delete', path: '/v1/backups/{backend}/{id}', tag: 'backups', summary: 'Cancel a running backup', description: 'Nothing of a cancelled backup is left in the backend.', query: OVERRIDES, ok: { status: 204, description: 'cancel requested' } },
  { method: 'get', path: '/v1/backups/{backend}/{id}/verify', tag: 'backups', summary: 'Check every object of a finished backup against its manifests, without restoring', query: OVERRIDES, ok: { status: 200, description: 'OK, or CORRUPT with the problems found', schema: ref('BackupVerifyResponse') } },
  { method: 'post', path: '/v1/backups/{backend}/{id}/delete', tag: 'backups', summary: 'Delete a finished backup', description: "Removes the backup's manifests and snapshots, then garbage-collects the location's repository: chunks no remaining backup names are removed, under the repository's exclusive lock (waiting for running backups). Every other backup stays fully restorable. Refused (422) while the backup or a restore of it runs.", query: OVERRIDES, ok: { status: 200, description: 'deleted; what the collection removed', schema: ref('BackupDeleteResponse') } },
  { method: 'post', path: '/v1/backups/{backend}/{id}/restore', tag: 'backups', summary: 'Start a restore', description: 'The backup must be SUCCESS, the cluster must have as many nodes as the source (node_mapping may rename them) and no restored class may exist. All or nothing.', body: 'BackupRestoreRequest', ok: { status: 200, description: 'started', schema: ref('BackupStartedResponse') } },
  { method: 'get', path: '/v1/backups/{backend}/{id}/restore', tag: 'backups', summary: 'Status of a restore', ok: { status: 200, description: 'its status and progress', schema: ref('BackupStatusResponse') } },
  { method: 'delete', path: '/v1/backups/{backend}/{id}/restore', tag: 'backups', summary: 'Cancel a running restore', description: 'A cancelled restore creates no class.', ok: { status: 204, description: 'cancel requested' } },
  // Backup schedules (beside Weaviate's paths)
  {
    method: 'put',
    path: '/v1/backup-schedules/{name}',
    tag: 'schedules',
    summary: 'Create or replace a backup schedule',
    description:
      'Exactly one of `cron` (5 or 6 fields, or a name such as `@daily`; in `timezone`, default UTC; first run at its first due time) and `every` (`30s`, `15m`, `6h`, `1d`; at least 1 s; first run one interval after it is set). Each run backs up to `backend` with `include`/`exclude`/`config` as POST /v1/backups takes them, under the id `<idPrefix>-<yyyymmdd>-<hhmmss>` (UTC time the run was due; idPrefix defaults to the name), incremental on the schedule\'s last SUCCESS backup. A run due while the previous one goes on is skipped and recorded. `retention` (restic\'s rules: keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly in `timezone`, and maxAge, a duration) is applied after each successful run to the schedule\'s own backups: it never deletes the newest, nor a backup made by hand or by another schedule. 422 names the field that is wrong.',
    body: 'BackupScheduleRequest',
    ok: { status: 200, description: 'the schedule as the GET answers it', schema: ref('BackupScheduleResponse') },
  },
  { method: 'get', path: '/v1/backup-schedules', tag: 'schedules', summary: 'Every backup schedule', ok: { status: 200, description: 'the schedules', schema: ref('BackupScheduleListResponse') } },
  { method: 'get', path: '/v1/backup-schedules/{name}', tag: 'schedules', summary: 'One backup schedule: its definition, next run, last run, last success, backups kept and run counts', ok: { status: 200, description: 'the schedule', schema: ref('BackupScheduleResponse') } },
  { method: 'delete', path: '/v1/backup-schedules/{name}', tag: 'schedules', summary: 'Delete a backup schedule (its backups stay)', ok: { status: 204, description: 'deleted' } },
  { method: 'post', path: '/v1/backup-schedules/{name}/run', tag: 'schedules', summary: 'Run a schedule now', description: 'Queues a run due now. Refused (422, naming it) while a run of the schedule is going on.', ok: { status: 202, description: 'queued: the id of the backup it makes', schema: ref('BackupScheduleRunResponse') } },
  // Weaviate's data endpoints
  { method: 'get', path: '/v1/.well-known/live', tag: 'weaviate', summary: 'Liveness', open: true, ok: { status: 200, description: 'the process answers' } },
  { method: 'get', path: '/v1/.well-known/ready', tag: 'weaviate', summary: 'Readiness: Redis and the data directory', open: true, ok: { status: 200, description: 'ready (503 when not)' } },
  { method: 'get', path: '/v1/meta', tag: 'weaviate', summary: 'Version and hostname', ok: { status: 200, description: 'meta', schema: object('{hostname, version, modules}') } },
  { method: 'get', path: '/v1/nodes', tag: 'weaviate', summary: 'Nodes with their shards and object counts', ok: { status: 200, description: 'nodes', schema: object('{nodes: [{name, status, version, stats, shards}]}') } },
  { method: 'get', path: '/v1/schema', tag: 'weaviate', summary: 'Every class', ok: { status: 200, description: 'classes', schema: object('{classes: [WeaviateClass]}') } },
  { method: 'post', path: '/v1/schema', tag: 'weaviate', summary: 'Create a class', body: 'WeaviateClass', ok: { status: 200, description: 'the class', schema: ref('WeaviateClass') } },
  { method: 'get', path: '/v1/schema/{class}', tag: 'weaviate', summary: 'One class', ok: { status: 200, description: 'the class', schema: ref('WeaviateClass') } },
  { method: 'delete', path: '/v1/schema/{class}', tag: 'weaviate', summary: 'Delete a class and its objects', ok: { status: 200, description: 'deleted (or did not exist)' } },
  { method: 'post', path: '/v1/objects', tag: 'weaviate', summary: 'Store an object', body: 'WeaviateObject', ok: { status: 200, description: 'the object', schema: ref('WeaviateObject') } },
  { method: 'post', path: '/v1/batch/objects', tag: 'weaviate', summary: 'Store many objects', description: 'Each object is answered with its own result, in order; a refused one carries result.errors. The objects of one class are written as one transaction per shard, and the answer comes once they are on disk.', body: 'BatchObjectsRequest', ok: { status: 200, description: 'one result per object', schema: { type: 'array', items: { type: 'object' } } } },
  { method: 'get', path: '/v1/objects/{class}/{id}', tag: 'weaviate', summary: 'One object', ok: { status: 200, description: 'the object', schema: ref('WeaviateObject') } },
  { method: 'head', path: '/v1/objects/{class}/{id}', tag: 'weaviate', summary: 'Does the object exist', ok: { status: 204, description: 'it exists (404 when not)' } },
  { method: 'put', path: '/v1/objects/{class}/{id}', tag: 'weaviate', summary: 'Replace an object', description: "The object's properties become the body's; 404 when there is no such object. The body's class and id, when given, must match the path.", body: 'WeaviateObject', ok: { status: 200, description: 'the object as stored', schema: ref('WeaviateObject') } },
  { method: 'patch', path: '/v1/objects/{class}/{id}', tag: 'weaviate', summary: 'Merge properties into an object', description: "The body's properties replace those of the same name; the others stay. Read, merge and write are one transaction.", body: 'WeaviateObject', ok: { status: 204, description: 'merged' } },
  { method: 'delete', path: '/v1/objects/{class}/{id}', tag: 'weaviate', summary: 'Delete an object', ok: { status: 204, description: 'deleted (404 when there was none)' } },
  {
    method: 'get',
    path: '/v1/objects',
    tag: 'weaviate',
    summary: 'List objects',
    query: [
      { name: 'class', description: 'only this class (required with after)', schema: { type: 'string' } },
      { name: 'limit', description: 'at most this many', schema: { type: 'integer', minimum: 1, maximum: 10_000, default: 25 } },
      { name: 'after', description: 'start after this id (cursor)', schema: { type: 'string' } },
    ],
    ok: { status: 200, description: 'objects', schema: object('{objects: [WeaviateObject], totalResults}') },
  },
  // Xapiand's index and document endpoints
  { method: 'put', path: '/{index}/:schema', tag: 'xapiand', summary: "Set an index's schema (creates the index)", body: 'XapiandSchemaRequest', ok: { status: 200, description: 'the schema as stored', schema: object('schema') } },
  { method: 'get', path: '/{index}/:schema', tag: 'xapiand', summary: "An index's schema", ok: { status: 200, description: 'the schema', schema: object('schema') } },
  { method: 'get', path: '/{index}/:info', tag: 'xapiand', summary: 'Document count, shards and nodes of an index', ok: { status: 200, description: 'info', schema: object('info') } },
  { method: 'get', path: '/{index}/:metadata', tag: 'xapiand', summary: "Every metadata key of an index (also with a trailing /)", ok: { status: 200, description: 'key → value', schema: object('metadata') } },
  { method: 'get', path: '/{index}/:metadata/{key}', tag: 'xapiand', summary: 'One metadata value', ok: { status: 200, description: 'the value', schema: any('any JSON value') } },
  { method: 'put', path: '/{index}/:metadata/{key}', tag: 'xapiand', summary: 'Set one metadata value', body: { required: true, description: 'any JSON value', content: { 'application/json': any('any JSON value') } }, ok: { status: 200, description: 'the value', schema: any('any JSON value') } },
  { method: 'post', path: '/{index}/:dump', tag: 'xapiand', summary: 'Every document, streamed', description: 'The format follows Accept: JSON array (default), NDJSON, MessagePack, or the binary dump file with application/octet-stream.', ok: { status: 200, description: 'the documents', content: STREAM_TYPES } },
  { method: 'post', path: '/{index}/:restore', tag: 'xapiand', summary: 'Restore documents, streamed', description: 'The format follows Content-Type; the body size limit does not apply, only the per-document one.', body: { required: true, description: 'documents', content: STREAM_TYPES }, streamed: true, ok: { status: 200, description: 'counts and per-document errors', schema: object('{processed, indexed, total, items, refused?}') } },
  { method: 'post', path: '/{index}/', tag: 'xapiand', summary: 'Store a document with a new id (also without the trailing /)', description: 'The document is stored under a new id (a UUID) unless the body gives its `_id`.', body: 'Document', ok: { status: 201, description: 'the document as stored', schema: ref('Document') } },
  { method: 'put', path: '/{index}/{id}', tag: 'xapiand', summary: 'Store a document under an id', body: 'Document', ok: { status: 200, description: 'the document, replaced', schema: ref('Document') }, alsoOk: { status: 201, description: 'the document, new' } },
  { method: 'get', path: '/{index}/{id}', tag: 'xapiand', summary: 'One document', ok: { status: 200, description: 'the document', schema: ref('Document') } },
  { method: 'delete', path: '/{index}/{id}', tag: 'xapiand', summary: 'Delete a document', ok: { status: 200, description: 'deleted', schema: object('{_id, result}') } },
  { method: 'delete', path: '/{index}', tag: 'xapiand', summary: 'Delete an index (also with a trailing /)', ok: { status: 200, description: 'deleted', schema: object('{index, result}') } },
  // Operations
  { method: 'get', path: '/metrics', tag: 'operations', summary: 'Prometheus metrics', description: 'HTTP durations, BullMQ queue metrics, backup and restore counters and histograms.', ok: { status: 200, description: 'Prometheus text format 0.0.4', text: 'metrics' } },
  { method: 'get', path: '/v1/openapi.json', tag: 'operations', summary: 'This document', ok: { status: 200, description: 'OpenAPI 3.1', schema: object('OpenAPI document') } },
  { method: 'get', path: '/docs', tag: 'operations', summary: 'This document as a web page', ok: { status: 200, description: 'HTML', content: { 'text/html': { type: 'string' } } } },
  { method: 'get', path: '/admin/queues', tag: 'operations', summary: 'The queue dashboard (bull-board), a web page', description: 'Every queue of the job catalog, its jobs and their retries. With API keys on, open it once as /admin/queues?key=<key> (or sign in on its 401 page): that sets a session cookie for the pages and calls under /admin/queues.', ok: { status: 200, description: 'HTML', content: { 'text/html': { type: 'string' } } } },
];

/** `GET /path` of the operations answered without the API key when auth is on (all are GETs without parameters). */
const OPEN_OPERATIONS: ReadonlySet<string> = new Set(OPERATIONS.filter((o) => o.open).map((o) => `${o.method.toUpperCase()} ${o.path}`));

/** Whether a request is one of the open operations (HEAD counts as GET). */
export function isOpenOperation(method: string, path: string): boolean {
  return OPEN_OPERATIONS.has(`${method === 'HEAD' ? 'GET' : method} ${path}`);
}

// ---- path parameters ------------------------------------------------------------------------------

function pathParam(name: string, path: string): Param {
  const backups = path.startsWith('/v1/backups/');
  switch (name) {
    case 'backend':
      return { name, description: 'filesystem, s3 or gcs (gcp is accepted for gcs)', schema: { type: 'string', enum: [...BACKEND_NAMES, 'gcp'] } };
    case 'id':
      if (backups) return { name, description: 'the backup id', schema: jsonSchema(backupIdSchema) };
      if (path.startsWith('/v1/objects/')) return { name, description: 'the object id', schema: { type: 'string', format: 'uuid' } };
      return { name, description: "the document's _id (typed by the index schema)", schema: { type: 'string' } };
    case 'class':
      return { name, description: 'a class name (an index of that exact name, else the capitalised one)', schema: { type: 'string' } };
    case 'index':
      return { name, description: 'an index name', schema: { type: 'string', pattern: INDEX_NAME.source } };
    case 'key':
      return { name, description: 'a metadata key', schema: { type: 'string' } };
    case 'name':
      return { name, description: 'the schedule name', schema: { type: 'string', pattern: SCHEDULE_NAME.source } };
    default:
      throw new Error(`openapi: no description of path parameter ${name} (${path})`);
  }
}

// ---- the document -----------------------------------------------------------------------------------

const TAGS = [
  { name: 'backups', description: "Weaviate-compatible backups and restores, run as distributed BullMQ jobs" },
  { name: 'schedules', description: 'Backup schedules with retention, run by the workers (beyond Weaviate, which has none)' },
  { name: 'weaviate', description: "Weaviate's classes, objects, meta, nodes and health" },
  { name: 'xapiand', description: "Xapiand's indexes, documents, metadata, dump and restore; commands are literal `:name` path segments" },
  { name: 'operations', description: 'Monitoring and this documentation; the queue dashboard (bull-board) is at /admin/queues' },
];

let cached: Record<string, unknown> | undefined;

/** The OpenAPI 3.1 document (built once). */
export function openApiDocument(): Record<string, unknown> {
  if (cached) return cached;
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) {
    const params = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ ...pathParam(m[1]!, op.path), in: 'path', required: true }));
    const query = (op.query ?? []).map((q) => ({ ...q, in: 'query', required: q.required ?? false }));
    const json = !op.ok.text && !op.ok.content && op.path !== '/docs';
    const parameters = [...params, ...query, ...(json ? [{ $ref: '#/components/parameters/pretty' }] : [])];
    const body =
      op.body === undefined
        ? undefined
        : typeof op.body === 'string'
          ? { required: true, content: { 'application/json': { schema: ref(op.body) } } }
          : { required: op.body.required, description: op.body.description, content: Object.fromEntries(Object.entries(op.body.content).map(([type, schema]) => [type, { schema }])) };
    const okContent = op.ok.schema
      ? { 'application/json': { schema: op.ok.schema } }
      : op.ok.text
        ? { 'text/plain': { schema: { type: 'string' } } }
        : op.ok.content
          ? Object.fromEntries(Object.entries(op.ok.content).map(([type, schema]) => [type, { schema }]))
          : undefined;
    const error = (description: string) => ({ description, content: { 'application/json': { schema: ref('ErrorResponse') } } });
    paths[op.path] ??= {};
    paths[op.path]![op.method] = {
      tags: [op.tag],
      summary: op.summary,
      ...(op.description ? { description: op.description } : {}),
      operationId: `${op.method}${op.path.replace(/[^A-Za-z0-9]+(.)?/g, (_, ch: string | undefined) => (ch ? ch.toUpperCase() : ''))}`,
      ...(parameters.length ? { parameters } : {}),
      ...(body ? { requestBody: body } : {}),
      ...(op.open ? { security: [] } : {}),
      responses: {
        [String(op.ok.status)]: { description: op.ok.description, ...(okContent ? { content: okContent } : {}) },
        ...(op.alsoOk ? { [String(op.alsoOk.status)]: { description: op.alsoOk.description, ...(okContent ? { content: okContent } : {}) } } : {}),
        ...(body ? { '400': error('a body that cannot be read: not valid JSON, or cut short') } : {}),
        ...(body && !op.streamed ? { '413': error('a body larger than MAX_BODY_BYTES') } : {}),
        ...(op.open ? {} : { '401': error('no valid API key (when AUTHENTICATION_APIKEY_ENABLED)') }),
        ...(body || params.length || query.length ? { '422': error('invalid input, or a request that clashes with the current state') } : {}),
        ...(params.length ? { '404': error('not found') } : {}),
      },
    };
  }
  cached = {
    openapi: '3.1.0',
    info: {
      title: 'shardvault',
      version: VERSION,
      description:
        'Backups and restores of a sharded, multi-node document store as distributed jobs, behind a ' +
        "Weaviate-compatible /v1/backups API, plus Xapiand-style indexes, dump and restore. JSON answers are indented with ?pretty. " +
        'Errors are {"error":[{"message":"…"}]}. With AUTHENTICATION_APIKEY_ENABLED, send Authorization: Bearer <key>.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    tags: TAGS,
    security: [{ apiKey: [] }],
    paths,
    components: {
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'one of AUTHENTICATION_APIKEY_ALLOWED_KEYS' } },
      parameters: {
        pretty: { name: 'pretty', in: 'query', required: false, description: 'indent the JSON answer', schema: { type: 'string' }, allowEmptyValue: true },
      },
      schemas: {
        ...Object.fromEntries(Object.entries(REQUEST_SCHEMAS).map(([name, schema]) => [name, jsonSchema(schema, 'input')])),
        ...Object.fromEntries(Object.entries(RESPONSE_SCHEMAS).map(([name, schema]) => [name, jsonSchema(schema, 'output')])),
      },
    },
  };
  return cached;
}
