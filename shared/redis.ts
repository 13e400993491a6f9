/**
 * The one place Redis connections are made. BullMQ needs `maxRetriesPerRequest: null` on
 * connections used by workers; the API uses the same options so a Redis outage makes
 * commands wait for reconnection instead of failing, and the API layer answers 503.
 */
import path from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';
import { pingRedis, startRedisServer, type RedisServer } from './redis-server.ts';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export function createRedis(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    ...options,
  });
}

export interface ResolvedRedis {
  url: string;
  /** The private redis-server started for this process, if one was. */
  server?: RedisServer;
}

/**
 * Where Redis is: REDIS_URL when set; else 127.0.0.1:6379 when something answers there;
 * else, when `embedded` is allowed, a private redis-server under DATA_DIR/_redis.
 */
export async function resolveRedis(
  config: Config,
  options: { embedded: boolean; logger: Logger; defaultPort?: number; binary?: string },
): Promise<ResolvedRedis> {
  if (config.redisUrl) return { url: config.redisUrl };
  const port = options.defaultPort ?? 6379;
  if (await pingRedis('127.0.0.1', port)) return { url: `redis://127.0.0.1:${port}` };
  if (!options.embedded) return { url: DEFAULT_REDIS_URL };
  const server = await startRedisServer({ dir: path.join(config.dataDir, '_redis'), appendonly: true, binary: options.binary });
  options.logger.info({ url: server.url }, 'started a private redis-server');
  return { url: server.url, server };
}
