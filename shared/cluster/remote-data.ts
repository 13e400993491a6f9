/**
 * The API's data with nodes on their own hosts: metadata through RemoteCatalog (every node's
 * versioned copy, changed on all nodes at once), documents on the node owning their shard
 * (node/routes/documents.ts), MessagePack both ways.
 *
 * The API does what needs the whole index: it coerces and validates documents against the
 * effective schema, and a batch that adds fields changes the schema (a metadata change)
 * before any document is sent, so every node holds only documents its metadata describes. A
 * batch is then split by owner node, one request per node; a read or a rewrite goes to the
 * document's owner; a listing asks every node for the heads of its shards and merges them.
 */
import { Readable } from 'node:stream';
import { ConflictError, NotFoundError } from '../errors.ts';
import { packValue, parseMsgpackStream, unpackValue } from '../dump/msgpack-stream.ts';
import { shardFor } from '../store/hash.ts';
import { coerceId, mergeSchema, normalizeSchema, type DocId, type Document, type IndexSchema } from '../store/schema.ts';
import {
  assertIndexName, assertMetadataKey, batchOutcomes, coerceBatch, describeSchemaOf, isForeign, mergeListings, newIndexRecord, parseEndpoint,
  putSchemaWith, SCHEMAS_INDEX, SCHEMAS_INDEX_OPTIONS,
  type CreateIndexOptions, type IndexInfo, type IndexRecord, type PutOutcome, type Rewrite, type WriteResult,
} from '../store/store.ts';
import { requireIndex, type ClusterData, type DocumentChange, type NodeReport } from './data.ts';
import type { RemoteCatalog } from './metadata.ts';
import { nodeBodyLimit, type NodeClient } from './node-client.ts';

/** How long `healthy` waits for a node's readiness. */
const READY_TIMEOUT_MS = 1000;

export class RemoteData implements ClusterData {
  private readonly bodyLimit: number;

  constructor(
    private readonly client: NodeClient,
    private readonly catalog: RemoteCatalog,
    /** MAX_BODY_BYTES: the nodes read bodies of documents up to nodeBodyLimit of it. */
    maxBodyBytes: number,
  ) {
    this.bodyLimit = nodeBodyLimit(maxBodyBytes);
  }

  // ---- the catalog -----------------------------------------------------------------------

  getIndex(name: string): Promise<IndexRecord | undefined> {
    return this.catalog.getIndex(name);
  }

  listIndexes(): Promise<IndexRecord[]> {
    return this.catalog.listIndexes();
  }

  effectiveSchema(rec: IndexRecord): Promise<IndexSchema> {
    return this.catalog.effectiveSchema(rec);
  }

  publishIndexes(records: IndexRecord[], metadata: Record<string, Record<string, unknown>>): Promise<void> {
    return this.catalog.publishIndexes(records, metadata);
  }

  /**
   * True when some node answers ready, promptly (a readiness probe waits on this). One node
   * down must not take every API replica out of its load balancer: the API still serves the
   * metadata and the other nodes' shards, and names the node that is away (GET /v1/nodes).
   */
  async healthy(): Promise<boolean> {
    const ready = await Promise.all(
      this.client.nodes.map((node) => this.client.send(node, '/health/ready', { signal: AbortSignal.timeout(READY_TIMEOUT_MS) }).then(() => true, () => false)),
    );
    return ready.some(Boolean);
  }

  // ---- indexes and schemas ---------------------------------------------------------------

  requireIndex(name: string): Promise<IndexRecord> {
    return requireIndex(this.catalog, name);
  }

  async createIndex(name: string, options: CreateIndexOptions = {}): Promise<IndexRecord> {
    const rec = newIndexRecord(name, options, this.client.nodes);
    await this.catalog.change((s) => {
      if (s.indexes.some((r) => r.name === name)) throw new ConflictError(`index ${JSON.stringify(name)} already exists`);
      return { ...s, indexes: [...s.indexes, rec] };
    });
    return rec;
  }

  /** Xapiand creates an index on its first document (or metadata key); so do we. */
  private async ensureIndex(name: string, options: CreateIndexOptions = {}): Promise<IndexRecord> {
    assertIndexName(name, true);
    const existing = await this.getIndex(name);
    if (existing) return existing;
    try {
      return await this.createIndex(name, options);
    } catch (err) {
      if (err instanceof ConflictError) return this.requireIndex(name);
      throw err;
    }
  }

  // Each node removes the shards it holds of the dropped index when it installs the change.
  async deleteIndex(name: string): Promise<void> {
    await this.requireIndex(name);
    await this.catalog.change((s) => {
      if (!s.indexes.some((r) => r.name === name)) return undefined;
      const { [name]: _dropped, ...metadata } = s.metadata;
      return { indexes: s.indexes.filter((r) => r.name !== name), metadata };
    });
  }

  /** `PUT /{index}/:schema` (putSchemaWith): records changed through the catalog, `.schemas` documents on their node. */
  putSchema(name: string, body: unknown, options: { shards?: number } = {}): Promise<IndexRecord> {
    return putSchemaWith(this, name, body, options);
  }

  ensureSchemasIndex(): Promise<IndexRecord> {
    return this.ensureIndex(SCHEMAS_INDEX, SCHEMAS_INDEX_OPTIONS);
  }

  async describeSchema(name: string): Promise<Record<string, unknown>> {
    const rec = await this.requireIndex(name);
    return describeSchemaOf(rec, await this.effectiveSchema(rec));
  }

  /** Persist fields a batch or a rewrite added to the (possibly foreign) schema; concurrent additions merge. */
  private async extendSchema(rec: IndexRecord, added: IndexSchema): Promise<void> {
    if (isForeign(rec.schema)) {
      const id = parseEndpoint(rec.schema._endpoint);
      const holder = await this.requireIndex(SCHEMAS_INDEX);
      const doc = (await this.readDoc(holder, id)) as Record<string, unknown>;
      await this.writeSchemaDoc(holder, id, { ...doc, schema: mergeSchema(normalizeSchema(doc.schema), added) });
      return;
    }
    await this.updateRecord(rec.name, (current) => {
      if (current.uid !== rec.uid || isForeign(current.schema)) return current;
      return { ...current, schema: mergeSchema(current.schema, added) };
    });
  }

  /** Replace an index's record by what `change` answers, on every node (NotFoundError when there is none). */
  async updateRecord(name: string, change: (rec: IndexRecord) => IndexRecord): Promise<IndexRecord> {
    let updated: IndexRecord | undefined;
    await this.catalog.change((s) => {
      const rec = s.indexes.find((r) => r.name === name);
      if (!rec) throw new NotFoundError(`index ${JSON.stringify(name)} not found`);
      updated = change(rec);
      return updated === rec ? undefined : { ...s, indexes: s.indexes.map((r) => (r === rec ? updated! : r)) };
    });
    return updated!;
  }

  async writeSchemaDoc(holder: IndexRecord, rawId: string, doc: Record<string, unknown>): Promise<void> {
    const id = coerceId(await this.effectiveSchema(holder), rawId);
    await this.write(holder, ownerOf(holder, id), [{ ...doc, _id: id }]);
  }

  /** Each node's own account of its shards; a node that does not answer promptly is UNAVAILABLE. */
  async nodes(): Promise<NodeReport[]> {
    return Promise.all(
      this.client.nodes.map(async (name): Promise<NodeReport> => {
        try {
          const status = await this.client.json<Omit<NodeReport, 'name'>>(name, '/internal/status', { signal: AbortSignal.timeout(READY_TIMEOUT_MS) });
          return { name, ...status };
        } catch {
          return { name, status: 'UNAVAILABLE', shards: [] };
        }
      }),
    );
  }

  async info(name: string): Promise<IndexInfo> {
    const rec = await this.requireIndex(name);
    const nodes = [...new Set(rec.placement)];
    const answers = await Promise.all(
      nodes.map((node) => this.client.json<{ counts: Record<string, number> }>(node, `${indexPath(rec)}/counts?uid=${encodeURIComponent(rec.uid)}`)),
    );
    const counts: Record<string, number> = Object.assign({}, ...answers.map((a) => a.counts));
    const placement = rec.placement.map((node, shard) => ({ shard, node, docs: counts[shard] ?? 0 }));
    return { name: rec.name, shards: rec.shards, docs: placement.reduce((n, p) => n + p.docs, 0), placement, nodes };
  }

  // ---- documents -------------------------------------------------------------------------

  async putDocuments(index: string, bodies: unknown[]): Promise<PutOutcome[]> {
    const rec = await this.ensureIndex(index);
    const effective = await this.effectiveSchema(rec);
    const { prepared, schema } = coerceBatch(effective, bodies);
    if (schema !== effective) await this.extendSchema(rec, schema);
    const docs = prepared.flatMap((p) => (p.ok ? [p.doc] : []));
    // One request per owner node, its documents in batch order; `created` answered in the same order.
    const created: boolean[] = new Array(docs.length);
    await Promise.all(
      [...positionsBy(docs.map((doc) => ownerOf(rec, doc._id)))].map(async ([node, ks]) => {
        const answered = await this.write(rec, node, ks.map((k) => docs[k]!));
        ks.forEach((k, i) => (created[k] = answered[i]!));
      }),
    );
    return batchOutcomes(prepared, created);
  }

  async putDocument(index: string, body: unknown): Promise<WriteResult> {
    const [item] = await this.putDocuments(index, [body]);
    if (!item!.ok) throw item!.error;
    return item!.result;
  }

  async parseId(index: string, raw: string): Promise<DocId> {
    const rec = await this.requireIndex(index);
    return coerceId(await this.effectiveSchema(rec), raw);
  }

  async getDocument(index: string, rawId: string | DocId): Promise<Document> {
    const { rec, id } = await this.locate(index, rawId);
    const doc = await this.readDoc(rec, id);
    if (!doc) throw new NotFoundError(`document ${JSON.stringify(id)} not found in index ${index}`);
    return doc;
  }

  async hasDocument(index: string, rawId: string | DocId): Promise<boolean> {
    const { rec, id } = await this.locate(index, rawId);
    return (await this.readDoc(rec, id)) !== undefined;
  }

  async updateDocument(index: string, rawId: string | DocId, change: DocumentChange): Promise<WriteResult> {
    const { rec, id } = await this.locate(index, rawId);
    for (;;) {
      const schema = await this.effectiveSchema(await this.requireIndex(index));
      const { outcome } = await this.call<{ outcome: Rewrite }>(ownerOf(rec, id), `${indexPath(rec)}/document/rewrite`, { uid: rec.uid, id, schema, change });
      if (!outcome) throw new NotFoundError(`document ${JSON.stringify(id)} not found in index ${index}`);
      if ('grown' in outcome) {
        await this.extendSchema(rec, outcome.grown);
        continue;
      }
      return { _id: id, created: false, doc: outcome.doc };
    }
  }

  async deleteDocument(index: string, rawId: string | DocId): Promise<void> {
    const { rec, id } = await this.locate(index, rawId);
    const { deleted } = await this.call<{ deleted: boolean }>(ownerOf(rec, id), `${indexPath(rec)}/document/delete`, { uid: rec.uid, id });
    if (!deleted) throw new NotFoundError(`document ${JSON.stringify(id)} not found in index ${index}`);
  }

  async listDocuments(index: string, options: { limit: number; after?: string }): Promise<Document[]> {
    const rec = await this.requireIndex(index);
    const after = options.after === undefined ? undefined : coerceId(await this.effectiveSchema(rec), options.after);
    const answers = await Promise.all(
      [...positionsBy(rec.placement)].map(([node, shards]) =>
        this.call<{ docs: Document[] }>(node, `${indexPath(rec)}/listing`, { uid: rec.uid, shards, limit: options.limit, after }),
      ),
    );
    return mergeListings(answers.flatMap((a) => a.docs), options.limit);
  }

  async *shardDocuments(rec: IndexRecord, shard: number): AsyncGenerator<Document> {
    const res = await this.client.request(rec.placement[shard]!, `${indexPath(rec)}/shards/${shard}/documents?uid=${encodeURIComponent(rec.uid)}`);
    for await (const doc of parseMsgpackStream(res.body)) yield doc as Document;
  }

  // ---- metadata --------------------------------------------------------------------------

  async listMetadata(index: string): Promise<Record<string, unknown>> {
    await this.requireIndex(index);
    return this.catalog.listMetadata(index);
  }

  async getMetadata(index: string, key: string): Promise<unknown> {
    const value = (await this.listMetadata(index))[key];
    if (value === undefined) throw new NotFoundError(`metadata ${JSON.stringify(key)} not found in index ${index}`);
    return value;
  }

  async putMetadata(index: string, key: string, value: unknown): Promise<void> {
    assertMetadataKey(key);
    const rec = await this.ensureIndex(index);
    await this.catalog.change((s) => {
      if (!s.indexes.some((r) => r.uid === rec.uid)) throw new NotFoundError(`index ${JSON.stringify(index)} not found`);
      return { ...s, metadata: { ...s.metadata, [index]: { ...s.metadata[index], [key]: value } } };
    });
  }

  // ---- node requests ---------------------------------------------------------------------

  /** The index and a document id coerced to its id type. */
  private async locate(index: string, rawId: string | DocId): Promise<{ rec: IndexRecord; id: DocId }> {
    const rec = await this.requireIndex(index);
    return { rec, id: typeof rawId === 'string' ? coerceId(await this.effectiveSchema(rec), rawId) : rawId };
  }

  async readDoc(rec: IndexRecord, id: DocId): Promise<Document | undefined> {
    return (await this.call<{ doc?: Document }>(ownerOf(rec, id), `${indexPath(rec)}/document`, { uid: rec.uid, id })).doc;
  }

  /**
   * Coerced documents, all owned by `node`, written there; answers which were new. A batch
   * larger than the node reads in one body goes in halves, in order.
   */
  private async write(rec: IndexRecord, node: string, docs: Document[]): Promise<boolean[]> {
    const body = packValue({ uid: rec.uid, docs });
    if (body.length > this.bodyLimit && docs.length > 1) {
      const half = Math.ceil(docs.length / 2);
      const first = await this.write(rec, node, docs.slice(0, half));
      return [...first, ...(await this.write(rec, node, docs.slice(half)))];
    }
    return (await this.send<{ created: boolean[] }>(node, `${indexPath(rec)}/documents`, body)).created;
  }

  private call<T>(node: string, path: string, value: unknown): Promise<T> {
    return this.send<T>(node, path, packValue(value));
  }

  private async send<T>(node: string, path: string, body: Buffer): Promise<T> {
    const res = await this.client.request(node, path, { method: 'POST', body: Readable.from([body]) });
    return unpackValue(await res.bytes()) as T;
  }
}

/** The positions of `keys` grouped by key, in order: which documents (or shards) go to which node. */
function positionsBy(keys: string[]): Map<string, number[]> {
  const groups = new Map<string, number[]>();
  keys.forEach((key, i) => {
    const group = groups.get(key);
    if (group) group.push(i);
    else groups.set(key, [i]);
  });
  return groups;
}

const indexPath = (rec: IndexRecord) => `/internal/indexes/${encodeURIComponent(rec.name)}`;
const ownerOf = (rec: IndexRecord, id: DocId) => rec.placement[shardFor(id, rec.shards)]!;
