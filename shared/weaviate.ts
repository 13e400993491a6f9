/**
 * Weaviate's view of the store: a class is an index whose `_id` is a uuid, its properties
 * are the index's fields. These functions translate between Weaviate JSON and the store.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ValidationError } from './errors.ts';
import type { Document, FieldSchema, FieldType, IndexSchema } from './store/schema.ts';
import type { ClusterCatalog } from './cluster/catalog.ts';
import type { ClusterData } from './cluster/data.ts';
import { assertIndexName, SCHEMAS_INDEX, type IndexRecord } from './store/store.ts';

const TO_FIELD: Record<string, FieldType> = {
  text: 'text', string: 'keyword', int: 'integer', number: 'floating', boolean: 'boolean',
  date: 'datetime', uuid: 'uuid', object: 'object',
  'text[]': 'array/text', 'string[]': 'array/keyword', 'int[]': 'array/integer',
  'number[]': 'array/floating', 'boolean[]': 'array/boolean', 'date[]': 'array/datetime',
  'uuid[]': 'array/uuid', 'object[]': 'array',
};

const propertySchema = z.object({
  name: z.string().regex(/^[_A-Za-z][_0-9A-Za-z]{0,230}$/, 'property names are letters, digits and _').refine((n) => !n.startsWith('_'), 'property names may not start with _'),
  dataType: z.array(z.string()).length(1, 'dataType holds exactly one type'),
  description: z.string().optional(),
  tokenization: z.enum(['word', 'field', 'lowercase', 'whitespace']).optional(),
}).passthrough();

export const classSchema = z.object({
  class: z.string().regex(/^[A-Za-z][_0-9A-Za-z]{0,127}$/, 'class names start with a letter and hold letters, digits and _'),
  description: z.string().optional(),
  properties: z.array(propertySchema).default([]),
  shardingConfig: z.object({ desiredCount: z.number().int().min(1).max(256).optional() }).passthrough().optional(),
}).passthrough();

export type WeaviateClass = z.infer<typeof classSchema>;

/** Weaviate capitalises the first letter of class names. */
function className(name: string): string {
  return name.charAt(0).toUpperCase() + name.slice(1);
}

/**
 * The index a Weaviate class name means: an index of exactly that name (Xapiand users name
 * indexes in lower case), else the capitalised name Weaviate would have created.
 */
export async function resolveClass(catalog: ClusterCatalog, name: string): Promise<string> {
  const resolved = name !== SCHEMAS_INDEX && (await catalog.getIndex(name)) ? name : className(name);
  // Never the system index of foreign schemas (capitalising ".schemas" leaves it as it is), nor
  // any name that cannot be an index: these endpoints must not read, write or drop it.
  assertIndexName(resolved);
  return resolved;
}

function fieldFor(p: z.infer<typeof propertySchema>): FieldSchema {
  const dt = p.dataType[0]!;
  let type = TO_FIELD[dt];
  if (!type) throw new ValidationError(`property ${p.name}: unsupported dataType ${JSON.stringify(dt)}; use one of ${Object.keys(TO_FIELD).join(', ')}`);
  if (type === 'text' && p.tokenization === 'field') type = 'keyword';
  return { _type: type };
}

function dataTypeOf(field: FieldSchema): { dataType: string[]; tokenization?: string } {
  const t = field._type;
  const scalar = (s: string): { dataType: string[]; tokenization?: string } => {
    switch (s) {
      case 'text': return { dataType: ['text'], tokenization: 'word' };
      case 'keyword': return { dataType: ['text'], tokenization: 'field' };
      case 'integer': case 'positive': return { dataType: ['int'] };
      case 'floating': return { dataType: ['number'] };
      case 'datetime': return { dataType: ['date'] };
      case 'date': return { dataType: ['text'], tokenization: 'field' };
      default: return { dataType: [s] };
    }
  };
  if (t === 'array') return { dataType: ['object[]'] };
  if (t.startsWith('array/')) {
    const inner = scalar(t.slice(6));
    return { ...inner, dataType: [`${inner.dataType[0]}[]`] };
  }
  return scalar(t);
}

/** Parse a Weaviate class body into an index name, shard count and schema. */
export function parseClass(body: unknown): { name: string; shards?: number; schema: IndexSchema; description?: string } {
  const parsed = classSchema.safeParse(body);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new ValidationError(`invalid class: ${i.path.join('.') || 'body'}: ${i.message}`);
  }
  const c = parsed.data;
  const schema: IndexSchema = { _type: 'object', _id: { _type: 'uuid' } };
  for (const p of c.properties) schema[p.name] = fieldFor(p);
  return { name: className(c.class), shards: c.shardingConfig?.desiredCount, schema, description: c.description };
}

/**
 * The Weaviate class JSON of an index, with every field a Weaviate server returns (clients
 * refuse a class without them), each saying what shardvault does:
 * - no vectors: `vectorizer: "none"`, and the HNSW index Weaviate reports for such a class
 *   with `skip: true` (Weaviate's own switch for "index no vectors");
 * - `invertedIndexConfig`: Weaviate's defaults (shardvault keeps no inverted index of its own;
 *   these are the values a restore into Weaviate would use);
 * - one copy of each shard, no tenants, no virtual shards (one virtual per physical), FNV-1a
 *   of `_id` choosing the shard.
 */
export async function classOf(catalog: ClusterCatalog, rec: IndexRecord): Promise<Record<string, unknown>> {
  const schema = await catalog.effectiveSchema(rec);
  const properties = Object.entries(schema)
    .filter(([k]) => !k.startsWith('_'))
    .map(([name, f]) => {
      const type = dataTypeOf(f as FieldSchema);
      return { name, ...type, indexFilterable: true, indexSearchable: type.dataType[0]!.startsWith('text'), indexRangeFilters: false };
    });
  return {
    class: rec.name,
    properties,
    invertedIndexConfig: {
      bm25: { b: 0.75, k1: 1.2 },
      cleanupIntervalSeconds: 60,
      stopwords: { preset: 'en', additions: null, removals: null },
      indexNullState: false,
      indexPropertyLength: false,
      indexTimestamps: false,
    },
    multiTenancyConfig: { enabled: false, autoTenantCreation: false, autoTenantActivation: false },
    replicationConfig: { factor: 1, asyncEnabled: false, deletionStrategy: 'NoAutomatedResolution' },
    shardingConfig: {
      virtualPerPhysical: 1,
      desiredCount: rec.shards,
      actualCount: rec.shards,
      desiredVirtualCount: rec.shards,
      actualVirtualCount: rec.shards,
      function: 'fnv1a',
      strategy: 'hash',
      key: '_id',
    },
    vectorizer: 'none',
    moduleConfig: {},
    vectorIndexType: 'hnsw',
    vectorIndexConfig: {
      skip: true,
      distance: 'cosine',
      cleanupIntervalSeconds: 300,
      maxConnections: 32,
      efConstruction: 128,
      ef: -1,
      dynamicEfMin: 100,
      dynamicEfMax: 500,
      dynamicEfFactor: 8,
      vectorCacheMaxObjects: 1_000_000_000_000,
      flatSearchCutoff: 40_000,
      filterStrategy: 'sweeping',
      pq: { enabled: false },
      bq: { enabled: false },
      sq: { enabled: false },
    },
  };
}

export const objectSchema = z.object({
  class: z.string().min(1, 'class is required'),
  id: z.string().uuid('id must be a uuid').optional(),
  properties: z.record(z.string(), z.unknown()).default({}),
}).passthrough();

export const BATCH_BODY_MESSAGE = 'body must be {"objects": [...]}';

/**
 * The body of POST /v1/batch/objects. Each object is checked on its own by putObject (as
 * objectSchema), so one bad object is answered in its own result and the others are stored.
 */
export const batchObjectsSchema = z.looseObject(
  {
    objects: z.array(z.unknown().meta({ description: 'a Weaviate object, as for POST /v1/objects; checked one by one' }), {
      error: BATCH_BODY_MESSAGE,
    }),
  },
  { error: BATCH_BODY_MESSAGE },
);

/** What objectSchema makes of a valid object body: its class as sent, its id (if any) and its properties. */
interface CheckedObject {
  class: string;
  id?: string;
  properties: Record<string, unknown>;
}

const UUID = z.regexes.uuid();

/**
 * A Weaviate object body checked as objectSchema checks it; a bad body is a ValidationError.
 * A batch checks a thousand of them: the common valid body is checked by hand and taken as it
 * is, since zod's parse copies each object and its properties; anything else goes through zod,
 * whose first issue is the message.
 */
function checkObject(body: unknown, path?: { class: string }): CheckedObject {
  if (isObject(body)) {
    const { class: cls = path?.class, id, properties = {} } = body;
    if (typeof cls === 'string' && cls !== '' && (id === undefined || (typeof id === 'string' && UUID.test(id))) && isObject(properties)) {
      return { class: cls, id: id as string | undefined, properties };
    }
  }
  const parsed = objectSchema.safeParse(path ? { class: path.class, ...(isObject(body) ? body : {}) } : body);
  if (!parsed.success || !isObject(body)) {
    const i = parsed.success ? undefined : parsed.error.issues[0]!;
    throw new ValidationError(`invalid object: ${i ? `${i.path.join('.') || 'body'}: ${i.message}` : 'body must be a JSON object'}`);
  }
  return parsed.data;
}

/** A Weaviate object body (PUT, PATCH) as the store's class name and document; a bad body is a ValidationError. */
async function parseObject(
  data: ClusterCatalog,
  body: unknown,
  path: { class: string; id: string },
): Promise<{ name: string; doc: Record<string, unknown> }> {
  const o = checkObject(body, path);
  const name = await resolveClass(data, path.class);
  if ((await resolveClass(data, o.class)) !== name) {
    throw new ValidationError(`invalid object: class ${JSON.stringify(o.class)} differs from the class in the path (${path.class})`);
  }
  if (o.id !== undefined && o.id.toLowerCase() !== path.id.toLowerCase()) {
    throw new ValidationError(`invalid object: id ${o.id} differs from the id in the path (${path.id})`);
  }
  return { name, doc: { ...o.properties, _id: path.id.toLowerCase() } };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A stored object as its class and the document the store wrote (objectOf makes Weaviate's JSON of it), or its error. */
export type ObjectOutcome = { ok: true; class: string; doc: Document } | { ok: false; error: Error };

/**
 * Store Weaviate objects (a class that does not exist yet is created, as Weaviate's
 * auto-schema does) and answer each stored document, or its error. The objects of one class
 * go to the store as one batch: one commit and one sync per shard, whatever the count.
 */
export async function putObjects(data: ClusterData, bodies: unknown[]): Promise<ObjectOutcome[]> {
  const outcomes: ObjectOutcome[] = new Array(bodies.length);
  const checked: (CheckedObject | undefined)[] = new Array(bodies.length);
  // A batch names few classes: each is resolved once, not once per object.
  const names = new Map<string, Promise<string>>();
  for (const [at, body] of bodies.entries()) {
    try {
      const o = (checked[at] = checkObject(body));
      if (!names.has(o.class)) names.set(o.class, resolveClass(data, o.class));
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      outcomes[at] = { ok: false, error };
    }
  }
  // A class name that cannot be an index is the error of each object naming it.
  const resolved = new Map(
    await Promise.all(
      [...names].map(async ([cls, name]) => [cls, await name.catch((error: unknown) => {
        if (error instanceof ValidationError) return error;
        throw error;
      })] as const),
    ),
  );
  // Grouped in the batch's order, so a later object of the same id wins, as it would one by one.
  const byClass = new Map<string, { at: number; doc: Record<string, unknown> }[]>();
  for (const [at, o] of checked.entries()) {
    if (!o) continue;
    const name = resolved.get(o.class)!;
    if (name instanceof ValidationError) {
      outcomes[at] = { ok: false, error: name };
      continue;
    }
    const items = byClass.get(name) ?? [];
    if (items.length === 0) byClass.set(name, items);
    items.push({ at, doc: { ...o.properties, _id: o.id?.toLowerCase() ?? randomUUID() } });
  }
  await Promise.all(
    [...byClass].map(async ([name, items]) => {
      const results = await data.putDocuments(name, items.map((i) => i.doc));
      results.forEach((r, k) => {
        outcomes[items[k]!.at] = r.ok ? { ok: true, class: name, doc: r.result.doc } : r;
      });
    }),
  );
  return outcomes;
}

/** Store one Weaviate object (POST /v1/objects) and answer it as Weaviate does. */
export async function putObject(data: ClusterData, body: unknown): Promise<Record<string, unknown>> {
  const [outcome] = await putObjects(data, [body]);
  if (!outcome!.ok) throw outcome!.error;
  return objectOf(outcome!.class, outcome!.doc);
}

/** PUT /v1/objects/{class}/{id}: replace the stored object's properties (404 when there is none). */
export async function replaceObject(data: ClusterData, path: { class: string; id: string }, body: unknown): Promise<Record<string, unknown>> {
  const { name, doc } = await parseObject(data, body, path);
  const { doc: stored } = await data.updateDocument(name, path.id, { replace: doc });
  return objectOf(name, stored);
}

/** PATCH /v1/objects/{class}/{id}: merge the body's properties into the stored object's. */
export async function mergeObject(data: ClusterData, path: { class: string; id: string }, body: unknown): Promise<void> {
  const { name, doc } = await parseObject(data, body, path);
  await data.updateDocument(name, path.id, { merge: doc });
}

export function objectOf(cls: string, doc: Record<string, unknown>): Record<string, unknown> {
  const { _id, ...properties } = doc;
  return { class: cls, id: _id, properties };
}
