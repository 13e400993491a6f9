/**
 * The cluster's metadata as the workers and the backup service read and change it: index
 * records (schema, placement, uid), their effective schemas and metadata. With plain node names
 * it is the Store's `_cluster` environment in DATA_DIR (LocalCatalog); with nodes on their own
 * hosts every node keeps a versioned copy and a change is committed on all of them
 * (RemoteCatalog, shared/cluster/metadata.ts).
 */
import type { IndexSchema } from '../store/schema.ts';
import type { IndexRecord, Store } from '../store/store.ts';

export interface ClusterCatalog {
  getIndex(name: string): Promise<IndexRecord | undefined>;
  listIndexes(): Promise<IndexRecord[]>;
  /** The object schema of an index (a foreign schema resolved). */
  effectiveSchema(rec: IndexRecord): Promise<IndexSchema>;
  listMetadata(index: string): Promise<Record<string, unknown>>;
  /** Make fully restored indexes visible together, with their metadata; ConflictError if a name is taken. */
  publishIndexes(records: IndexRecord[], metadata: Record<string, Record<string, unknown>>): Promise<void>;
}

/** The catalog of a single-host cluster: the Store's own metadata. */
export class LocalCatalog implements ClusterCatalog {
  constructor(private readonly store: Store) {}

  async getIndex(name: string): Promise<IndexRecord | undefined> {
    return this.store.getIndex(name);
  }

  async listIndexes(): Promise<IndexRecord[]> {
    return this.store.listIndexes();
  }

  async effectiveSchema(rec: IndexRecord): Promise<IndexSchema> {
    return this.store.effectiveSchema(rec);
  }

  async listMetadata(index: string): Promise<Record<string, unknown>> {
    return this.store.listMetadata(index);
  }

  async publishIndexes(records: IndexRecord[], metadata: Record<string, Record<string, unknown>>): Promise<void> {
    await this.store.publishIndexes(records, metadata);
  }
}
