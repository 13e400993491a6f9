/**
 * What every entry point does first: parse config once, make the logger, find Redis and
 * reach the data. A bad config or a missing Redis ends the process with one clear line.
 */
import { configOrExit, exitOnConfigError, type Config } from './config.ts';
import { ConfigError, UnauthorizedError } from './errors.ts';
import { createLogger, type Logger } from './logger.ts';
import { createApiRedis, resolveRedis } from './redis.ts';
import { Shutdown } from './shutdown.ts';
import { Store } from './store/store.ts';
import { checkEnabledBackends } from './backups/backends.ts';
import { LocalData, type ClusterData } from './cluster/data.ts';
import { RemoteCatalog } from './cluster/metadata.ts';
import { NodeClient } from './cluster/node-client.ts';
import { RemoteData } from './cluster/remote-data.ts';
import { LocalShardHost, RemoteShardHost, type ShardHost } from './cluster/shard-host.ts';
import type { Redis } from 'ioredis';

export interface Runtime {
  config: Config;
  logger: Logger;
  redisUrl: string;
  /** The API's fail-fast connection (createApiRedis). */
  redis: Redis;
  /** The documents, indexes and metadata, wherever they live (also the workers' catalog). */
  data: ClusterData;
  /** The nodes' shards as whole files, for the workers. */
  shards: ShardHost;
  shutdown: Shutdown;
}

/**
 * With plain node names, the Store over this host's DATA_DIR; with name=URL pairs, the nodes
 * over HTTP — then this process opens no data directory at all.
 */
export function openCluster(config: Config, shutdown: Shutdown): { data: ClusterData; shards: ShardHost } {
  if (config.nodeUrls) {
    const client = new NodeClient(config.nodeUrls, config.clusterSecret!);
    return { data: new RemoteData(client, new RemoteCatalog(client), config.maxBodyBytes), shards: new RemoteShardHost(client) };
  }
  const store = new Store({ dataDir: config.dataDir, nodes: config.nodes });
  shutdown.add('store', () => store.close());
  return { data: new LocalData(store), shards: new LocalShardHost(store) };
}

export async function bootstrap(options: { embeddedRedis: boolean; name: string; config?: Config }): Promise<Runtime> {
  const config = options.config ?? configOrExit();
  const logger = createLogger(config.logLevel, options.name);
  guardProcess(logger);
  const shutdown = new Shutdown(logger);
  const resolved = await resolveRedis(config, { embedded: options.embeddedRedis, logger }).catch(exitOnConfigError);
  if (resolved.server) shutdown.add('redis-server', resolved.server.stop);
  // For the API: fails fast while Redis is away (the workers make their own, patient, connections).
  const redis = createApiRedis(resolved.url);
  redis.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  shutdown.add('redis connection', async () => {
    await redis.quit().catch(() => redis.disconnect());
  });
  const cluster = openCluster(config, shutdown);
  void checkEnabledBackends(config, logger);
  if (config.nodeUrls) void checkClusterSecret(config.nodeUrls, config.clusterSecret!, shutdown);
  return { config, logger, redisUrl: resolved.url, redis, ...cluster, shutdown };
}

/**
 * With nodes on their own hosts: a node that refuses this process's CLUSTER_SECRET would refuse
 * every call to it, so the process stops at once, naming the setting, rather than start and then
 * fail (or, a worker, take jobs and fail them). A node that does not answer yet is no reason to
 * stop: it may start later.
 */
async function checkClusterSecret(urls: Record<string, string>, secret: string, shutdown: Shutdown): Promise<void> {
  const client = new NodeClient(urls, secret);
  const refused = await Promise.all(
    client.nodes.map((node) =>
      client.send(node, '/internal/status', { answerTimeoutMs: 10_000 }).then(
        () => undefined,
        (err: unknown) => (err instanceof UnauthorizedError ? node : undefined),
      ),
    ),
  );
  const by = refused.filter((n): n is string => n !== undefined);
  if (by.length) {
    await shutdown.fail(
      new ConfigError(`CLUSTER_SECRET is not the cluster's: ${by.join(', ')} refuse${by.length === 1 ? 's' : ''} it (every node, API and worker needs the same)`),
      'cannot reach the cluster',
    );
  }
}

/**
 * The last line of defence, not the fix: an error that escaped every handler of one job or
 * request (a stream emitting after its consumer stopped listening, a promise nobody awaited)
 * is logged with its stack and the process goes on serving the others. Ending the process
 * would take every running job and, with `npm start`, the API down with it; the job the error
 * belonged to still ends through its own path (its failure, its abort, or the stalled check).
 * Node's warnings are logged, as every other line the process writes.
 */
export function guardProcess(logger: Logger): void {
  process.on('uncaughtException', (err) => logger.error({ err }, 'uncaught exception (the process goes on)'));
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled promise rejection (the process goes on)'));
  // Node's own warnings (a deprecation; the AWS SDK's notice that it will need a newer Node)
  // become log lines too, instead of lines of text Node prints among the JSON on stderr.
  process.removeAllListeners('warning');
  process.on('warning', (warning) => logger.warn({ warning: { name: warning.name, message: warning.message } }, 'process warning'));
}
