/**
 * The routes of a node's copy of the cluster's metadata: reading it, and the node's side of a
 * change (node/metadata-copy.ts says how a change goes).
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { readJson } from '../../api/body.ts';
import { ValidationError } from '../../shared/errors.ts';
import type { ClusterState } from '../../shared/store/store.ts';
import { checked } from '../checks.ts';
import type { NodeDeps } from '../deps.ts';
import type { MetadataCopy } from '../metadata-copy.ts';

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

export function metadataRoutes(deps: NodeDeps, copy: MetadataCopy): Hono {
  const { store, config } = deps;
  const app = new Hono();

  // `?known=<version>`: 204 while this copy is still at that version (the cheap freshness probe).
  app.get('/metadata', (c) => {
    const state = store.clusterState();
    if (c.req.query('known') === String(state.version)) return c.body(null, 204);
    return c.json(state);
  });

  app.post('/metadata/prepare', async (c) => {
    const body = checked(prepareBody, await readJson(c, config.maxBodyBytes), 'metadata prepare');
    if (body.state.version !== body.from + 1) throw new ValidationError(`a change from version ${body.from} must make version ${body.from + 1}`);
    return c.json({ version: await copy.prepare(body.txn, body.from, body.state as ClusterState) });
  });

  app.post('/metadata/commit', async (c) => {
    const body = checked(commitBody, await readJson(c, config.maxBodyBytes), 'metadata commit');
    return c.json({ version: await copy.commit(body.txn, body.state as ClusterState) });
  });

  app.post('/metadata/abort', async (c) => {
    const body = checked(abortBody, await readJson(c, config.maxBodyBytes), 'metadata abort');
    await copy.abort(body.txn);
    return c.json({});
  });

  // A foreign schema is a document of `.schemas`: the node holding it resolves it.
  app.get('/indexes/:index/effective-schema', (c) => c.json(store.effectiveSchema(store.requireIndex(c.req.param('index')))));

  return app;
}
