/**
 * Where the workers reach a node's shards, as whole files: a consistent snapshot of a shard
 * for a backup, the staging of a restored shard, and the two phases of a restore's commit.
 * With plain node names the shards are directories of this host's DATA_DIR (LocalShardHost,
 * over shared/store/shard-files.ts); with nodes on their own hosts every call goes to the
 * owning node over HTTP (RemoteShardHost), so a worker needs no data directory.
 */
import type { Readable } from 'node:stream';
import type { OperationRef } from '../jobs/operation.ts';
import type { ShardSnapshot } from '../store/shard-files.ts';
import type { IndexRecord } from '../store/store.ts';

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
  /** Remove one staged shard (a failed or cancelled job's). */
  unstage(ref: StagedShardRef): Promise<void>;
  /** Commit, phase 1: every listed shard is staged on `node` and opens. Throws naming what is missing. */
  prepare(node: string, restore: OperationRef, shards: { index: string; shard: number }[]): Promise<void>;
  /** Commit, phase 2: move the staged shards into place on `node` (repeatable: a moved shard stays). */
  publish(node: string, restore: OperationRef, shards: { index: string; shard: number }[]): Promise<void>;
  /** Drop the restore's staging on `node` (and shards it moved for an index that was never published). */
  abort(node: string, restore: OperationRef, shards: { index: string; shard: number }[]): Promise<void>;
}
