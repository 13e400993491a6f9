/**
 * The OpenAPI document (/v1/openapi.json) against the app it describes: every route of the
 * Hono app is documented and every documented operation exists; request body schemas are the
 * zod schemas the routes validate with (a JSON Schema validator and zod agree on a corpus of
 * bodies, and the routes answer zod's messages); real backup answers fit the response schemas;
 * /docs renders it all offline. Moving hand-written checks onto zod kept their messages.
 */
import Ajv2020 from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { jsonSchema, OPERATIONS, REQUEST_SCHEMAS } from '../../api/openapi.ts';
import { backupListSchema, errorResponseSchema, operationStartedSchema, operationStatusSchema } from '../../shared/backups/contract.ts';
import { REQUESTED_COMPRESSION_LEVELS } from '../../shared/formats/compression.ts';
import type { RedisServer } from '../../shared/redis-server.ts';
import { createTestApi, type TestApi } from '../support/api.ts';
import { startTestRedis } from '../support/redis.ts';

let redis: RedisServer;
let t: TestApi;

beforeAll(async () => {
  redis = await startTestRedis();
  t = createTestApi(redis.url);
  await t.store.putDocuments('Documented', [{ _id: 'd1', title: 'one' }]);
});

afterAll(async () => {
  await t?.api.stop();
  await t?.close();
  await redis?.stop();
});

interface Doc {
  openapi: string;
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { $ref?: string } }> }; parameters?: { name?: string; in?: string }[] }>>;
  components: { schemas: Record<string, Record<string, unknown>> };
}

async function document(): Promise<Doc> {
  const res = await t.api.app.request('/v1/openapi.json');
  expect(res.status).toBe(200);
  return (await res.json()) as Doc;
}

/** A Hono route path in OpenAPI's form: `:name` → `{name}`, `:cmd{:schema}` → `:schema`, no trailing slash. */
function openApiPath(honoPath: string): string {
  const p = honoPath.replace(/:\w+\{([^}]*)\}/g, '$1').replace(/\/:(\w+)/g, '/{$1}');
  return p.length > 1 ? p.replace(/\/$/, '') : p;
}

describe('GET /v1/openapi.json', () => {
  it('documents every route of the app, and nothing else', async () => {
    const doc = await document();
    expect(doc.openapi).toBe('3.1.0');
    const routes = new Set(
      t.api.app.routes
        .filter((r) => r.method !== 'ALL' && !r.path.startsWith('/admin/'))
        .map((r) => `${r.method} ${openApiPath(r.path)}`),
    );
    // Hono answers HEAD with the GET route: a documented HEAD is served where that GET is. The
    // dashboard's routes are bull-board's, not in the list above: its page is documented, and served.
    const dashboard = await t.call('GET', '/admin/queues');
    expect(dashboard.status).toBe(200);
    expect(dashboard.headers.get('content-type')).toMatch(/^text\/html/);
    const served = (op: string) => routes.has(op) || (op.startsWith('HEAD ') && routes.has(op.replace(/^HEAD/, 'GET'))) || op === 'GET /admin/queues';
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${openApiPath(path)}`)),
    );
    expect([...routes].filter((r) => !documented.has(r)), 'routes missing from the document').toEqual([]);
    expect([...documented].filter((r) => !served(r)), 'documented operations the app does not have').toEqual([]);
    expect(routes.size).toBeGreaterThan(30);
  });

  it('lists the answers the routes give for unreadable, oversized and new bodies', async () => {
    const doc = await document();
    const statuses = (path: string, method: string) => Object.keys((doc.paths[path] as Record<string, { responses: object }>)[method]!.responses).sort();
    expect((await t.call('PUT', '/openapi-probe/1', { a: 1 })).status).toBe(201);
    expect((await t.call('PUT', '/openapi-probe/1', { a: 2 })).status).toBe(200);
    expect(statuses('/{index}/{id}', 'put')).toEqual(expect.arrayContaining(['200', '201', '400', '413', '422']));
    const big = await t.call('POST', '/v1/batch/objects', { objects: [{ class: 'A', properties: { text: 'x'.repeat(t.config.maxBodyBytes) } }] });
    expect(big.status).toBe(413);
    expect(statuses('/v1/batch/objects', 'post')).toEqual(expect.arrayContaining(['400', '413']));
    // A streamed restore has no body limit, only a per-document one.
    expect(statuses('/{index}/:restore', 'post')).toContain('400');
    expect(statuses('/{index}/:restore', 'post')).not.toContain('413');
  });

  it('names every path parameter of every operation', async () => {
    const doc = await document();
    for (const [path, methods] of Object.entries(doc.paths)) {
      const names = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      for (const [method, op] of Object.entries(methods)) {
        const declared = (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name);
        expect(declared, `${method} ${path}`).toEqual(names);
      }
    }
  });

  it('describes request bodies with the zod schemas the routes validate with', async () => {
    const doc = await document();
    const used = new Set<string>();
    for (const methods of Object.values(doc.paths)) {
      for (const op of Object.values(methods)) {
        const ref = op.requestBody?.content['application/json']?.schema.$ref;
        if (ref) used.add(ref.replace('#/components/schemas/', ''));
      }
    }
    expect([...used].sort()).toEqual(Object.keys(REQUEST_SCHEMAS).sort());
    for (const [name, schema] of Object.entries(REQUEST_SCHEMAS)) {
      const { $schema: _, ...expected } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
      expect(doc.components.schemas[name], name).toEqual(expected);
    }
  });

  it('accepts and refuses the same bodies as zod does', async () => {
    const doc = await document();
    const ajv = new Ajv2020.default({ strict: false, allErrors: true, validateFormats: false });
    const corpus: Record<keyof typeof REQUEST_SCHEMAS, unknown[]> = {
      BackupCreateRequest: [
        { id: 'ok-1' },
        { id: 'ok-1', include: ['A'], config: { CompressionLevel: 'BestSpeed', CPUPercentage: 40, Bucket: 'b' } },
        { id: 'ok-2', config: { CompressionLevel: 'ZstdBestCompression' } },
        {},
        { id: 'Bad' },
        { id: 'x'.repeat(129) },
        { id: 7 },
        { id: 'a', include: 'A' },
        { id: 'a', include: [''] },
        { id: 'a', config: { CompressionLevel: 'Zstd' } },
        { id: 'a', config: { CPUPercentage: 99 } },
        { id: 'a', extra: true, include: null },
      ],
      BackupRestoreRequest: [{}, { include: ['A'] }, { node_mapping: { a: 'b' } }, { node_mapping: { a: 1 } }, { config: { ChunkSize: 1 } }, { exclude: 5 }],
      WeaviateClass: [
        { class: 'Article' },
        { class: 'Article', properties: [{ name: 'title', dataType: ['text'] }], shardingConfig: { desiredCount: 3 } },
        { class: '1bad' },
        { class: 'A', properties: [{ name: 'x', dataType: ['text', 'int'] }] },
        { class: 'A', shardingConfig: { desiredCount: 0 } },
        {},
      ],
      WeaviateObject: [{ class: 'A' }, { class: 'A', id: '7c9e6679-7425-40de-944b-e07fc1f90ae7', properties: { a: 1 } }, { class: '' }, { id: 'x' }, { class: 'A', properties: [] }],
      BatchObjectsRequest: [{ objects: [] }, { objects: [{ class: 'A' }, 5] }, {}, { objects: {} }, []],
      XapiandSchemaRequest: [{}, { _schema: { a: 1 } }, { _settings: { number_of_shards: 3 } }, { _settings: { number_of_shards: 1.5 } }, { _settings: 4 }, [], null],
      Document: [{}, { _id: 1, a: [1] }, [], 'text', null],
      BackupScheduleRequest: [
        { every: '15m', backend: 'filesystem' },
        { cron: '0 3 * * *', timezone: 'Europe/Berlin', backend: 's3', include: ['A'], retention: { keepDaily: 7, maxAge: '30d' } },
        {},
        { every: '1m', backend: 'filesystem', retention: { keepYearly: 1 } },
        { every: '1m', backend: 'filesystem', retention: { keepLast: 1.5 } },
        { every: '1m', backend: 'filesystem', surprise: true },
        { every: 60, backend: 'filesystem' },
      ],
    };
    for (const [name, bodies] of Object.entries(corpus) as [keyof typeof REQUEST_SCHEMAS, unknown[]][]) {
      const validate = ajv.compile(doc.components.schemas[name]!);
      for (const body of bodies) {
        expect(validate(body), `${name} ${JSON.stringify(body)}`).toBe(REQUEST_SCHEMAS[name].safeParse(body).success);
      }
    }
  });

  it('lists the same answers the routes give for bad bodies', async () => {
    const refused = async (method: string, path: string, body: unknown, schema: z.ZodType) => {
      const res = await t.call(method, path, body);
      expect(res.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(422);
      const { error } = (await res.json()) as { error: { message: string }[] };
      const issue = schema.safeParse(body);
      expect(issue.success).toBe(false);
      expect(error[0]!.message).toContain(issue.error!.issues[0]!.message);
    };
    await refused('POST', '/v1/backups/filesystem', { id: 'Bad' }, REQUEST_SCHEMAS.BackupCreateRequest);
    await refused('POST', '/v1/backups/filesystem', { id: 'a', config: { CompressionLevel: 'Zstd' } }, REQUEST_SCHEMAS.BackupCreateRequest);
    await refused('POST', '/v1/backups/filesystem/some-id/restore', { node_mapping: { a: 1 } }, REQUEST_SCHEMAS.BackupRestoreRequest);
    await refused('POST', '/v1/schema', { class: '1bad' }, REQUEST_SCHEMAS.WeaviateClass);
    await refused('POST', '/v1/objects', { class: '' }, REQUEST_SCHEMAS.WeaviateObject);
    await refused('POST', '/v1/batch/objects', { objects: {} }, REQUEST_SCHEMAS.BatchObjectsRequest);
    await refused('PUT', '/twitter/:schema', { _settings: { number_of_shards: 1.5 } }, REQUEST_SCHEMAS.XapiandSchemaRequest);
    await refused('PUT', '/twitter/1', [1], REQUEST_SCHEMAS.Document);
    await refused('POST', '/twitter/', [1], REQUEST_SCHEMAS.Document);
  });

  it('keeps the messages of the checks that moved onto zod', async () => {
    const message = async (method: string, path: string, body: unknown) => {
      const res = await t.call(method, path, body);
      expect(res.status).toBe(422);
      return ((await res.json()) as { error: { message: string }[] }).error[0]!.message;
    };
    const idRules = '"_" or "-"';
    expect(await message('POST', '/v1/backups/filesystem', {})).toBe(`backup id is required: a string of lowercase letters, digits, ${idRules}`);
    expect(await message('POST', '/v1/backups/filesystem', { id: 7 })).toBe(`backup id is required: a string of lowercase letters, digits, ${idRules}`);
    expect(await message('POST', '/v1/backups/filesystem', { id: 'x'.repeat(130) })).toBe('invalid backup id: longer than 128 characters (130)');
    expect(await message('POST', '/v1/backups/filesystem', { id: 'A.b' })).toBe(
      `invalid backup id "A.b": use only lowercase letters, digits, ${idRules} (^[a-z0-9_-]+$)`,
    );
    expect(await message('GET', '/v1/backups/filesystem/A.b', undefined)).toBe(
      `invalid backup id "A.b": use only lowercase letters, digits, ${idRules} (^[a-z0-9_-]+$)`,
    );
    expect(await message('POST', '/v1/backups/filesystem', { id: 'a', config: { CompressionLevel: 'Zstd' } })).toBe(
      `invalid config.CompressionLevel "Zstd": use one of ${REQUESTED_COMPRESSION_LEVELS.join(', ')}`,
    );
    expect(await message('POST', '/v1/backups/filesystem', { id: 'a', include: 'A' })).toMatch(/^invalid backup request: include: /);
    expect(await message('POST', '/v1/batch/objects', { objects: 1 })).toBe('body must be {"objects": [...]}');
    expect(await message('POST', '/v1/batch/objects', undefined)).toBe('body must be {"objects": [...]}');
    expect(await message('PUT', '/twitter/:schema', [1])).toBe('schema must be a JSON object');
    expect(await message('PUT', '/twitter/:schema', { _settings: { number_of_shards: '3' } })).toBe('_settings.number_of_shards must be an integer, got "3"');
    expect(await message('PUT', '/twitter/7', JSON.stringify('text'))).toBe('a document must be a JSON object');
  });

  it('describes real backup answers', async () => {
    const started = await t.call('POST', '/v1/backups/filesystem', { id: 'described' });
    expect(started.status, await started.clone().text()).toBe(200);
    operationStartedSchema.parse(await started.json());
    const status = await t.call('GET', '/v1/backups/filesystem/described');
    operationStatusSchema.parse(await status.json());
    const list = await t.call('GET', '/v1/backups/filesystem');
    expect(backupListSchema.parse(await list.json()).map((b) => b.id)).toContain('described');
    const missing = await t.call('GET', '/v1/backups/filesystem/not-there');
    expect(missing.status).toBe(404);
    errorResponseSchema.parse(await missing.json());
    // The response schemas are in the document as they are here.
    const doc = await document();
    expect(doc.components.schemas.BackupStatusResponse).toEqual(jsonSchema(operationStatusSchema, 'output'));
  });
});

describe('GET /docs', () => {
  it('renders every operation and schema in a page that needs nothing from elsewhere', async () => {
    const res = await t.api.app.request('/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const page = await res.text();
    for (const op of OPERATIONS) expect(page, `${op.method} ${op.path}`).toContain(`id="${op.method}-${op.path}"`);
    for (const name of Object.keys(REQUEST_SCHEMAS)) expect(page).toContain(`id="schema-${name}"`);
    expect(page).not.toMatch(/<script|https?:\/\//);
    expect(page).toContain('href="/v1/openapi.json"');
  });

  // Issue 8: with auth on, everything but the two health endpoints needs the key.
  it('needs the API key when auth is on, like every endpoint but health', async () => {
    const secured = createTestApi(redis.url, { AUTHENTICATION_APIKEY_ENABLED: 'true', AUTHENTICATION_APIKEY_ALLOWED_KEYS: 'k1' });
    try {
      expect((await secured.api.app.request('/v1/openapi.json')).status).toBe(401);
      expect((await secured.api.app.request('/docs')).status).toBe(401);
      const key = { headers: { authorization: 'Bearer k1' } };
      expect((await secured.api.app.request('/v1/openapi.json', key)).status).toBe(200);
      expect((await secured.api.app.request('/docs', key)).status).toBe(200);
      expect((await secured.call('POST', '/docs', { a: 1 })).status).toBe(401);
      expect((await secured.call('PUT', '/docs/1', { a: 1 })).status).toBe(401);
      expect((await secured.api.app.request('/v1/meta')).status).toBe(401);
    } finally {
      await secured.api.stop();
      await secured.close();
    }
  });
});
