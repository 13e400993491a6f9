/**
 * A node's copy of the cluster's metadata, and its side of a change (shared/cluster/metadata.ts
 * is the coordinator's): a change is prepared on every node (each checks it is at the version
 * the change starts from and holds no other live change), then committed on every node. A
 * prepared change that no commit follows expires after PENDING_MS, so a coordinator that died
 * before committing blocks the next change for that long at most; one that died after
 * committing on some nodes is finished by the next coordinator, which installs the highest
 * version it finds on the nodes that lag.
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { readJson } from '../../api/body.ts';
import { ConflictError, ValidationError } from '../../shared/errors.ts';
import type { ClusterState } from '../../shared/store/store.ts';
import { checked } from '../checks.ts';
import type { NodeDeps } from '../deps.ts';

/** How long a prepared change holds a node before another coordinator may take over. */
export const PENDING_MS = 10_000;
const PENDING_KEY = 'pending-change';

const record = z.object({
  name: z.string().min(1),
  uid: z.string().min(1),
  shards: z.number().int().min(1),
  placement: z.array(z.string()),
  schema: z.record(z.string(), z.unknown()),
  createdAt: z.string(),
});
const stateSchema = z.object({
  version: z.number().int().min(1),
  indexes: z.array(record),
  metadata: z.record(z.string(), z.record(z.string(), z.unknown())),
});
const prepareBody = z.object({ txn: z.string().min(1), from: z.number().int().min(0), state: stateSchema });
const commitBody = z.object({ txn: z.string().min(1), state: stateSchema });
const abortBody = z.object({ txn: z.string().min(1) });

interface Pending {
  txn: string;
  version: number;
  expiresAt: number;
}

export function metadataRoutes(deps: NodeDeps): Hono {
  const { store, config } = deps;
  const app = new Hono();
  // Prepare, commit and abort run one at a time: a check of the held change and the write of a
  // new one must not interleave with another coordinator's (both would prepare one version).
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(step: () => Promise<T>): Promise<T> => {
    const run = queue.then(step, step);
    queue = run.catch(() => undefined);
    return run;
  };
  const pending = (): Pending | undefined => {
    const p = store.getClusterValue(PENDING_KEY) as Pending | undefined;
    return p && p.expiresAt > Date.now() ? p : undefined;
  };

  // `?known=<version>`: 204 while this copy is still at that version (the cheap freshness probe).
  app.get('/metadata', (c) => {
    const state = store.clusterState();
    if (c.req.query('known') === String(state.version)) return c.body(null, 204);
    return c.json(state);
  });

  app.post('/metadata/prepare', async (c) => {
    const body = checked(prepareBody, await readJson(c, config.maxBodyBytes), 'metadata prepare');
    if (body.state.version !== body.from + 1) throw new ValidationError(`a change from version ${body.from} must make version ${body.from + 1}`);
    const current = await serial(async () => {
      const version = store.clusterState().version;
      const held = pending();
      if (held && held.txn !== body.txn) throw new ConflictError(`another metadata change (to version ${held.version}) is in progress`);
      if (version !== body.from) throw new ConflictError(`metadata is at version ${version}, not ${body.from}`);
      await store.putClusterValue(PENDING_KEY, { txn: body.txn, version: body.state.version, expiresAt: Date.now() + PENDING_MS } satisfies Pending);
      return version;
    });
    return c.json({ version: current });
  });

  // Installs the state whether or not this node prepared it: a committed version is decided
  // (every node had prepared it), so it also repairs a node that missed the commit.
  app.post('/metadata/commit', async (c) => {
    const body = checked(commitBody, await readJson(c, config.maxBodyBytes), 'metadata commit');
    const version = await serial(async () => {
      await store.installClusterState(body.state as ClusterState);
      const held = store.getClusterValue(PENDING_KEY) as Pending | undefined;
      if (held && (held.txn === body.txn || held.version <= body.state.version)) await store.putClusterValue(PENDING_KEY, undefined);
      return store.clusterState().version;
    });
    return c.json({ version });
  });

  app.post('/metadata/abort', async (c) => {
    const body = checked(abortBody, await readJson(c, config.maxBodyBytes), 'metadata abort');
    await serial(async () => {
      const held = store.getClusterValue(PENDING_KEY) as Pending | undefined;
      if (held?.txn === body.txn) await store.putClusterValue(PENDING_KEY, undefined);
    });
    return c.json({});
  });

  // A foreign schema is a document of `.schemas`: the node holding it resolves it.
  app.get('/indexes/:index/effective-schema', (c) => c.json(store.effectiveSchema(store.requireIndex(c.req.param('index')))));

  return app;
}
