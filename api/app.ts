/**
 * The HTTP API: thin routes over the store and the job services. `createApi(deps)` returns
 * `{ app, start, stop }`; tests call `app.request()` in-process, entry points call start().
 */
import { serve, type ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import { openQueues } from '../shared/jobs/queues.ts';
import { apiKeyAuth } from './auth.ts';
import { dashboardRoutes, isDashboardPath } from './dashboard.ts';
import { createGrpcHealthServer } from './grpc-health.ts';
import type { ApiDeps } from './deps.ts';
import { errorBody, handleError } from './errors.ts';
import { createApiMetrics } from './metrics.ts';
import { isOpenOperation } from './openapi.ts';
import { docsRoutes } from './routes/docs.ts';
import { backupRoutes } from './routes/backups.ts';
import { dumpRoutes } from './routes/dump.ts';
import { scheduleRoutes } from './routes/schedules.ts';
import { requestLog } from './request-log.ts';
import { readUnreadBody } from './unread-body.ts';
import { weaviateRoutes } from './routes/weaviate.ts';
import { xapiandRoutes } from './routes/xapiand.ts';

export interface Api {
  app: Hono;
  /**
   * Listen on config.host:config.port (port 0 picks a free one), and serve gRPC health on
   * config.grpcPort unless it is 0; answers the bound address.
   */
  start(): Promise<{ host: string; port: number; grpcPort?: number }>;
  stop(): Promise<void>;
}

export function createApi(deps: ApiDeps): Api {
  const { config, logger } = deps;
  const app = new Hono();

  // Read-side handles on every catalog queue, shared by the dashboard and /metrics.
  const queues = openQueues(deps.redis, config.nodes);
  const metrics = createApiMetrics({ redis: deps.redis, queues });

  app.use('*', requestLog(logger));
  app.use('*', metrics.middleware);
  // Inside the log and the metrics: they time the request until its answer can go out.
  app.use('*', readUnreadBody(Math.max(config.maxBodyBytes, 1024 * 1024)));
  app.onError(handleError(logger));
  app.notFound((c) => c.json(errorBody(`no route for ${c.req.method} ${c.req.path}`), 404));
  if (config.auth.enabled) {
    // The dashboard checks the key itself: a browser also brings it as a cookie (api/dashboard.ts).
    // The API's description (/v1/openapi.json, /docs) holds no data and stays open.
    const auth = apiKeyAuth(config.auth.keys);
    app.use('*', (c, next) => (isDashboardPath(c.req.path) || isOpenOperation(c.req.method, c.req.path) ? next() : auth(c, next)));
  }

  app.get('/metrics', metrics.handler);
  app.route('/', dashboardRoutes({ queues, auth: config.auth, redis: deps.redis }));
  app.route('/', docsRoutes());
  const backups = backupRoutes(deps);
  app.route('/v1/backups', backups.app);
  const schedules = scheduleRoutes(deps);
  app.route('/v1/backup-schedules', schedules.app);
  app.route('/v1', weaviateRoutes(deps));
  app.route('/', dumpRoutes(deps)); // :dump and :restore stream; before the generic Xapiand routes
  // Xapiand's routes match any /{index}/…: they go last.
  app.route('/', xapiandRoutes(deps));

  let server: ServerType | undefined;
  const grpc = config.grpcPort > 0 ? createGrpcHealthServer({ host: config.host, port: config.grpcPort, logger }) : undefined;
  return {
    app,
    start: async () => {
      const grpcPort = await grpc?.start();
      const port = await new Promise<number>((resolve, reject) => {
        const s = serve({ fetch: app.fetch, hostname: config.host, port: config.port }, (info) => {
          logger.info({ host: config.host, port: info.port }, 'api listening');
          resolve(info.port);
        });
        s.once('error', reject);
        server = s;
      });
      return { host: config.host, port, ...(grpcPort ? { grpcPort } : {}) };
    },
    stop: async () => {
      await grpc?.stop();
      await new Promise<void>((resolve) => {
        if (!server) return resolve();
        server.close(() => resolve());
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      await backups.close();
      await schedules.close();
      await queues.close();
    },
  };
}
