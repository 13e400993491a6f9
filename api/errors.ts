import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { isShardvaultError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { isRedisUnavailable } from '../shared/redis.ts';

/** Weaviate's error envelope: `{"error":[{"message":"…"}]}`. */
export function errorBody(message: string): { error: { message: string }[] } {
  return { error: [{ message }] };
}

/**
 * Named errors answer their status and message; Redis being away answers 503; anything else is
 * logged and answered 500 without detail.
 */
export function handleError(logger: Logger) {
  return (err: Error, c: Context): Response => {
    if (isShardvaultError(err) && err.status < 500) {
      return c.json(errorBody(err.message), err.status as ContentfulStatusCode);
    }
    if (isShardvaultError(err) && err.status === 503) {
      return c.json(errorBody(err.message), 503);
    }
    if (isRedisUnavailable(err)) {
      logger.warn({ err: err.message, method: c.req.method, path: c.req.path }, 'redis unavailable');
      c.header('retry-after', '5');
      return c.json(errorBody('Redis is unavailable; retry later'), 503);
    }
    if (clientWentAway(err, c)) {
      // Nobody reads this answer; it is not the server's fault either.
      logger.info({ method: c.req.method, path: c.req.path }, 'client closed the connection before the request was read');
      return c.json(errorBody('request aborted by the client'), 400);
    }
    if (err instanceof HTTPException) {
      return c.json(errorBody(err.message || 'request refused'), err.status);
    }
    logger.error({ err, method: c.req.method, path: c.req.path }, 'unhandled error');
    return c.json(errorBody('internal error; see the server log'), 500);
  };
}

/** The client hung up while its request body was still being read (Node's `aborted` error). */
function clientWentAway(err: Error, c: Context): boolean {
  const code = (err as { code?: unknown }).code;
  return (err.message === 'aborted' && code === 'ECONNRESET') || (c.req.raw.signal.aborted && (code === 'ECONNRESET' || err.name === 'AbortError'));
}
