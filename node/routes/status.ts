/**
 * `GET /internal/status`: this node's own account of itself for `GET /v1/nodes` — whether its
 * data directory answers, and the documents of every shard its metadata places on it. A node
 * with a lost shard (node/metadata-copy.ts) is UNHEALTHY and names it.
 */
import { Hono } from 'hono';
import { shardsHere } from '../checks.ts';
import type { NodeDeps } from '../deps.ts';

export function statusRoutes(deps: NodeDeps): Hono {
  const { store, node } = deps;
  const app = new Hono();
  app.get('/status', async (c) => {
    const healthy = await store.healthy();
    const shards = store.listIndexes().flatMap((rec) =>
      shardsHere(node, rec).map((shard) =>
        store.lostShard(rec, shard)
          ? { index: rec.name, shard, docs: 0, lost: true }
          : { index: rec.name, shard, docs: healthy ? store.shardCount(rec, shard) : 0 },
      ),
    );
    return c.json({ status: healthy && !shards.some((s) => s.lost) ? 'HEALTHY' : 'UNHEALTHY', shards });
  });
  return app;
}
