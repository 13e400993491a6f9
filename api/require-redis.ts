import type { MiddlewareHandler } from 'hono';
import type { Redis } from 'ioredis';
import { whenRedisReady } from '../shared/redis.ts';

/**
 * For routes that go through BullMQ (backups, the queue dashboard): waits up to 2 s for the
 * API's Redis connection to be ready, then answers 503 (UnavailableError) rather than letting
 * a queue wait for Redis without bound.
 */
export function requireRedis(redis: Redis): MiddlewareHandler {
  return async (_c, next) => {
    await whenRedisReady(redis);
    await next();
  };
}
