/**
 * Where the workers reach a node's shards, as whole files: a consistent snapshot of a shard
 * for a backup, the staging of a restored shard, and the two phases of a restore's commit.
 * With plain node names the shards are directories of this host's DATA_DIR (LocalShardHost,
 * over shared/store/shard-files.ts); with nodes on their own hosts every call goes to the
 * owning node over HTTP (RemoteShardHost), so a worker needs no data directory.
 */
import { Readable } from 'node:stream';
import { z } from 'zod';
import { NotFoundError, UnavailableError, ValidationError } from '../errors.ts';
import { createDumpDecoder } from '../formats/dump-codec.ts';
import type { OperationRef } from '../jobs/operation.ts';
import {
  checkStagedShard,
  fillShardFile,
  publishStagedShard,
  removeShardDir,
  removeStaging,
  stagedShardDir,
  stageDocuments,
  stageShard,
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
  /**
   * A consistent physical copy of shard `shard` of `rec`, taken now on the node that holds it.
   * With `base`, where snapshots are streamed from another host: if the shard's file is still of
   * the base's lineage, the copy says which byte ranges are unchanged since the base
   * (`unchanged`) and its stream leaves out their chunks but a sample.
   */
  snapshot(rec: IndexRecord, shard: number, signal?: AbortSignal, base?: SnapshotBase): Promise<ShardSnapshot>;
  /**
   * Only where snapshots are streamed from a node on another host: the lineage of the shard's
   * file (none from a node that does not tell it), to find its base before asking for the copy.
   */
  lineage?(rec: IndexRecord, shard: number, signal?: AbortSignal): Promise<string | undefined>;
  /**
   * Write one restored shard into its node's staging; answers its documents. Each call stages
   * on its own and replaces what an earlier one staged only once it is whole; one that fails
   * leaves nothing of its own and never touches another's (stageShard, shard-files.ts): a
   * retry, or the run that took over a job whose lock was lost, may overlap an earlier run.
   */
  stage(ref: StagedShardRef, kind: StagedKind, source: Readable, signal?: AbortSignal): Promise<number>;
  /**
   * Only where the node's staging is on this host: have one restored shard's environment file
   * written in place (`fill` writes the file at the path it is given, from any thread of this
   * process), then opened; answers its documents. Staged as `stage` stages.
   */
  stageFile?(ref: StagedShardRef, fill: (file: string) => Promise<void>): Promise<number>;
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

/**
 * The response headers of a node's snapshot: the copy's bytes and its documents, its origin
 * (lineage and generation), and when it was asked against a base, the bytes of the account of
 * unchanged ranges that starts its body.
 */
export const SNAPSHOT_SIZE_HEADER = 'x-shard-size';
export const SNAPSHOT_DOCS_HEADER = 'x-shard-docs';
export const SNAPSHOT_LINEAGE_HEADER = 'x-shard-lineage';
export const SNAPSHOT_GENERATION_HEADER = 'x-shard-generation';
export const SNAPSHOT_UNCHANGED_HEADER = 'x-shard-unchanged';

/** Which shard file a snapshot is of (`lineage`) and which of its transactions (`generation`), as a node tells them. */
const shardOriginSchema = z.object({
  lineage: z.string().regex(/^[0-9a-f]{32}$/, 'a lineage is 32 lowercase hex digits'),
  generation: z.string().regex(/^\d{1,20}$/, 'a generation is a decimal transaction id'),
});

/**
 * A snapshot asked for against a base: the latest snapshot of the shard's file (`lineage`) in
 * a repository, taken at `generation`; the pages unchanged since then are left out of the
 * stream in `chunk`-byte chunks, all but every `every`-th (allButEvery, shared/formats/ranges.ts).
 */
export const snapshotBaseSchema = shardOriginSchema.extend({
  chunk: z.coerce.number().int().min(512).max(65536).refine((n) => (n & (n - 1)) === 0, 'a chunk size is a power of two'),
  every: z.coerce.number().int().min(1).max(1 << 20),
});
export type SnapshotBase = z.infer<typeof snapshotBaseSchema>;

/** Byte ranges ((offset, length) pairs) as they cross the wire: unsigned 64-bit little-endian numbers. */
export function encodeRanges(ranges: readonly number[]): Buffer {
  const out = Buffer.allocUnsafe(ranges.length * 8);
  ranges.forEach((n, i) => out.writeBigUInt64LE(BigInt(n), i * 8));
  return out;
}

function decodeRanges(buf: Buffer, node: string): number[] {
  if (buf.length % 16 !== 0) throw new UnavailableError(`node ${node} answered an account of unchanged ranges of ${buf.length} bytes, not whole pairs`);
  const out: number[] = [];
  for (let at = 0; at < buf.length; at += 8) out.push(Number(buf.readBigUInt64LE(at)));
  return out;
}

/** The shards of this host's DATA_DIR (a single-host cluster, and each node's own side of the routes). */
export class LocalShardHost implements ShardHost {
  constructor(private readonly store: Store) {}

  snapshot(rec: IndexRecord, shard: number): Promise<ShardSnapshot> {
    return takeSnapshot(this.store, rec, shard);
  }

  stage(ref: StagedShardRef, kind: StagedKind, source: Readable, signal?: AbortSignal): Promise<number> {
    return stageShard(this.stagedDir(ref.restore, ref.node, ref), (dir) =>
      (kind === 'file' ? stageShardFile(dir, source, signal) : stageDocuments(dir, source, [createDumpDecoder({ expectKind: 'docs' })], signal)).catch((err: unknown) => {
        source.destroy();
        throw err;
      }),
    );
  }

  stageFile(ref: StagedShardRef, fill: (file: string) => Promise<void>): Promise<number> {
    return stageShard(this.stagedDir(ref.restore, ref.node, ref), (dir) => fillShardFile(dir, fill));
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

  async lineage(rec: IndexRecord, shard: number, signal?: AbortSignal): Promise<string | undefined> {
    try {
      const { lineage } = await this.client.json<{ lineage?: unknown }>(this.nodeOf(rec, shard), `${shardPath(rec, shard)}/lineage?uid=${encodeURIComponent(rec.uid)}`, { signal });
      const told = shardOriginSchema.shape.lineage.safeParse(lineage);
      return told.success ? told.data : undefined;
    } catch (err) {
      // A node of an earlier version has no such path: its snapshots are read whole.
      if (err instanceof NotFoundError && /: no route for /.test(err.message)) return undefined;
      throw err;
    }
  }

  async snapshot(rec: IndexRecord, shard: number, signal?: AbortSignal, base?: SnapshotBase): Promise<ShardSnapshot> {
    const node = this.nodeOf(rec, shard);
    const query = new URLSearchParams({ uid: rec.uid, ...(base ? { lineage: base.lineage, since: base.generation, chunk: String(base.chunk), every: String(base.every) } : {}) });
    // The node answers as soon as it holds the snapshot (after any write transaction running then).
    const res = await this.client.request(node, `${shardPath(rec, shard)}/snapshot?${query}`, { signal });
    const size = countHeader(res, SNAPSHOT_SIZE_HEADER, node);
    const docs = countHeader(res, SNAPSHOT_DOCS_HEADER, node);
    const told = shardOriginSchema.safeParse({ lineage: res.header(SNAPSHOT_LINEAGE_HEADER), generation: res.header(SNAPSHOT_GENERATION_HEADER) });
    const origin = told.success ? told.data : undefined;
    // The node lets the snapshot go when this response ends or is destroyed.
    let body: Readable | null = res.body;
    let unchanged: number[] | undefined;
    if (res.header(SNAPSHOT_UNCHANGED_HEADER) !== undefined) {
      const account = await readAccount(res.body, countHeader(res, SNAPSHOT_UNCHANGED_HEADER, node), node).catch((err: unknown) => {
        res.body.destroy();
        throw err;
      });
      unchanged = decodeRanges(account.head, node);
      body = account.rest;
    }
    return {
      size,
      docs,
      ...(origin ? { origin } : {}),
      ...(unchanged ? { unchanged } : {}),
      stream: () => {
        if (!body) throw new Error(`the snapshot of ${rec.name}/${shard} was already read`);
        const stream = body;
        body = null;
        return stream;
      },
      release: async () => {
        body?.destroy();
        body = null;
        res.body.destroy();
      },
    };
  }

  private nodeOf(rec: IndexRecord, shard: number): string {
    const node = rec.placement[shard];
    if (!node) throw new ValidationError(`index ${rec.name} has no shard ${shard}`);
    return node;
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

/** `/internal/indexes/<index>/shards/<shard>`: one shard on the node that holds it. */
function shardPath(rec: IndexRecord, shard: number): string {
  return `/internal/indexes/${encodeURIComponent(rec.name)}/shards/${shard}`;
}

/**
 * The first `bytes` bytes of a body (the account of unchanged ranges before a snapshot's
 * bytes), and the rest of it as a stream.
 */
async function readAccount(body: Readable, bytes: number, node: string): Promise<{ head: Buffer; rest: Readable }> {
  const parts = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const got: Buffer[] = [];
  let length = 0;
  while (length < bytes) {
    const next = await parts.next();
    if (next.done) throw new UnavailableError(`node ${node} ended a snapshot inside its account of unchanged ranges`);
    got.push(next.value);
    length += next.value.length;
  }
  const all = Buffer.concat(got, length);
  const after = all.subarray(bytes);
  const rest = Readable.from(
    (async function* () {
      if (after.length) yield after;
      for (let next = await parts.next(); !next.done; next = await parts.next()) yield next.value;
    })(),
    { objectMode: false },
  );
  return { head: all.subarray(0, bytes), rest };
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
