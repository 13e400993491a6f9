/**
 * The cluster's metadata when nodes run on their own hosts: every node keeps a versioned copy
 * (node/routes/metadata.ts), and RemoteCatalog — in the API and the workers alike — reads it
 * and changes it.
 *
 * - Read: the cached state is checked against the first node that answers (`?known=<version>`
 *   answers 204 while nothing changed), so a change made through one API replica is seen by
 *   every other at its next request. Concurrent reads share one check. A process that has
 *   read nothing yet passes over nodes with an empty copy while another node has metadata.
 * - Change (two phases, all nodes): read every node's copy; the highest version is the
 *   decided one (a version is committed only after every node prepared it), and nodes behind
 *   it get it installed first. Then prepare version+1 on every node, then commit it on every
 *   node. A node that refuses (another change won the race) or cannot be reached aborts the
 *   change everywhere; a clash is retried with backoff for a while, an unreachable node fails
 *   the change naming the node. No shared filesystem and no Redis: the metadata survives the
 *   restart of any process and a Redis flush.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConflictError, NotFoundError, UnavailableError } from '../errors.ts';
import type { IndexSchema } from '../store/schema.ts';
import { SCHEMAS_INDEX, type ClusterState, type IndexRecord } from '../store/store.ts';
import type { ClusterCatalog } from './catalog.ts';
import type { NodeClient } from './node-client.ts';

/** The state a change answers; `undefined` leaves the metadata as it is. */
export type MetadataChange = (state: Omit<ClusterState, 'version'>) => Omit<ClusterState, 'version'> | undefined;

/** How long a change keeps retrying a clash with another coordinator's change. */
const CLASH_RETRY_MS = 15_000;

export class RemoteCatalog implements ClusterCatalog {
  private cached: ClusterState | undefined;
  private checking: Promise<ClusterState> | undefined;

  constructor(private readonly client: NodeClient) {}

  /** The current state, checked against the nodes (one request when unchanged). */
  async state(): Promise<ClusterState> {
    this.checking ??= this.check().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async check(): Promise<ClusterState> {
    let lastError: unknown;
    let empty: ClusterState | undefined;
    for (const node of this.client.nodes) {
      try {
        const known = this.cached ? `?known=${this.cached.version}` : '';
        const res = await this.client.request(node, `/internal/metadata${known}`);
        if (res.status === 204 && this.cached) {
          res.body.resume();
          return this.cached;
        }
        const state = await res.json<ClusterState>();
        // An empty copy is a new cluster's, or that of a node whose data directory is new and
        // that has not yet taken its peers' (node/metadata-copy.ts): ask the others first.
        if (state.version === 0 && !this.cached) {
          empty = state;
          continue;
        }
        // A node that missed a commit may be behind what this process already saw.
        if (!this.cached || state.version >= this.cached.version) this.cached = state;
        return this.cached;
      } catch (err) {
        lastError = err;
      }
    }
    if (empty) return empty;
    throw new UnavailableError(`no node answers for the cluster's metadata: ${(lastError as Error)?.message ?? 'no nodes'}`);
  }

  async getIndex(name: string): Promise<IndexRecord | undefined> {
    return (await this.state()).indexes.find((r) => r.name === name);
  }

  async listIndexes(): Promise<IndexRecord[]> {
    return (await this.state()).indexes.filter((r) => r.name !== SCHEMAS_INDEX);
  }

  async effectiveSchema(rec: IndexRecord): Promise<IndexSchema> {
    if (rec.schema._type !== 'foreign/object') return rec.schema as IndexSchema;
    const holder = await this.getIndex(SCHEMAS_INDEX);
    if (!holder) throw new NotFoundError(`foreign schema ${String(rec.schema._endpoint)} not found`);
    return this.client.json<IndexSchema>(holder.placement[0]!, `/internal/indexes/${encodeURIComponent(rec.name)}/effective-schema`);
  }

  async listMetadata(index: string): Promise<Record<string, unknown>> {
    return (await this.state()).metadata[index] ?? {};
  }

  /**
   * Publish restored indexes together. Repeatable: when every record is already there with
   * the same uid (a coordinator retried after publishing), it is done; a name held by another
   * index is a ConflictError.
   */
  async publishIndexes(records: IndexRecord[], metadata: Record<string, Record<string, unknown>>): Promise<void> {
    await this.change((s) => {
      const byName = new Map(s.indexes.map((r) => [r.name, r]));
      if (records.every((r) => byName.get(r.name)?.uid === r.uid)) return undefined;
      const clash = records.find((r) => byName.has(r.name));
      if (clash) throw new ConflictError(`index ${JSON.stringify(clash.name)} already exists`);
      const meta = { ...s.metadata };
      for (const r of records) if (metadata[r.name]) meta[r.name] = metadata[r.name]!;
      return { indexes: [...s.indexes, ...records], metadata: meta };
    });
  }

  /**
   * Change the metadata on every node at once; answers the state after it. `change` may run
   * more than once (after a clash) and may throw to refuse the change.
   */
  async change(change: MetadataChange): Promise<ClusterState> {
    const deadline = Date.now() + CLASH_RETRY_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.changeOnce(change);
      } catch (err) {
        if (!(err instanceof ClashError) || Date.now() > deadline) throw err instanceof ClashError ? new ConflictError(err.message) : err;
        await sleep(Math.min(1000, 20 * 2 ** attempt) * (0.5 + Math.random()));
      }
    }
  }

  private async changeOnce(change: MetadataChange): Promise<ClusterState> {
    const nodes = this.client.nodes;
    const copies = await Promise.all(nodes.map((node) => this.client.json<ClusterState>(node, '/internal/metadata')));
    const decided = copies.reduce((a, b) => (b.version > a.version ? b : a));
    const txn = randomUUID();
    // Finish a change a coordinator committed on some nodes only.
    await Promise.all(
      nodes.map((node, i) =>
        copies[i]!.version < decided.version ? this.client.send(node, '/internal/metadata/commit', { method: 'POST', json: { txn, state: decided } }) : undefined,
      ),
    );
    const changed = change({ indexes: decided.indexes, metadata: decided.metadata });
    if (!changed) {
      this.cached = decided;
      return decided;
    }
    const next: ClusterState = { version: decided.version + 1, ...changed };
    const prepared: string[] = [];
    try {
      for (const node of nodes) {
        await this.client.send(node, '/internal/metadata/prepare', { method: 'POST', json: { txn, from: decided.version, state: next } }).catch((err: unknown) => {
          throw err instanceof ConflictError ? new ClashError(err.message) : err;
        });
        prepared.push(node);
      }
    } catch (err) {
      await Promise.all(prepared.map((node) => this.client.send(node, '/internal/metadata/abort', { method: 'POST', json: { txn } }).catch(() => undefined)));
      throw err;
    }
    // Decided: every node prepared it. A node that misses the commit now gets it from the next change.
    const committed = await Promise.allSettled(
      nodes.map((node) => this.client.send(node, '/internal/metadata/commit', { method: 'POST', json: { txn, state: next } })),
    );
    if (committed.every((r) => r.status === 'rejected')) throw (committed[0] as PromiseRejectedResult).reason;
    this.cached = next;
    return next;
  }
}

/** Another coordinator's change got there first: try again from the new version. */
class ClashError extends Error {}
