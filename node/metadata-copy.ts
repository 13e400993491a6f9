/**
 * A node's copy of the cluster's metadata, and its side of a change (shared/cluster/metadata.ts
 * is the coordinator's): a change is prepared on every node (each checks it is at the version
 * the change starts from and holds no other live change), then committed on every node. A
 * prepared change that no commit follows expires after PENDING_MS, so a coordinator that died
 * before committing blocks the next change for that long at most; one that died after
 * committing on some nodes is finished by the next coordinator, which installs the highest
 * version it finds on the nodes that lag.
 *
 * Every node prepares every change, so a node that keeps its data directory has prepared any
 * version it is asked to install. One asked to install a version it never prepared has lost its
 * directory (emptied, or replaced by an older copy): the shards that version places on it and
 * the directory does not hold are lost, and are recorded so (Store.installClusterState) instead
 * of being served empty. A node that starts with an empty copy takes the metadata from its peers
 * at once (`catchUp`), so it says which shards it lost before anyone asks it for them.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeClient } from '../shared/cluster/node-client.ts';
import { ConflictError } from '../shared/errors.ts';
import type { ClusterState } from '../shared/store/store.ts';
import type { NodeDeps } from './deps.ts';

/** How long a prepared change holds a node before another coordinator may take over. */
const PENDING_MS = 10_000;
const PENDING_KEY = 'pending-change';
/** The highest version this node has prepared: unlike the pending change, never cleared. */
const PREPARED_KEY = 'highest-prepared';
/** How often a node with an empty copy asks the peers that have not answered yet. */
const CATCH_UP_INTERVAL_MS = 2000;

interface Pending {
  txn: string;
  version: number;
  expiresAt: number;
}

export class MetadataCopy {
  // Prepare, commit and abort run one at a time: a check of the held change and the write of a
  // new one must not interleave with another coordinator's (both would prepare one version).
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: NodeDeps) {}

  private serial<T>(step: () => Promise<T>): Promise<T> {
    const run = this.queue.then(step, step);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The change this node has prepared, as stored (it may have expired). */
  private held(): Pending | undefined {
    return this.deps.store.getClusterValue(PENDING_KEY) as Pending | undefined;
  }

  /** The highest version this node has held or prepared. */
  private known(): number {
    const { store } = this.deps;
    return Math.max(store.clusterVersion(), this.held()?.version ?? 0, (store.getClusterValue(PREPARED_KEY) as number | undefined) ?? 0);
  }

  /** Answers the version this node was at. */
  prepare(txn: string, from: number, state: ClusterState): Promise<number> {
    const { store } = this.deps;
    return this.serial(async () => {
      const version = store.clusterVersion();
      const held = this.held();
      if (held && held.expiresAt > Date.now() && held.txn !== txn) throw new ConflictError(`another metadata change (to version ${held.version}) is in progress`);
      if (version !== from) throw new ConflictError(`metadata is at version ${version}, not ${from}`);
      await store.putClusterValue(PENDING_KEY, { txn, version: state.version, expiresAt: Date.now() + PENDING_MS } satisfies Pending);
      await store.putClusterValue(PREPARED_KEY, Math.max(this.known(), state.version));
      return version;
    });
  }

  /**
   * Installs the state whether or not this node prepared it: a committed version is decided
   * (every node had prepared it), so it also repairs a node that missed the commit. Answers the
   * version this node is at afterwards.
   */
  commit(txn: string | undefined, state: ClusterState): Promise<number> {
    const { store, node, logger } = this.deps;
    return this.serial(async () => {
      const missed = state.version > this.known();
      const lost = await store.installClusterState(state, missed ? { missedOn: node } : {});
      if (lost.length) {
        logger.error(
          { version: state.version, lost: lost.map((l) => `${l.index}/${l.shard}`) },
          "this node took metadata it had never prepared, and its data directory does not hold these shards of it: they are lost (refused by name) until their index is deleted and restored from a backup",
        );
      }
      const held = this.held();
      if (held && (held.txn === txn || held.version <= state.version)) await store.putClusterValue(PENDING_KEY, undefined);
      return store.clusterVersion();
    });
  }

  abort(txn: string): Promise<void> {
    return this.serial(async () => {
      if (this.held()?.txn === txn) await this.deps.store.putClusterValue(PENDING_KEY, undefined);
    });
  }

  /**
   * When this node's copy is empty (a new data directory), take the highest version a peer
   * holds. Asks again, every CATCH_UP_INTERVAL_MS, the peers that have not answered, until one
   * holds metadata, every one has answered (a new cluster: all empty), a change reaches this
   * node, or `signal` ends it.
   */
  async catchUp(client: NodeClient, signal: AbortSignal): Promise<void> {
    const peers = client.nodes.filter((n) => n !== this.deps.node);
    const answered = new Set<string>();
    while (!signal.aborted && this.known() === 0 && answered.size < peers.length) {
      const states = await Promise.all(
        peers
          .filter((peer) => !answered.has(peer))
          .map((peer) =>
            client.json<ClusterState>(peer, '/internal/metadata', { signal }).then(
              (state) => (answered.add(peer), state),
              () => undefined,
            ),
          ),
      );
      const newest = states.reduce<ClusterState | undefined>((a, b) => (b && b.version > (a?.version ?? 0) ? b : a), undefined);
      if (newest) {
        this.deps.logger.info({ version: newest.version }, "this node's copy of the metadata was empty: it took the cluster's from a peer");
        await this.commit(undefined, newest);
        return;
      }
      if (answered.size < peers.length) await sleep(CATCH_UP_INTERVAL_MS, undefined, { signal }).catch(() => undefined);
    }
  }
}
