/**
 * The documents and indexes as the API reaches them: the seam between the HTTP routes (and
 * the server-side dump and restore, the Weaviate translation, the backup service) and where the
 * data lives. Every method is async because, with nodes on their own hosts, a document is on
 * the node that owns its shard and the metadata on every node (RemoteData); with plain node
 * names every process opens the same DATA_DIR and LocalData answers from the Store directly.
 */
import { NotFoundError } from '../errors.ts';
import type { DocId, Document } from '../store/schema.ts';
import {
  assertIndexName, type CreateIndexOptions, type IndexInfo, type IndexRecord, type PutOutcome, type Store, type WriteResult,
} from '../store/store.ts';
import { LocalCatalog, type ClusterCatalog } from './catalog.ts';

/**
 * How Weaviate's PUT and PATCH rewrite a stored document, as data rather than a function: the
 * change is applied where the document is stored, inside that shard's write transaction.
 */
export type DocumentChange = { replace: Record<string, unknown> } | { merge: Record<string, unknown> };

/** The new body of a document `change` rewrites. */
export function applyChange(current: Record<string, unknown>, change: DocumentChange): Record<string, unknown> {
  return 'replace' in change ? change.replace : { ...current, ...change.merge };
}

/** One node as `GET /v1/nodes` shows it (Weaviate's node statuses). */
export interface NodeReport {
  name: string;
  /**
   * HEALTHY when it answers; UNHEALTHY when its data directory does not, or it lost a shard;
   * UNAVAILABLE when it cannot be reached (its shards are then not listed).
   */
  status: 'HEALTHY' | 'UNHEALTHY' | 'UNAVAILABLE';
  /** `lost`: the node's data directory lost this shard (node/metadata-copy.ts). */
  shards: { index: string; shard: number; docs: number; lost?: true }[];
}

export interface ClusterData extends ClusterCatalog {
  /** Every node with its status and the documents of each shard it holds, in CLUSTER_NODES order. */
  nodes(): Promise<NodeReport[]>;
  /** True when the API can serve its data (with nodes on their own hosts: some node answers). */
  healthy(): Promise<boolean>;
  /** The record of an index; NotFoundError when there is none. */
  requireIndex(name: string): Promise<IndexRecord>;
  /** ConflictError when the name is taken. */
  createIndex(name: string, options?: CreateIndexOptions): Promise<IndexRecord>;
  deleteIndex(name: string): Promise<void>;
  /** `PUT /{index}/:schema`: create the index with this schema, or extend the existing one. */
  putSchema(name: string, body: unknown, options?: { shards?: number }): Promise<IndexRecord>;
  /** What `GET /{index}/:schema` answers. */
  describeSchema(name: string): Promise<Record<string, unknown>>;
  /** Document counts per shard. */
  info(name: string): Promise<IndexInfo>;
  /** Coerce and write a batch (the index is created when missing); each item answers its write or its error. */
  putDocuments(index: string, bodies: unknown[]): Promise<PutOutcome[]>;
  /** One document; its error is thrown. */
  putDocument(index: string, body: unknown): Promise<WriteResult>;
  /** A path id (always a string) as the index's id type. */
  parseId(index: string, raw: string): Promise<DocId>;
  getDocument(index: string, rawId: string | DocId): Promise<Document>;
  hasDocument(index: string, rawId: string | DocId): Promise<boolean>;
  /** Rewrite an existing document (NotFoundError when there is none); fields it adds extend the schema. */
  updateDocument(index: string, rawId: string | DocId, change: DocumentChange): Promise<WriteResult>;
  deleteDocument(index: string, rawId: string | DocId): Promise<void>;
  /** Documents in `_id` order across all shards, after the `after` id (exclusive): Weaviate's cursor listing. */
  listDocuments(index: string, options: { limit: number; after?: string }): Promise<Document[]>;
  /** Unlike the catalog's, NotFoundError for an index that does not exist (the API answers 404). */
  listMetadata(index: string): Promise<Record<string, unknown>>;
  getMetadata(index: string, key: string): Promise<unknown>;
  putMetadata(index: string, key: string, value: unknown): Promise<void>;
  /** Every document of one shard, as a consistent snapshot while writes go on. */
  shardDocuments(rec: IndexRecord, shard: number): AsyncIterable<Document>;
}

/** `requireIndex` over any catalog, with the Store's checks and messages. */
export async function requireIndex(catalog: ClusterCatalog, name: string): Promise<IndexRecord> {
  assertIndexName(name, true);
  const rec = await catalog.getIndex(name);
  if (!rec) throw new NotFoundError(`index ${JSON.stringify(name)} not found`);
  return rec;
}

/** The data of a single-host cluster: the Store itself, every call answered in this process. */
export class LocalData extends LocalCatalog implements ClusterData {
  // LocalCatalog keeps its Store private; this is the same Store.
  constructor(private readonly local: Store) {
    super(local);
  }

  healthy(): Promise<boolean> {
    return this.local.healthy();
  }

  async requireIndex(name: string): Promise<IndexRecord> {
    return this.local.requireIndex(name);
  }

  createIndex(name: string, options?: CreateIndexOptions): Promise<IndexRecord> {
    return this.local.createIndex(name, options);
  }

  deleteIndex(name: string): Promise<void> {
    return this.local.deleteIndex(name);
  }

  putSchema(name: string, body: unknown, options?: { shards?: number }): Promise<IndexRecord> {
    return this.local.putSchema(name, body, options);
  }

  async describeSchema(name: string): Promise<Record<string, unknown>> {
    return this.local.describeSchema(name);
  }

  async nodes(): Promise<NodeReport[]> {
    const infos = this.local.listIndexes().map((rec) => this.local.info(rec.name));
    const healthy = await this.local.healthy();
    return this.local.nodes.map((name) => ({
      name,
      status: healthy ? 'HEALTHY' : 'UNHEALTHY',
      shards: infos.flatMap((i) => i.placement.filter((p) => p.node === name).map((p) => ({ index: i.name, shard: p.shard, docs: p.docs }))),
    }));
  }

  async info(name: string): Promise<IndexInfo> {
    return this.local.info(name);
  }

  putDocuments(index: string, bodies: unknown[]): Promise<PutOutcome[]> {
    return this.local.putDocuments(index, bodies);
  }

  putDocument(index: string, body: unknown): Promise<WriteResult> {
    return this.local.putDocument(index, body);
  }

  async parseId(index: string, raw: string): Promise<DocId> {
    return this.local.parseId(index, raw);
  }

  async getDocument(index: string, rawId: string | DocId): Promise<Document> {
    return this.local.getDocument(index, rawId);
  }

  async hasDocument(index: string, rawId: string | DocId): Promise<boolean> {
    return this.local.hasDocument(index, rawId);
  }

  updateDocument(index: string, rawId: string | DocId, change: DocumentChange): Promise<WriteResult> {
    return this.local.updateDocument(index, rawId, (current) => applyChange(current, change));
  }

  deleteDocument(index: string, rawId: string | DocId): Promise<void> {
    return this.local.deleteDocument(index, rawId);
  }

  async listDocuments(index: string, options: { limit: number; after?: string }): Promise<Document[]> {
    return this.local.listDocuments(index, options);
  }

  async getMetadata(index: string, key: string): Promise<unknown> {
    return this.local.getMetadata(index, key);
  }

  putMetadata(index: string, key: string, value: unknown): Promise<void> {
    return this.local.putMetadata(index, key, value);
  }

  async *shardDocuments(rec: IndexRecord, shard: number): AsyncGenerator<Document> {
    yield* this.local.shardDocuments(rec, shard);
  }
}
