/**
 * `npm run node`: one storage node on its own host. It owns its DATA_DIR (its shards and its
 * copy of the cluster's metadata) and serves them to the API and the workers over HTTP under
 * `/internal/…`; every path but the health checks wants `Authorization: Bearer <CLUSTER_SECRET>`.
 * `createNode(deps)` returns `{ app, start, stop }`, so tests run nodes in-process too.
 */
import { serve, type ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import { httpStatusOf } from '../api/errors.ts';
import { requestLog } from '../api/request-log.ts';
import { readUnreadBody } from '../api/unread-body.ts';
import { nodeBodyLimit, type NodeClient } from '../shared/cluster/node-client.ts';
import { wireError } from '../shared/cluster/wire.ts';
import { NotFoundError, UnauthorizedError } from '../shared/errors.ts';
import { matchesSecret } from '../shared/secret.ts';
import type { NodeDeps } from './deps.ts';
import { MetadataCopy } from './metadata-copy.ts';
import { documentRoutes } from './routes/documents.ts';
import { metadataRoutes } from './routes/metadata.ts';
import { shardRoutes } from './routes/shards.ts';
import { statusRoutes } from './routes/status.ts';

export interface NodeServer {
  app: Hono;
  start(): Promise<{ host: string; port: number }>;
  stop(): Promise<void>;
  /** When this node's copy of the metadata is empty, take its peers' (MetadataCopy.catchUp). */
  catchUp(peers: NodeClient, signal: AbortSignal): Promise<void>;
}

/** Paths a node answers without the secret (orchestrators probe them). */
const OPEN = new Set(['/health/live', '/health/ready']);

export function createNode(deps: NodeDeps): NodeServer {
  const { config, logger, store, node } = deps;
  const secret = config.clusterSecret;
  if (!secret) throw new Error('a node needs CLUSTER_SECRET');
  const app = new Hono();
  app.use('*', requestLog(logger));
  app.use('*', readUnreadBody(nodeBodyLimit(config.maxBodyBytes)));
  app.onError((err, c) => {
    const status = httpStatusOf(err);
    if (status === 500) logger.error({ err, method: c.req.method, path: c.req.path }, 'node request failed');
    return c.json(wireError(err), status);
  });
  app.notFound((c) => c.json(wireError(new NotFoundError(`no route for ${c.req.method} ${c.req.path}`)), 404));
  app.use('*', async (c, next) => {
    if (OPEN.has(c.req.path)) return next();
    const m = /^Bearer\s+(.+)$/i.exec(c.req.header('authorization') ?? '');
    if (!m || !matchesSecret(m[1]!.trim(), [secret])) throw new UnauthorizedError('this node answers only its cluster: missing or wrong cluster secret');
    return next();
  });

  app.get('/health/live', (c) => c.json({ node, status: 'HEALTHY' }));
  app.get('/health/ready', async (c) =>
    (await store.healthy()) ? c.json({ node, status: 'HEALTHY' }) : c.json({ node, status: 'UNHEALTHY' }, 503),
  );

  const metadata = new MetadataCopy(deps);
  app.route('/internal', metadataRoutes(deps, metadata));
  app.route('/internal', shardRoutes(deps));
  app.route('/internal', documentRoutes(deps));
  app.route('/internal', statusRoutes(deps));

  let server: ServerType | undefined;
  return {
    app,
    start: async () => {
      const port = await new Promise<number>((resolve, reject) => {
        // No limit on receiving a whole request (Node's default is 300 s): a restored shard streams
        // into staging for as long as its size and WORKER_MAX_BYTES_PER_SECOND make it take.
        const serverOptions = { requestTimeout: 0 };
        const s = serve({ fetch: app.fetch, hostname: config.host, port: config.port, serverOptions }, (info) => {
          logger.info({ node, host: config.host, port: info.port }, 'node listening');
          resolve(info.port);
        });
        s.once('error', reject);
        server = s;
      });
      return { host: config.host, port };
    },
    stop: async () => {
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    },
    catchUp: (peers, signal) => metadata.catchUp(peers, signal),
  };
}
