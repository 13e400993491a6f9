/**
 * The one place Redis connections are made. BullMQ needs `maxRetriesPerRequest: null` on
 * connections used by workers: a job's commands wait for Redis to come back. The API must not
 * wait (a request would hang for as long as Redis is away), so it has its own, fail-fast
 * connection (createApiRedis) whose failures isRedisUnavailable recognises and the API
 * answers with 503.
 */
import path from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from './config.ts';
import { UnavailableError } from './errors.ts';
import type { Logger } from './logger.ts';
import { pingRedis, startRedisServer, type RedisServer } from './redis-server.ts';

const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export function createRedis(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    ...options,
  });
}

/** Longest the API waits for Redis to answer one command (a Redis that accepts connections but hangs). */
export const API_COMMAND_TIMEOUT_MS = 5000;

/**
 * The API's connection. Commands sent while Redis is away fail at the next reconnection attempt
 * (`maxRetriesPerRequest: 0`: at most one retryStrategy delay, 2 s), and a command Redis does
 * not answer fails after API_COMMAND_TIMEOUT_MS; commands sent before the first connection are
 * still queued until it is ready. Queues and flow producers (never workers) may share it.
 */
export function createApiRedis(url: string, options: RedisOptions = {}): Redis {
  return createRedis(url, { maxRetriesPerRequest: 0, commandTimeout: API_COMMAND_TIMEOUT_MS, ...options });
}

/** ioredis' messages for commands that never reached Redis or were never answered. */
const UNAVAILABLE_MESSAGES = [/^Reached the max retries per request limit/, /^Command timed out/, /^Connection is closed/, /^Stream isn't writeable/];

/**
 * Whether an error says Redis could not be reached or did not answer in time (as opposed to
 * an error Redis answered, like a script error): the caller may retry later.
 */
export function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'MaxRetriesPerRequestError') return true;
  return UNAVAILABLE_MESSAGES.some((re) => re.test(err.message));
}

/**
 * Resolves once `redis` is connected and ready, waiting at most timeoutMs; otherwise rejects
 * with UnavailableError (503). For callers that hand the connection to BullMQ queues: a queue
 * first used while Redis is away waits for it without bound (its connection setup waits for
 * `ready`), and no command timeout applies to that wait.
 */
export async function whenRedisReady(redis: Redis, timeoutMs = 2000): Promise<void> {
  if (redis.status === 'ready') return;
  if (redis.status === 'end') throw new UnavailableError('Redis is unavailable (connection closed)');
  let onReady: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    const ready = await new Promise<boolean>((resolve) => {
      onReady = () => resolve(true);
      redis.once('ready', onReady);
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    if (!ready) throw new UnavailableError(`Redis is unavailable (${redis.status} for ${timeoutMs} ms); retry later`);
  } finally {
    clearTimeout(timer);
    if (onReady) redis.off('ready', onReady);
  }
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
