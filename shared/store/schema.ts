/**
 * Index schemas with Xapiand's field types, and the coercion every write goes through.
 *
 * A schema is a plain object: reserved keys start with `_` (`_type`, `_id`, `_meta`),
 * every other key is a field whose value is a field schema `{ _type, ...subfields }`.
 * Fields not in the schema are added on first write with an inferred type; once a field
 * has a type it keeps it: a later schema or document that disagrees is refused (422).
 */
import { ValidationError } from '../errors.ts';
import { assertNesting } from '../nesting.ts';

const SCALAR_TYPES = [
  'text', 'keyword', 'integer', 'positive', 'floating', 'boolean', 'datetime', 'date', 'uuid',
] as const;
const FIELD_TYPES = [...SCALAR_TYPES, 'object', 'array'] as const;
const ID_TYPES = ['integer', 'positive', 'keyword', 'text', 'uuid'] as const;

export type ScalarType = (typeof SCALAR_TYPES)[number];
/** `array` holds any values; `array/<scalar>` holds values of that type. */
export type FieldType = ScalarType | 'object' | 'array' | `array/${ScalarType}`;

export interface FieldSchema {
  _type: FieldType;
  [subfield: string]: unknown;
}

export interface IndexSchema {
  _type: 'object';
  _id?: { _type: FieldType };
  [field: string]: unknown;
}

export type DocId = string | number;
export type Document = Record<string, unknown> & { _id: DocId };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATETIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$/i;
const INTEGER = /^[+-]?\d+$/;
const FLOAT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

const fieldName = (path: string) => path || '_id';

function isFieldType(t: unknown): t is FieldType {
  if (typeof t !== 'string') return false;
  if ((FIELD_TYPES as readonly string[]).includes(t)) return true;
  const m = /^array\/(.+)$/.exec(t);
  return m !== null && (SCALAR_TYPES as readonly string[]).includes(m[1]!);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date) && !Buffer.isBuffer(v);
}

export function emptySchema(): IndexSchema {
  return { _type: 'object' };
}

/**
 * Validate and normalise a user-supplied (object) schema. Nested objects without `_type`
 * become `object` fields. Unknown types are refused with the field's path.
 */
export function normalizeSchema(input: unknown, path = ''): IndexSchema {
  if (!isPlainObject(input)) throw new ValidationError(`schema${path ? ` of field ${path}` : ''} must be an object`);
  if (path === '') assertNesting(input, 'the schema');
  const out: Record<string, unknown> = { _type: 'object' };
  for (const [key, value] of Object.entries(input)) {
    const here = path ? `${path}.${key}` : key;
    if (key === '_type') {
      if (value !== 'object') throw new ValidationError(`schema ${path || '(root)'}: _type must be "object", got ${JSON.stringify(value)}`);
      continue;
    }
    if (key === '_meta') {
      out._meta = value;
      continue;
    }
    if (key === '_id') {
      const t = isPlainObject(value) ? value._type : value;
      if (!(ID_TYPES as readonly string[]).includes(t as string)) {
        throw new ValidationError(`schema field _id: type ${JSON.stringify(t)} is not allowed; use one of ${ID_TYPES.join(', ')}`);
      }
      out._id = { _type: t };
      continue;
    }
    if (key.startsWith('_')) continue; // other reserved keys (e.g. _settings) are handled by callers
    out[key] = normalizeField(value, here);
  }
  return out as IndexSchema;
}

function normalizeField(value: unknown, path: string): FieldSchema {
  if (typeof value === 'string') value = { _type: value };
  if (!isPlainObject(value)) throw new ValidationError(`schema field ${path}: expected an object like {"_type": "keyword"}`);
  const type = value._type ?? 'object';
  if (!isFieldType(type)) {
    throw new ValidationError(
      `schema field ${path}: unknown type ${JSON.stringify(type)}; use one of ${FIELD_TYPES.join(', ')} or array/<type>`,
    );
  }
  if (type === 'object') {
    const nested = normalizeSchema({ ...value, _type: 'object' }, path);
    return nested as unknown as FieldSchema;
  }
  return { _type: type };
}

/** Merge `incoming` into `existing`; a field whose type would change is refused. */
export function mergeSchema(existing: IndexSchema, incoming: IndexSchema, path = ''): IndexSchema {
  const out: Record<string, unknown> = { ...existing };
  for (const [key, value] of Object.entries(incoming)) {
    if (key === '_type') continue;
    if (key === '_meta') {
      out._meta = value;
      continue;
    }
    const here = path ? `${path}.${key}` : key;
    const before = (Object.hasOwn(existing, key) ? existing[key] : undefined) as FieldSchema | undefined;
    const next = value as FieldSchema;
    if (!before) {
      out[key] = next;
      continue;
    }
    if (before._type !== next._type) {
      throw new ValidationError(`field ${here} is ${before._type}; its type cannot change to ${next._type}`);
    }
    if (next._type === 'object') {
      out[key] = mergeSchema(before as unknown as IndexSchema, next as unknown as IndexSchema, here);
    }
  }
  return out as IndexSchema;
}

/** The type a value would get in a field that has none yet. */
function inferType(value: unknown, path: string): FieldType {
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ValidationError(`field ${fieldName(path)}: ${value} is not a finite number`);
    return Number.isInteger(value) ? 'integer' : 'floating';
  }
  if (typeof value === 'string') {
    if (UUID.test(value)) return 'uuid';
    if (DATETIME.test(value) && !Number.isNaN(parseDatetime(value)?.getTime() ?? Number.NaN)) return 'datetime';
    if (DATE.test(value)) return 'date';
    return 'text';
  }
  if (value instanceof Date) return 'datetime';
  if (Array.isArray(value)) return 'array';
  if (isPlainObject(value)) return 'object';
  throw new ValidationError(
    `field ${fieldName(path)}: ${value === null ? 'null' : typeof value} values have no field type; send a string, number, boolean, object or array`,
  );
}

function inferIdType(value: unknown): FieldType {
  if (typeof value === 'number') return 'integer';
  if (typeof value === 'string' && UUID.test(value)) return 'uuid';
  if (typeof value === 'string' && /^\d{1,15}$/.test(value)) return 'integer';
  return 'keyword';
}

function parseDatetime(value: string): Date | undefined {
  if (!DATETIME.test(value)) return undefined;
  let iso = value.replace(' ', 'T');
  if (!/(Z|[+-]\d{2}:?\d{2})$/i.test(iso)) iso += 'Z';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

function fail(path: string, type: string, value: unknown): never {
  const shown = typeof value === 'string' ? JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value) : Array.isArray(value) ? 'an array' : isPlainObject(value) ? 'an object' : String(value);
  throw new ValidationError(`field ${fieldName(path)}: expected ${type}, got ${shown}`);
}

/** Coerce one value to a scalar type, or refuse it naming the field. */
export function coerceScalar(type: ScalarType, value: unknown, path: string): unknown {
  switch (type) {
    case 'text':
    case 'keyword':
      if (typeof value === 'string') return value;
      if (typeof value === 'number' && Number.isFinite(value)) return String(value);
      if (typeof value === 'boolean') return String(value);
      return fail(path, `a ${type} string`, value);
    case 'integer':
    case 'positive': {
      let n: number | undefined;
      if (typeof value === 'number' && Number.isInteger(value)) n = value;
      else if (typeof value === 'string' && INTEGER.test(value.trim())) n = Number(value.trim());
      if (n === undefined || !Number.isSafeInteger(n)) return fail(path, type === 'positive' ? 'a positive integer' : 'an integer', value);
      if (type === 'positive' && n < 0) return fail(path, 'a positive integer', value);
      return n;
    }
    case 'floating': {
      if (typeof value === 'number' && Number.isFinite(value)) return value;
      if (typeof value === 'string' && FLOAT.test(value.trim())) return Number(value.trim());
      return fail(path, 'a floating-point number', value);
    }
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === '1' || value === 1) return true;
      if (value === 'false' || value === '0' || value === 0) return false;
      return fail(path, 'a boolean', value);
    case 'datetime': {
      if (value instanceof Date && !Number.isNaN(value.getTime())) return value;
      if (typeof value === 'number' && Number.isFinite(value)) return new Date(value * 1000);
      if (typeof value === 'string') {
        const d = parseDatetime(value.trim());
        if (d) return d;
      }
      return fail(path, 'a datetime like "2016-11-15T13:12:00"', value);
    }
    case 'date': {
      const s = value instanceof Date ? value.toISOString().slice(0, 10) : value;
      if (typeof s === 'string') {
        const m = DATE.exec(s.trim());
        if (m) {
          const d = new Date(`${m[0]}T00:00:00Z`);
          if (!Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === m[0]) return m[0];
        }
      }
      return fail(path, 'a date like "2016-11-15"', value);
    }
    case 'uuid':
      if (typeof value === 'string' && UUID.test(value.trim())) return value.trim().toLowerCase();
      return fail(path, 'a uuid', value);
  }
}

/**
 * How a coercion pass may treat fields the schema lacks: `grow` adds them (to a private
 * copy of the schema), `frozen` stops at the first one so the caller can copy and retry.
 * Most documents add nothing, so they are coerced without copying the schema.
 */
type Growth = 'grow' | 'frozen';

const NEEDS_GROWTH = Symbol('needs growth');

function coerceValue(field: FieldSchema, value: unknown, path: string, added: Growth): unknown {
  const type = field._type;
  if (type === 'object') {
    if (!isPlainObject(value)) return fail(path, 'an object', value);
    return coerceObject(field as unknown as IndexSchema, value, path, added);
  }
  if (type === 'array' || type.startsWith('array/')) {
    if (!Array.isArray(value)) return fail(path, `an array`, value);
    const element = type.slice('array/'.length) as ScalarType;
    return value.map((v, i) => {
      const here = `${path}[${i}]`;
      if (type === 'array') {
        if (v === null || v === undefined) inferType(v, here);
        return v;
      }
      return coerceScalar(element, v, here);
    });
  }
  return coerceScalar(type as ScalarType, value, path);
}

/** `value`'s fields coerced to `schema`, added to `out` (a new object unless given). */
function coerceObject(schema: IndexSchema, value: Record<string, unknown>, path: string, added: Growth, out: Record<string, unknown> = {}): Record<string, unknown> {
  for (const [key, v] of Object.entries(value)) {
    if (path === '' && key === '_id') continue;
    if (key.startsWith('_')) throw new ValidationError(`field ${path ? `${path}.${key}` : key}: names starting with "_" are reserved`);
    const here = path ? `${path}.${key}` : key;
    // Own fields only: a field named like an Object.prototype member ("constructor") is just a field.
    let field = (Object.hasOwn(schema, key) ? schema[key] : undefined) as FieldSchema | undefined;
    if (!field) {
      const type = inferType(v, here);
      if (added === 'frozen') throw NEEDS_GROWTH;
      field = type === 'object' ? ({ _type: 'object' } as FieldSchema) : { _type: type };
      schema[key] = field;
    }
    out[key] = coerceValue(field, v, here, added);
  }
  return out;
}

export interface Coerced {
  doc: Document;
  /** The schema with fields this document added, or undefined when nothing was added. */
  schema?: IndexSchema;
}

/**
 * Coerce a document to the schema. `_id` (from the argument or the body) is coerced to the
 * schema's id type; unknown fields are typed by inference and returned in `schema`.
 */
export function coerceDocument(schema: IndexSchema, body: unknown, id?: unknown): Coerced {
  if (!isPlainObject(body)) throw new ValidationError('a document must be a JSON object');
  assertNesting(body, 'the document');
  const rawId = id ?? body._id;
  if (rawId === undefined || rawId === null || rawId === '') throw new ValidationError('field _id: a document needs an _id');
  if (schema._id) {
    try {
      return { doc: coerceWith(schema, body, rawId, 'frozen') };
    } catch (err) {
      if (err !== NEEDS_GROWTH) throw err;
    }
  }
  // Only a document that adds a field (or the first id type) pays for copying the schema.
  const work = structuredClone(schema);
  work._id ??= { _type: inferIdType(rawId) };
  const doc = coerceWith(work, body, rawId, 'grow');
  return { doc, schema: work };
}

function coerceWith(schema: IndexSchema, body: Record<string, unknown>, rawId: unknown, growth: Growth): Document {
  const t = schema._id!._type;
  const coercedId = coerceScalar(t === 'text' ? 'keyword' : (t as ScalarType), rawId, '_id') as DocId;
  if (typeof coercedId === 'string' && (coercedId.length === 0 || Buffer.byteLength(coercedId) > 500)) {
    throw new ValidationError('field _id: must be 1 to 500 bytes');
  }
  // The fields go straight into the document that starts with its _id, rather than into an object copied after it.
  return coerceObject(schema, body, '', growth, { _id: coercedId }) as Document;
}

/** Turn a stored document into JSON-friendly values (Dates become ISO strings). */
export function toJson(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) return value.map(toJson);
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJson(v)]));
  return value;
}

/** True when a value holds binary data somewhere (JSON.stringify would not write it as toJson does). */
function hasBinary(value: unknown): boolean {
  if (value === null || typeof value !== 'object' || value instanceof Date) return false;
  if (value instanceof Uint8Array) return true;
  if (Array.isArray(value)) return value.some(hasBinary);
  for (const key in value) if (hasBinary((value as Record<string, unknown>)[key])) return true;
  return false;
}

/**
 * JSON text of stored values. JSON.stringify already writes Dates as ISO-8601 (their
 * toJSON), the same as toJson; only binary needs toJson's base64, so only then is the value
 * copied (a batch answer of a thousand objects is not copied to be written).
 */
export function jsonText(value: unknown, indent?: number): string {
  return JSON.stringify(jsonReady(value), null, indent);
}

/** Stored values as JSON.stringify should see them: copied only when they hold binary. */
export function jsonReady(value: unknown): unknown {
  return hasBinary(value) ? toJson(value) : value;
}

/** Coerce an id given in a URL path to the index's id type, so lookups match stored keys. */
export function coerceId(schema: IndexSchema, raw: string): DocId {
  const t = schema._id?._type;
  if (!t) return INTEGER.test(raw) ? Number(raw) : raw;
  return coerceScalar(t === 'text' ? 'keyword' : (t as ScalarType), raw, '_id') as DocId;
}
