/**
 * Where the workers reach a node's shards, as whole files: a consistent snapshot of a shard
 * for a backup, the staging of a restored shard, and the two phases of a restore's commit.
 * With plain node names the shards are directories of this host's DATA_DIR (LocalShardHost,
 * over shared/store/shard-files.ts); with nodes on their own hosts every call goes to the
 * owning node over HTTP (RemoteShardHost), so a worker needs no data directory.
 */
import { Readable } from 'node:stream';
import { UnavailableError, ValidationError } from '../errors.ts';
import { createDumpDecoder } from '../formats/dump-codec.ts';
import type { OperationRef } from '../jobs/operation.ts';
import {
  checkStagedShard,
  clearStagedShard,
  fillShardFile,
  publishStagedShard,
  removeShardDir,
  removeStaging,
  stagedShardDir,
  stageDocuments,
  stageShardFile,
  takeSnapshot,
  type ShardSnapshot,
} from '../store/shard-files.ts';
import type { IndexRecord, Store } from '../store/store.ts';
import type { NodeAnswer, NodeClient } from './node-client.ts';

/** One shard of a restore on its target node. */
export interface StagedShardRef {
  restore: OperationRef;
  node: string;
  index: string;
  shard: number;
}

/**
 * What a staged shard's bytes are: `file`, the shard's environment file (format 2); `dump`,
 * a decompressed docs dump stream (format 1) that the node decodes into a fresh environment.
 */
export type StagedKind = 'file' | 'dump';

export interface ShardHost {
  /** A consistent physical copy of shard `shard` of `rec`, taken now on the node that holds it. */
  snapshot(rec: IndexRecord, shard: number, signal?: AbortSignal): Promise<ShardSnapshot>;
  /** Write one restored shard into its node's staging (a retry starts over); answers its documents. */
  stage(ref: StagedShardRef, kind: StagedKind, source: Readable, signal?: AbortSignal): Promise<number>;
  /**
   * Only where the node's staging is on this host: have one restored shard's environment file
   * written in place (`fill` writes the file at the path it is given, from any thread of this
   * process), then opened; answers its documents. A retry starts over.
   */
  stageFile?(ref: StagedShardRef, fill: (file: string) => Promise<void>): Promise<number>;
  /** Remove one staged shard (a failed or cancelled job's). */
  unstage(ref: StagedShardRef): Promise<void>;
  /** Commit, phase 1: every listed shard is staged on `node` and opens. Throws naming what is missing. */
  prepare(node: string, restore: OperationRef, shards: RestoreShard[]): Promise<void>;
  /** Commit, phase 2: move the staged shards into place on `node` (repeatable: a moved shard stays). */
  publish(node: string, restore: OperationRef, shards: RestoreShard[]): Promise<void>;
  /** Drop the restore's staging on `node` (and shards it moved for an index that was never published). */
  abort(node: string, restore: OperationRef, shards: RestoreShard[]): Promise<void>;
}

/** One shard of a restore on a node, as the commit's steps list them. */
export interface RestoreShard {
  index: string;
  shard: number;
}

/** The response headers of a node's snapshot: the copy's bytes and its documents. */
export const SNAPSHOT_SIZE_HEADER = 'x-shard-size';
export const SNAPSHOT_DOCS_HEADER = 'x-shard-docs';

/** The shards of this host's DATA_DIR (a single-host cluster, and each node's own side of the routes). */
export class LocalShardHost implements ShardHost {
  constructor(private readonly store: Store) {}

  snapshot(rec: IndexRecord, shard: number): Promise<ShardSnapshot> {
    return takeSnapshot(this.store, rec, shard);
  }

  stage(ref: StagedShardRef, kind: StagedKind, source: Readable, signal?: AbortSignal): Promise<number> {
    return this.staged(
      ref,
      (dir) =>
        kind === 'file'
          ? stageShardFile(dir, source, signal)
          : stageDocuments(dir, source, [createDumpDecoder({ expectKind: 'docs' })], signal),
      () => source.destroy(),
    );
  }

  stageFile(ref: StagedShardRef, fill: (file: string) => Promise<void>): Promise<number> {
    return this.staged(ref, (dir) => fillShardFile(dir, fill));
  }

  /** Stage one shard into a cleared directory; half a shard is of no use to anyone, so a failure removes it. */
  private async staged(ref: StagedShardRef, write: (dir: string) => Promise<number>, onFailure?: () => void): Promise<number> {
    const dir = this.stagedDir(ref.restore, ref.node, ref);
    await clearStagedShard(dir);
    try {
      return await write(dir);
    } catch (err) {
      onFailure?.();
      await removeShardDir(dir);
      throw err;
    }
  }

  async unstage(ref: StagedShardRef): Promise<void> {
    await removeShardDir(this.stagedDir(ref.restore, ref.node, ref));
  }

  async prepare(node: string, restore: OperationRef, shards: RestoreShard[]): Promise<void> {
    for (const s of shards) await checkStagedShard(this.stagedDir(restore, node, s), this.store.shardDir(node, s.index, s.shard), describe(node, s));
  }

  async publish(node: string, restore: OperationRef, shards: RestoreShard[]): Promise<void> {
    for (const s of shards) await publishStagedShard(this.stagedDir(restore, node, s), this.store.shardDir(node, s.index, s.shard), describe(node, s));
  }

  async abort(node: string, restore: OperationRef, shards: RestoreShard[]): Promise<void> {
    await removeStaging(this.store.dataDir, restore, node);
    // A shard moved into place belongs to nobody until its index is published; an index
    // of that name in the metadata is someone's, and keeps its files.
    for (const s of shards) if (!this.store.getIndex(s.index)) await removeShardDir(this.store.shardDir(node, s.index, s.shard));
  }

  private stagedDir(restore: OperationRef, node: string, s: RestoreShard): string {
    return stagedShardDir(this.store.dataDir, restore, node, s.index, s.shard);
  }
}

/**
 * The shards of nodes on their own hosts (node/routes/shards.ts): a snapshot is streamed from
 * the node that holds the shard, a restored shard is streamed into its target node's staging,
 * and the commit's steps are asked of each node. The worker keeps the CPU work (hashing,
 * compression, checking chunks) and needs no data directory.
 */
export class RemoteShardHost implements ShardHost {
  constructor(private readonly client: NodeClient) {}

  async snapshot(rec: IndexRecord, shard: number, signal?: AbortSignal): Promise<ShardSnapshot> {
    const node = rec.placement[shard];
    if (!node) throw new ValidationError(`index ${rec.name} has no shard ${shard}`);
    const path = `/internal/indexes/${encodeURIComponent(rec.name)}/shards/${shard}/snapshot?uid=${encodeURIComponent(rec.uid)}`;
    // The node answers as soon as it holds the snapshot (after any write transaction running then).
    const res = await this.client.request(node, path, { signal });
    const size = countHeader(res, SNAPSHOT_SIZE_HEADER, node);
    const docs = countHeader(res, SNAPSHOT_DOCS_HEADER, node);
    // The node lets the snapshot go when this response ends or is destroyed.
    let body: Readable | null = res.body;
    return {
      size,
      docs,
      stream: () => {
        if (!body) throw new Error(`the snapshot of ${rec.name}/${shard} was already read`);
        const stream = body;
        body = null;
        return stream;
      },
      release: async () => {
        body?.destroy();
        body = null;
      },
    };
  }

  async stage(ref: StagedShardRef, kind: StagedKind, source: Readable, signal?: AbortSignal): Promise<number> {
    // A source that fails (damage found in the worker) ends the upload; its error, not the
    // broken request's, is why the staging failed.
    let sourceError: unknown;
    source.once('error', (err) => (sourceError = err));
    try {
      const { docs } = await this.client.json<{ docs: unknown }>(ref.node, `${stagePath(ref)}&kind=${kind}`, { method: 'PUT', body: source, signal });
      if (typeof docs !== 'number') throw new UnavailableError(`node ${ref.node} answered the staging of ${describe(ref.node, ref)} without a document count`);
      return docs;
    } catch (err) {
      source.destroy();
      throw sourceError ?? err;
    }
  }

  async unstage(ref: StagedShardRef): Promise<void> {
    await this.client.send(ref.node, stagePath(ref), { method: 'DELETE' });
  }

  prepare(node: string, restore: OperationRef, shards: RestoreShard[]): Promise<void> {
    return this.step('prepare', node, restore, shards);
  }

  publish(node: string, restore: OperationRef, shards: RestoreShard[]): Promise<void> {
    return this.step('publish', node, restore, shards);
  }

  abort(node: string, restore: OperationRef, shards: RestoreShard[]): Promise<void> {
    return this.step('abort', node, restore, shards);
  }

  private async step(step: 'prepare' | 'publish' | 'abort', node: string, restore: OperationRef, shards: RestoreShard[]): Promise<void> {
    await this.client.send(node, `${restorePath(restore)}/${step}`, { method: 'POST', json: { node, shards } });
  }
}

/** `/internal/restores/<backend>/<id>`: a restore's staging on a node. */
function restorePath(restore: OperationRef): string {
  return `/internal/restores/${restore.backend}/${encodeURIComponent(restore.id)}`;
}

/** One staged shard, naming the node it is meant for (the node refuses another's shard). */
function stagePath(ref: StagedShardRef): string {
  return `${restorePath(ref.restore)}/shards/${encodeURIComponent(ref.index)}/${ref.shard}?node=${encodeURIComponent(ref.node)}`;
}

function describe(node: string, s: RestoreShard): string {
  return `${s.index}/${s.shard} for node ${node}`;
}

function countHeader(res: NodeAnswer, name: string, node: string): number {
  const value = Number(res.header(name));
  if (!Number.isSafeInteger(value) || value < 0) {
    res.body.destroy();
    throw new UnavailableError(`node ${node} answered a snapshot without a valid ${name} header`);
  }
  return value;
}
