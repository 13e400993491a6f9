/**
 * What every entry point does first: parse config once, make the logger, find Redis and
 * open the store. A bad config or a missing Redis ends the process with one clear line.
 */
import { loadConfig, type Config } from './config.ts';
import { ConfigError } from './errors.ts';
import { createLogger, type Logger } from './logger.ts';
import { createApiRedis, resolveRedis } from './redis.ts';
import { Shutdown } from './shutdown.ts';
import { Store } from './store/store.ts';
import { checkEnabledBackends } from './backups/backends.ts';
import type { Redis } from 'ioredis';

export interface Runtime {
  config: Config;
  logger: Logger;
  redisUrl: string;
  /** The API's fail-fast connection (createApiRedis). */
  redis: Redis;
  store: Store;
  shutdown: Shutdown;
}

export async function bootstrap(options: { embeddedRedis: boolean; name: string }): Promise<Runtime> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`shardvault: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel, options.name);
  guardProcess(logger);
  const shutdown = new Shutdown(logger);
  let resolved;
  try {
    resolved = await resolveRedis(config, { embedded: options.embeddedRedis, logger });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (resolved.server) shutdown.add('redis-server', resolved.server.stop);
  // For the API: fails fast while Redis is away (the workers make their own, patient, connections).
  const redis = createApiRedis(resolved.url);
  redis.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  shutdown.add('redis connection', async () => {
    await redis.quit().catch(() => redis.disconnect());
  });
  const store = new Store({ dataDir: config.dataDir, nodes: config.nodes });
  shutdown.add('store', () => store.close());
  void checkEnabledBackends(config, logger);
  return { config, logger, redisUrl: resolved.url, redis, store, shutdown };
}

/**
 * The last line of defence, not the fix: an error that escaped every handler of one job or
 * request (a stream emitting after its consumer stopped listening, a promise nobody awaited)
 * is logged with its stack and the process goes on serving the others. Ending the process
 * would take every running job and, with `npm start`, the API down with it; the job the error
 * belonged to still ends through its own path (its failure, its abort, or the stalled check).
 */
export function guardProcess(logger: Logger): void {
  process.on('uncaughtException', (err) => logger.error({ err }, 'uncaught exception (the process goes on)'));
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled promise rejection (the process goes on)'));
}
