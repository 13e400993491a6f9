/**
 * The sharded document store.
 *
 * Cluster metadata (index records, schemas, metadata) lives in one LMDB environment under
 * `DATA_DIR/_cluster`; each shard is its own LMDB environment under
 * `DATA_DIR/<node>/<index>/<shard>/`. Several processes may open the same data directory:
 * LMDB serialises writers across processes, and every index record carries a `uid` so a
 * process notices when another one dropped and recreated an index and reopens its handles.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { ConflictError, LostShardError, NotFoundError, ValidationError } from '../errors.ts';
import { placeShards, shardFor } from './hash.ts';
import { assertFixedLmdb } from './lmdb-build.ts';
import {
  coerceDocument, coerceId, emptySchema, mergeSchema, normalizeSchema, toJson,
  type DocId, type Document, type IndexSchema,
} from './schema.ts';

/** Index names: letters, digits, `_` and `-` (Weaviate classes and Xapiand indexes alike). */
export const INDEX_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
/** The system index holding shared (foreign) schemas. */
export const SCHEMAS_INDEX = '.schemas';
const MAX_SHARDS = 256;
/** A shard's LMDB environment file, in its directory. */
export const SHARD_FILE = 'data.mdb';
/** The shards a node should hold and lost (see installClusterState), kept beside the metadata. */
const LOST_KEY = 'local/lost-shards';

export interface ForeignSchemaRef {
  _type: 'foreign/object';
  _endpoint: string;
}

export interface IndexRecord {
  name: string;
  /** Changes whenever the index is (re)created, so stale handles in other processes are noticed. */
  uid: string;
  shards: number;
  /** placement[i] is the node holding shard i. */
  placement: string[];
  schema: IndexSchema | ForeignSchemaRef;
  createdAt: string;
}

export interface IndexInfo {
  name: string;
  shards: number;
  docs: number;
  placement: { shard: number; node: string; docs: number }[];
  nodes: string[];
}

/** The cluster's metadata as one versioned value (nodes on their own hosts each keep a copy). */
export interface ClusterState {
  version: number;
  /** Every index record, `.schemas` included. */
  indexes: IndexRecord[];
  /** metadata[index][key] = value. */
  metadata: Record<string, Record<string, unknown>>;
}

/** A shard of `node` that its data directory did not hold when it took metadata it had missed. */
export interface LostShard {
  index: string;
  /** The index's uid then: a recreated or restored index of the same name is not lost. */
  uid: string;
  shard: number;
  node: string;
  /** The version of the metadata the node took. */
  version: number;
}

export interface StoreOptions {
  dataDir: string;
  nodes: string[];
}

export interface CreateIndexOptions {
  shards?: number;
  schema?: unknown;
}

export interface WriteResult {
  _id: DocId;
  created: boolean;
  /** The document as stored (coerced to the index's schema). */
  doc: Document;
}

/** What a batch write answers for each document: its write, or why it was refused. */
export type PutOutcome = { ok: true; result: WriteResult } | { ok: false; error: Error };

/**
 * How the environments several processes share (the cluster's, every shard's) are opened.
 * lmdb-js's default overlapping sync (a commit returns before its sync, and the next
 * transaction starts beside it) is not safe between processes in lmdb 3.5: with two to four
 * processes writing one environment, about one run in forty-five failed a commit with
 * MDB_BAD_TXN ("mdb_page_touch no parent"), and one run on a pre-created environment hung
 * every writer for good; with overlapping sync off, none of either in 250 runs (see the
 * commit that set this). Each commit then syncs before the next begins, which is what a
 * write's promise waits for anyway. (That error is also what lmdb's open race gives — a process
 * opening an environment set the shared transaction id back, docs/lmdb.md, fixed in the build
 * `npm ci` makes — which may have been its cause; overlapping sync was not measured again.)
 */
const SHARED_ENV = { overlappingSync: false } as const;

/** Wait until every write this process made to these shards is on disk (not only committed). */
async function flushed(dbs: Iterable<RootDatabase>): Promise<void> {
  await Promise.all([...new Set(dbs)].map((db) => db.flushed));
}

const indexKey = (name: string) => `index/${name}`;
const VERSION_KEY = 'version';
const metaKey = (index: string, key: string) => `meta/${index}/${key}`;

export function assertIndexName(name: string, allowSystem = false): void {
  if (allowSystem && name === SCHEMAS_INDEX) return;
  if (!INDEX_NAME.test(name)) {
    throw new ValidationError(
      `invalid index name ${JSON.stringify(name.slice(0, 140))}: use 1-128 letters, digits, "_" or "-", starting with a letter or digit`,
    );
  }
}

export function isForeign(schema: IndexRecord['schema']): schema is ForeignSchemaRef {
  return schema._type === 'foreign/object';
}

export function parseEndpoint(endpoint: unknown): string {
  const m = typeof endpoint === 'string' ? /^\.schemas\/([^/]+)$/.exec(endpoint) : null;
  if (!m) throw new ValidationError(`_endpoint must look like ".schemas/<uuid>", got ${JSON.stringify(endpoint)}`);
  return m[1]!.toLowerCase();
}

/**
 * Validate a schema body. A `foreign/object` schema answers the reference (its `schema`
 * member, when given, is stored in `.schemas` by putSchema); otherwise the normalised object schema.
 */
export function prepareSchema(body: unknown): IndexRecord['schema'] {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ValidationError('schema must be a JSON object');
  const b = body as Record<string, unknown>;
  if (b._type === 'foreign/object') {
    parseEndpoint(b._endpoint);
    return { _type: 'foreign/object', _endpoint: b._endpoint as string };
  }
  if (b._type !== undefined && b._type !== 'object') {
    throw new ValidationError(`schema _type must be "object" or "foreign/object", got ${JSON.stringify(b._type)}`);
  }
  return normalizeSchema(b);
}

/** The record of a new index over `nodes` (not yet stored); validates name, shard count and schema. */
export function newIndexRecord(name: string, options: CreateIndexOptions, nodes: readonly string[]): IndexRecord {
  assertIndexName(name, true);
  const shards = options.shards ?? nodes.length;
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_SHARDS) {
    throw new ValidationError(`shard count must be an integer from 1 to ${MAX_SHARDS}, got ${JSON.stringify(shards)}`);
  }
  const schema = options.schema === undefined ? emptySchema() : prepareSchema(options.schema);
  return {
    name,
    uid: randomUUID(),
    shards,
    placement: placeShards(shards, nodes),
    schema,
    createdAt: new Date().toISOString(),
  };
}

/** What `GET /{index}/:schema` answers: the object schema, with `_endpoint` for foreign ones. */
export function describeSchemaOf(rec: IndexRecord, effective: IndexSchema): Record<string, unknown> {
  return isForeign(rec.schema) ? { ...effective, _type: 'foreign/object', _endpoint: rec.schema._endpoint } : effective;
}

/**
 * Coerce a batch of document bodies to `schema`; fields the batch adds grow the schema, so
 * later documents are checked against what earlier ones added. Answers each document or its
 * error, and the schema after the batch (the same object when nothing grew).
 */
export function coerceBatch(
  schema: IndexSchema,
  bodies: unknown[],
): { prepared: ({ ok: true; doc: Document } | { ok: false; error: Error })[]; schema: IndexSchema } {
  const prepared = bodies.map((body) => {
    try {
      const { doc, schema: grown } = coerceDocument(schema, body);
      if (grown) schema = grown;
      return { ok: true as const, doc };
    } catch (error) {
      return { ok: false as const, error: error as Error };
    }
  });
  return { prepared, schema };
}

/** The answers of a batch: each coerced document with whether it was new, or its error. */
export function batchOutcomes(prepared: ReturnType<typeof coerceBatch>['prepared'], created: boolean[]): PutOutcome[] {
  let k = 0;
  return prepared.map((p) => (p.ok ? { ok: true as const, result: { _id: p.doc._id, created: created[k++]!, doc: p.doc } } : p));
}

/** The first `limit` of several shards' listings (each already in `_id` order), in `_id` order. */
export function mergeListings(heads: Document[], limit: number): Document[] {
  return heads.sort((a, b) => (a._id < b._id ? -1 : a._id > b._id ? 1 : 0)).slice(0, limit);
}

/**
 * An existing index's record after `PUT /{index}/:schema` with the prepared schema: fields
 * added (a field's type never changes), the shard count and a foreign schema unchanged.
 */
function schemaPut(rec: IndexRecord, prepared: IndexRecord['schema'], shards: number | undefined): IndexRecord {
  if (shards !== undefined && shards !== rec.shards) {
    throw new ValidationError(`index ${rec.name} has ${rec.shards} shards; the shard count cannot change`);
  }
  if (isForeign(prepared) || isForeign(rec.schema)) {
    if (JSON.stringify(prepared) !== JSON.stringify(rec.schema)) {
      throw new ValidationError(`index ${rec.name} already has a schema; a foreign schema can only be set on a new index`);
    }
    return rec;
  }
  return { ...rec, schema: mergeSchema(rec.schema, prepared) };
}

export function assertMetadataKey(key: string): void {
  if (!/^[A-Za-z0-9_.-]{1,128}$/.test(key)) {
    throw new ValidationError(`invalid metadata key ${JSON.stringify(key.slice(0, 140))}: use 1-128 letters, digits, ".", "_" or "-"`);
  }
}

/**
 * The `.schemas` document a foreign schema body with a `schema` member leaves: the prior
 * document's schema with the body's fields merged in, and the body's description if it has one.
 */
function sharedSchemaDoc(prior: Document | undefined, schema: IndexSchema, description: unknown): Record<string, unknown> {
  const merged = prior?.schema ? mergeSchema(normalizeSchema(prior.schema), schema) : schema;
  return { ...prior, ...(typeof description === 'string' ? { description } : {}), schema: merged };
}

/** How `.schemas` is created: one shard, documents keyed by the uuid of their endpoint. */
export const SCHEMAS_INDEX_OPTIONS: CreateIndexOptions = { shards: 1, schema: { _id: { _type: 'uuid' } } };

/**
 * What putSchemaWith needs of where index records and `.schemas` documents live: the Store,
 * or RemoteData (records on every node, documents on their shard's node).
 */
export interface SchemaPlace {
  getIndex(name: string): IndexRecord | undefined | Promise<IndexRecord | undefined>;
  /** `.schemas`, created (SCHEMAS_INDEX_OPTIONS) when missing. */
  ensureSchemasIndex(): Promise<IndexRecord>;
  readDoc(rec: IndexRecord, id: DocId): Document | undefined | Promise<Document | undefined>;
  /** `.schemas` documents hold schemas verbatim (their `_type` keys are not document fields). */
  writeSchemaDoc(holder: IndexRecord, rawId: string, doc: Record<string, unknown>): Promise<void>;
  createIndex(name: string, options: CreateIndexOptions): Promise<IndexRecord>;
  /** Replace the record by what `change` answers (NotFoundError when there is none). */
  updateRecord(name: string, change: (rec: IndexRecord) => IndexRecord): Promise<IndexRecord>;
}

/**
 * `PUT /{index}/:schema`: create the index with this schema, or extend an existing one
 * (a field's type never changes). A foreign schema body with a `schema` member is stored
 * in `.schemas` under the endpoint's id, where other indexes may share it.
 */
export async function putSchemaWith(place: SchemaPlace, name: string, body: unknown, options: { shards?: number }): Promise<IndexRecord> {
  assertIndexName(name);
  const b = (body ?? {}) as Record<string, unknown>;
  if (b._type === 'foreign/object' && b.schema !== undefined) {
    const id = parseEndpoint(b._endpoint);
    const normalized = normalizeSchema(b.schema);
    const holder = await place.ensureSchemasIndex();
    await place.writeSchemaDoc(holder, id, sharedSchemaDoc(await place.readDoc(holder, id), normalized, b.description));
  }
  const prepared = prepareSchema(b);
  if (isForeign(prepared)) {
    const holder = await place.getIndex(SCHEMAS_INDEX);
    if (!holder || !(await place.readDoc(holder, parseEndpoint(prepared._endpoint)))) {
      throw new ValidationError(`foreign schema ${prepared._endpoint} does not exist; PUT it once with its "schema" member first`);
    }
  }
  if (!(await place.getIndex(name))) {
    try {
      return await place.createIndex(name, { shards: options.shards, schema: prepared });
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
    }
  }
  return place.updateRecord(name, (rec) => schemaPut(rec, prepared, options.shards));
}

/** The outcome of one attempt to rewrite a stored document (see Store.rewriteDocument). */
export type Rewrite = { doc: Document } | { grown: IndexSchema } | undefined;

export class Store {
  readonly dataDir: string;
  readonly nodes: string[];
  private readonly cluster: RootDatabase;
  private readonly shards = new Map<string, { uid: string; db: RootDatabase }>();
  /**
   * Indexes this process is deleting, with the deletion. Their directories are being removed, so
   * no shard of theirs may be opened (that would create files in a directory being removed, or
   * an orphan that a later index of the same name would inherit), and an index of the same name
   * is created only once the deletion is over.
   */
  private readonly deleting = new Map<string, Promise<void>>();
  /** Lost shards by `index/shard`: never opened, so never created empty (see installClusterState). */
  private lost: Map<string, LostShard>;

  constructor(options: StoreOptions) {
    this.dataDir = path.resolve(options.dataDir);
    this.nodes = options.nodes;
    assertFixedLmdb();
    fs.mkdirSync(path.join(this.dataDir, '_cluster'), { recursive: true });
    this.cluster = open({ path: path.join(this.dataDir, '_cluster', 'cluster.mdb'), ...SHARED_ENV });
    this.lost = lostByShard((this.cluster.get(LOST_KEY) as LostShard[] | undefined) ?? []);
  }

  /** Directory of one shard: `DATA_DIR/<node>/<index>/<shard>/`. */
  shardDir(node: string, index: string, shard: number): string {
    return path.join(this.dataDir, node, index, String(shard));
  }

  /** True when the data directory can be written and the cluster database answers. */
  async healthy(): Promise<boolean> {
    try {
      await fs.promises.access(this.dataDir, fs.constants.W_OK);
      this.cluster.get('health');
      return true;
    } catch {
      return false;
    }
  }

  // ---- indexes -------------------------------------------------------------------------

  listIndexes(): IndexRecord[] {
    return this.allRecords().filter((r) => r.name !== SCHEMAS_INDEX);
  }

  /** Every index record, `.schemas` included. */
  private allRecords(): IndexRecord[] {
    return [...this.cluster.getRange({ start: 'index/', end: 'index/\uffff' })].map((e) => e.value as IndexRecord);
  }

  getIndex(name: string): IndexRecord | undefined {
    return this.cluster.get(indexKey(name)) as IndexRecord | undefined;
  }

  requireIndex(name: string): IndexRecord {
    assertIndexName(name, true);
    const rec = this.getIndex(name);
    if (!rec) throw new NotFoundError(`index ${JSON.stringify(name)} not found`);
    return rec;
  }

  async createIndex(name: string, options: CreateIndexOptions = {}): Promise<IndexRecord> {
    await this.deleted(name);
    const rec = newIndexRecord(name, options, this.nodes);
    const created = await this.cluster.ifNoExists(indexKey(name), () => {
      this.cluster.put(indexKey(name), rec);
    });
    if (!created) throw new ConflictError(`index ${JSON.stringify(name)} already exists`);
    return rec;
  }

  /** Xapiand creates an index on its first document; so do we. */
  async ensureIndex(name: string): Promise<IndexRecord> {
    assertIndexName(name, true);
    await this.deleted(name);
    const existing = this.getIndex(name);
    if (existing) return existing;
    try {
      return await this.createIndex(name);
    } catch (err) {
      if (err instanceof ConflictError) return this.requireIndex(name);
      throw err;
    }
  }

  /**
   * Store a set of fully written index records at once (used to publish restored indexes),
   * with each index's metadata (`metadata[index][key] = value`) in the same transaction.
   */
  async publishIndexes(records: IndexRecord[], metadata: Record<string, Record<string, unknown>> = {}): Promise<void> {
    const clash = records.find((r) => this.getIndex(r.name));
    if (clash) throw new ConflictError(`index ${JSON.stringify(clash.name)} already exists`);
    await this.cluster.transaction(() => {
      for (const r of records) {
        if (this.cluster.get(indexKey(r.name))) throw new ConflictError(`index ${JSON.stringify(r.name)} already exists`);
        this.cluster.put(indexKey(r.name), r);
        for (const [key, value] of Object.entries(metadata[r.name] ?? {})) this.cluster.put(metaKey(r.name, key), value);
      }
    });
  }

  async deleteIndex(name: string): Promise<void> {
    // A second delete of the same index while the first runs shares it.
    const running = this.deleting.get(name);
    if (running) return running;
    const rec = this.requireIndex(name);
    const deletion = (async () => {
      // From here on no shard of this index is opened in this process (shardDb refuses).
      this.closeIndexHandles(name);
      await this.cluster.transaction(() => {
        this.cluster.remove(indexKey(name));
        for (const { key } of this.cluster.getRange({ start: `meta/${name}/`, end: `meta/${name}/\uffff` })) {
          this.cluster.remove(key);
        }
      });
      await this.removeShardFiles(rec);
    })();
    this.deleting.set(name, deletion);
    try {
      await deletion;
    } finally {
      this.deleting.delete(name);
    }
  }

  /** Remove the shard directories of an index no longer in the metadata, and its emptied index directories. */
  private async removeShardFiles(rec: IndexRecord): Promise<void> {
    // Another process (a worker snapshotting it) may still create a file there: retry ENOTEMPTY.
    await Promise.all(
      rec.placement.map((node, shard) => fs.promises.rm(this.shardDir(node, rec.name, shard), { recursive: true, force: true, maxRetries: 5, retryDelay: 50 })),
    );
    await Promise.all([...new Set(rec.placement)].map((node) => fs.promises.rmdir(path.join(this.dataDir, node, rec.name)).catch(() => undefined)));
  }

  /** Resolves once no deletion of `name` is running in this process. */
  private async deleted(name: string): Promise<void> {
    await this.deleting.get(name)?.catch(() => undefined);
  }

  info(name: string): IndexInfo {
    const rec = this.requireIndex(name);
    const placement = rec.placement.map((node, shard) => ({ shard, node, docs: this.shardCount(rec, shard) }));
    return {
      name: rec.name,
      shards: rec.shards,
      docs: placement.reduce((n, p) => n + p.docs, 0),
      placement,
      nodes: [...new Set(rec.placement)],
    };
  }

  // ---- schemas -------------------------------------------------------------------------

  /** The object schema documents of an index are checked against (foreign schemas resolved). */
  effectiveSchema(rec: IndexRecord): IndexSchema {
    if (!isForeign(rec.schema)) return rec.schema;
    const id = parseEndpoint(rec.schema._endpoint);
    const holder = this.getIndex(SCHEMAS_INDEX);
    const doc = holder ? (this.readDoc(holder, id) as { schema?: unknown } | undefined) : undefined;
    if (!doc?.schema) throw new NotFoundError(`foreign schema ${rec.schema._endpoint} not found`);
    return normalizeSchema(doc.schema);
  }

  /** What `GET /{index}/:schema` answers: the object schema, with `_endpoint` for foreign ones. */
  describeSchema(name: string): Record<string, unknown> {
    const rec = this.requireIndex(name);
    return describeSchemaOf(rec, this.effectiveSchema(rec));
  }

  /** `PUT /{index}/:schema` (putSchemaWith) on this data directory. */
  putSchema(name: string, body: unknown, options: { shards?: number } = {}): Promise<IndexRecord> {
    return putSchemaWith(this, name, body, options);
  }

  async ensureSchemasIndex(): Promise<IndexRecord> {
    const existing = this.getIndex(SCHEMAS_INDEX);
    if (existing) return existing;
    try {
      return await this.createIndex(SCHEMAS_INDEX, SCHEMAS_INDEX_OPTIONS);
    } catch (err) {
      if (err instanceof ConflictError) return this.requireIndex(SCHEMAS_INDEX);
      throw err;
    }
  }

  /** `.schemas` documents hold schemas verbatim (their `_type` keys are not document fields). */
  async writeSchemaDoc(holder: IndexRecord, rawId: string, doc: Record<string, unknown>): Promise<void> {
    const id = coerceId(this.effectiveSchema(holder), rawId);
    await this.shardDb(holder, shardFor(id, holder.shards)).put(id, { ...doc, _id: id });
  }

  async updateRecord(name: string, change: (rec: IndexRecord) => IndexRecord): Promise<IndexRecord> {
    let result: IndexRecord | undefined;
    await this.cluster.transaction(() => {
      const rec = this.cluster.get(indexKey(name)) as IndexRecord | undefined;
      if (!rec) throw new NotFoundError(`index ${JSON.stringify(name)} not found`);
      result = change(rec);
      if (result !== rec) this.cluster.put(indexKey(name), result);
    });
    return result!;
  }

  /** Persist fields a write added to the (possibly foreign) schema; concurrent additions merge. */
  private async extendSchema(rec: IndexRecord, added: IndexSchema): Promise<void> {
    if (isForeign(rec.schema)) {
      const id = parseEndpoint(rec.schema._endpoint);
      const holder = this.requireIndex(SCHEMAS_INDEX);
      const doc = this.readDoc(holder, id) as Record<string, unknown>;
      await this.writeSchemaDoc(holder, id, { ...doc, schema: mergeSchema(normalizeSchema(doc.schema), added) });
      return;
    }
    await this.updateRecord(rec.name, (current) => {
      if (current.uid !== rec.uid || isForeign(current.schema)) return current;
      return { ...current, schema: mergeSchema(current.schema, added) };
    });
  }

  // ---- documents -----------------------------------------------------------------------

  /** Every document of one shard, read in one read transaction (a consistent snapshot while writes go on). */
  *shardDocuments(rec: IndexRecord, shard: number): Generator<Document> {
    for (const { value } of this.shardDb(rec, shard).getRange({})) yield value as Document;
  }

  /**
   * The LMDB database of one shard, opened once per process and reopened if the index was
   * recreated. For shared/store only (shard-files.ts copies it); everything else goes through
   * the Store's methods.
   */
  shardDb(rec: IndexRecord, shard: number): RootDatabase {
    if (this.deleting.has(rec.name)) throw new NotFoundError(`index ${JSON.stringify(rec.name)} is being deleted`);
    const key = `${rec.name}/${shard}`;
    const cached = this.shards.get(key);
    if (cached && cached.uid === rec.uid) return cached.db;
    const lost = this.lostShard(rec, shard);
    if (lost) {
      throw new LostShardError(
        `shard ${key} of node ${lost.node} is lost: the node's data directory did not hold it when the node took version ${lost.version} of the cluster's metadata, which it had missed (the directory was emptied or replaced); delete the index and restore it from a backup`,
      );
    }
    if (cached) void cached.db.close();
    const dir = this.shardDir(rec.placement[shard]!, rec.name, shard);
    fs.mkdirSync(dir, { recursive: true });
    const db = open({ path: path.join(dir, SHARD_FILE), ...SHARED_ENV });
    this.shards.set(key, { uid: rec.uid, db });
    return db;
  }

  private closeIndexHandles(name: string): void {
    for (const [key, { db }] of this.shards) {
      if (key.startsWith(`${name}/`)) {
        void db.close();
        this.shards.delete(key);
      }
    }
  }

  /** The stored document of this id, if any (on a node: of a shard it holds). */
  readDoc(rec: IndexRecord, id: DocId): Document | undefined {
    return this.shardDb(rec, shardFor(id, rec.shards)).get(id) as Document | undefined;
  }

  /** Documents in one shard. */
  shardCount(rec: IndexRecord, shard: number): number {
    return this.shardDb(rec, shard).getCount();
  }

  /**
   * Coerce and write a batch of documents; each item answers its id or its error. All the
   * batch's writes to one shard go into one LMDB transaction (see writeDocuments). Resolves
   * once every write is on disk.
   */
  async putDocuments(index: string, bodies: unknown[], options: { create?: boolean } = {}): Promise<PutOutcome[]> {
    const rec = options.create === false ? this.requireIndex(index) : await this.ensureIndex(index);
    const effective = this.effectiveSchema(rec);
    const { prepared, schema } = coerceBatch(effective, bodies);
    if (schema !== effective) await this.extendSchema(rec, schema);
    const created = await this.writeDocuments(rec, prepared.flatMap((p) => (p.ok ? [p.doc] : [])));
    return batchOutcomes(prepared, created);
  }

  /**
   * Write documents already coerced to the index's schema (a node writes what the API
   * coerced); answers for each whether it was new. lmdb-js commits the writes issued in one
   * event turn together (and groups concurrent callers' writes while a commit runs), so a
   * batch costs one commit and one sync per shard, not one per document. Resolves once every
   * write is on disk.
   */
  async writeDocuments(rec: IndexRecord, docs: Document[]): Promise<boolean[]> {
    const touched: RootDatabase[] = [];
    // No async function per document: under the API's AsyncLocalStorage every promise runs
    // async_hooks' hooks, and lmdb-js answers all the puts of one commit with one promise.
    const writes: Promise<boolean>[] = new Array(docs.length);
    const created = docs.map((doc, k) => {
      const db = this.shardDb(rec, shardFor(doc._id, rec.shards));
      touched.push(db);
      const isNew = db.get(doc._id) === undefined;
      writes[k] = db.put(doc._id, doc);
      return isNew;
    });
    await Promise.all(writes);
    await flushed(touched);
    return created;
  }

  async putDocument(index: string, body: unknown, id?: unknown, options: { create?: boolean } = {}): Promise<WriteResult> {
    const withId = id === undefined ? body : { ...(body as object), _id: id };
    const [item] = await this.putDocuments(index, [withId], options);
    if (!item!.ok) throw item!.error;
    return item!.result;
  }

  /** Resolve a path id (always a string) to the index's id type. */
  parseId(index: string, raw: string): DocId {
    const rec = this.requireIndex(index);
    return coerceId(this.effectiveSchema(rec), raw);
  }

  getDocument(index: string, rawId: string | DocId): Document {
    const rec = this.requireIndex(index);
    const id = typeof rawId === 'string' ? coerceId(this.effectiveSchema(rec), rawId) : rawId;
    const doc = this.readDoc(rec, id);
    if (!doc) throw new NotFoundError(`document ${JSON.stringify(id)} not found in index ${index}`);
    return doc;
  }

  /** True when the index holds a document of this id. */
  hasDocument(index: string, rawId: string | DocId): boolean {
    const rec = this.requireIndex(index);
    const id = typeof rawId === 'string' ? coerceId(this.effectiveSchema(rec), rawId) : rawId;
    return this.shardDb(rec, shardFor(id, rec.shards)).doesExist(id);
  }

  /**
   * Rewrite an existing document (Weaviate's PUT and PATCH): `change` gets the stored document
   * (as JSON) and answers the new body. A field the new body adds extends the schema first,
   * and the change is applied again.
   */
  async updateDocument(
    index: string,
    rawId: string | DocId,
    change: (current: Record<string, unknown>) => Record<string, unknown>,
  ): Promise<WriteResult> {
    const rec = this.requireIndex(index);
    const id = typeof rawId === 'string' ? coerceId(this.effectiveSchema(rec), rawId) : rawId;
    for (;;) {
      const outcome = await this.rewriteDocument(rec, id, this.effectiveSchema(this.requireIndex(index)), change);
      if (!outcome) throw new NotFoundError(`document ${JSON.stringify(id)} not found in index ${index}`);
      if ('grown' in outcome) {
        await this.extendSchema(rec, outcome.grown);
        continue;
      }
      return { _id: id, created: false, doc: outcome.doc };
    }
  }

  /**
   * One attempt of a rewrite. The read and the write happen in one write transaction of the
   * shard, so a concurrent write is never lost in between. Answers the document as stored
   * (on disk), or — writing nothing — the grown schema when the new body adds fields, or
   * undefined when there is no such document.
   */
  async rewriteDocument(
    rec: IndexRecord,
    id: DocId,
    schema: IndexSchema,
    change: (current: Record<string, unknown>) => Record<string, unknown>,
  ): Promise<Rewrite> {
    const db = this.shardDb(rec, shardFor(id, rec.shards));
    let outcome: Rewrite;
    await db.transaction(() => {
      const current = db.get(id) as Document | undefined;
      if (current === undefined) return;
      const coerced = coerceDocument(schema, { ...change(toJson(current) as Record<string, unknown>), _id: id });
      if (coerced.schema) {
        outcome = { grown: coerced.schema };
        return;
      }
      outcome = { doc: coerced.doc };
      db.put(id, coerced.doc);
    });
    if (outcome && 'doc' in outcome) await flushed([db]);
    return outcome;
  }

  async deleteDocument(index: string, rawId: string | DocId): Promise<void> {
    const rec = this.requireIndex(index);
    const id = typeof rawId === 'string' ? coerceId(this.effectiveSchema(rec), rawId) : rawId;
    if (!(await this.removeDocument(rec, id))) throw new NotFoundError(`document ${JSON.stringify(id)} not found in index ${index}`);
  }

  /** Remove a document; false when there was none. Resolves once the removal is on disk. */
  async removeDocument(rec: IndexRecord, id: DocId): Promise<boolean> {
    const db = this.shardDb(rec, shardFor(id, rec.shards));
    if (db.get(id) === undefined || !(await db.remove(id))) return false;
    await flushed([db]);
    return true;
  }

  /**
   * Documents in `_id` order across all shards, after the `after` id (exclusive): Weaviate's
   * cursor listing. Each shard contributes at most `limit` entries, merged in order.
   */
  listDocuments(index: string, options: { limit: number; after?: string }): Document[] {
    const rec = this.requireIndex(index);
    const after = options.after === undefined ? undefined : coerceId(this.effectiveSchema(rec), options.after);
    const heads: Document[] = [];
    for (let shard = 0; shard < rec.shards; shard++) heads.push(...this.shardListing(rec, shard, { limit: options.limit, after }));
    return mergeListings(heads, options.limit);
  }

  /** The first `limit` documents of one shard in `_id` order, after `after` (exclusive). */
  shardListing(rec: IndexRecord, shard: number, options: { limit: number; after?: DocId }): Document[] {
    const docs: Document[] = [];
    for (const { key, value } of this.shardDb(rec, shard).getRange({ start: options.after, limit: options.limit + 1 })) {
      if (options.after !== undefined && key === options.after) continue;
      docs.push(value as Document);
    }
    return docs;
  }

  // ---- metadata ------------------------------------------------------------------------

  getMetadata(index: string, key: string): unknown {
    this.requireIndex(index);
    const value = this.cluster.get(metaKey(index, key));
    if (value === undefined) throw new NotFoundError(`metadata ${JSON.stringify(key)} not found in index ${index}`);
    return value;
  }

  listMetadata(index: string): Record<string, unknown> {
    this.requireIndex(index);
    const prefix = `meta/${index}/`;
    return Object.fromEntries(
      [...this.cluster.getRange({ start: prefix, end: `${prefix}\uffff` })].map((e) => [String(e.key).slice(prefix.length), e.value]),
    );
  }

  async putMetadata(index: string, key: string, value: unknown): Promise<void> {
    assertMetadataKey(key);
    await this.ensureIndex(index);
    await this.cluster.put(metaKey(index, key), value);
  }

  // ---- the cluster state, as nodes on their own hosts exchange it ------------------------

  /**
   * Every index record (`.schemas` included) and all index metadata, with the version this copy
   * is at (0 before the first change): what a node holds of the cluster's metadata.
   */
  clusterState(): ClusterState {
    const indexes = this.allRecords();
    const metadata: Record<string, Record<string, unknown>> = {};
    for (const { key, value } of this.cluster.getRange({ start: 'meta/', end: 'meta/\uffff' })) {
      const [, index, ...rest] = String(key).split('/');
      (metadata[index!] ??= {})[rest.join('/')] = value;
    }
    return { version: this.clusterVersion(), indexes, metadata };
  }

  /**
   * Replace this copy of the cluster's metadata by a newer version, in one transaction, then
   * remove the shards this process holds of indexes the new state dropped or recreated. An
   * older or equal version changes nothing (a repeated commit).
   *
   * `missedOn`: the node installing it missed the changes that led to this version without
   * having prepared them, which a node keeping its data directory cannot do (every node prepares
   * every change). Its shards that the directory does not hold are then lost, not new: they are
   * recorded as such (and answered) rather than created empty, until their index is dropped or
   * recreated. Answers the shards this install recorded as lost.
   */
  async installClusterState(state: ClusterState, options: { missedOn?: string } = {}): Promise<LostShard[]> {
    let dropped: IndexRecord[] = [];
    const found: LostShard[] = [];
    await this.cluster.transaction(() => {
      if (state.version <= this.clusterVersion()) return;
      const kept = new Map(state.indexes.map((r) => [r.name, r.uid]));
      const current = this.allRecords();
      dropped = current.filter((r) => kept.get(r.name) !== r.uid);
      for (const r of current) this.cluster.remove(indexKey(r.name));
      for (const { key } of this.cluster.getRange({ start: 'meta/', end: 'meta/\uffff' })) this.cluster.remove(key);
      for (const r of state.indexes) this.cluster.put(indexKey(r.name), r);
      for (const [index, entries] of Object.entries(state.metadata)) {
        for (const [key, value] of Object.entries(entries)) this.cluster.put(metaKey(index, key), value);
      }
      this.cluster.put(VERSION_KEY, state.version);
      const lost = [...this.lost.values()].filter((l) => kept.get(l.index) === l.uid);
      const node = options.missedOn;
      for (const r of node ? state.indexes : []) {
        r.placement.forEach((holder, shard) => {
          const known = lost.some((l) => l.index === r.name && l.shard === shard);
          if (holder !== node || known || fs.existsSync(path.join(this.shardDir(node, r.name, shard), SHARD_FILE))) return;
          found.push({ index: r.name, uid: r.uid, shard, node, version: state.version });
        });
      }
      lost.push(...found);
      if (lost.length) this.cluster.put(LOST_KEY, lost);
      else this.cluster.remove(LOST_KEY);
      this.lost = lostByShard(lost);
    });
    for (const rec of dropped) {
      this.closeIndexHandles(rec.name);
      await this.removeShardFiles(rec);
    }
    return found;
  }

  /** The shards recorded as lost (see installClusterState). */
  lostShards(): LostShard[] {
    return [...this.lost.values()];
  }

  /** The record of this shard of this index (by uid) as lost, if it is. */
  lostShard(rec: IndexRecord, shard: number): LostShard | undefined {
    const lost = this.lost.get(`${rec.name}/${shard}`);
    return lost?.uid === rec.uid ? lost : undefined;
  }

  /** The version of this copy of the cluster's metadata (0 before its first change). */
  clusterVersion(): number {
    return (this.cluster.get(VERSION_KEY) as number | undefined) ?? 0;
  }

  /** A value kept beside the cluster metadata (a node's prepared change). */
  getClusterValue(key: string): unknown {
    return this.cluster.get(`local/${key}`);
  }

  async putClusterValue(key: string, value: unknown): Promise<void> {
    if (value === undefined) await this.cluster.remove(`local/${key}`);
    else await this.cluster.put(`local/${key}`, value);
  }

  async close(): Promise<void> {
    await Promise.all([...this.shards.values()].map(({ db }) => db.close()));
    this.shards.clear();
    await this.cluster.close();
  }
}

function lostByShard(lost: LostShard[]): Map<string, LostShard> {
  return new Map(lost.map((l) => [`${l.index}/${l.shard}`, l]));
}
