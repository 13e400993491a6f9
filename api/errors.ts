import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import {
  BadRequestError,
  CancelledError,
  ConflictError,
  IntegrityError,
  LostShardError,
  NotFoundError,
  PayloadTooLargeError,
  PermanentBackendError,
  UnauthorizedError,
  UnavailableError,
  ValidationError,
  type ShardvaultError,
} from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { isRedisUnavailable } from '../shared/redis.ts';

/** Weaviate's error envelope: `{"error":[{"message":"…"}]}`. */
export function errorBody(message: string): { error: { message: string }[] } {
  return { error: [{ message }] };
}

/**
 * The HTTP status of each named error, most specific class first. 422 for input that is
 * well-formed but refused, as Weaviate answers (a clash with current state, a backend that
 * cannot be used, a backup that is damaged, too); a dependency that is away is 503.
 */
const HTTP_STATUS: [abstract new (...args: never[]) => ShardvaultError, ContentfulStatusCode][] = [
  [BadRequestError, 400],
  [PayloadTooLargeError, 413],
  [ValidationError, 422],
  [UnauthorizedError, 401],
  [NotFoundError, 404],
  [CancelledError, 409],
  [ConflictError, 422],
  [IntegrityError, 422],
  [PermanentBackendError, 422],
  [UnavailableError, 503],
  [LostShardError, 503],
];

/** The status an error answers with; 500 for anything not named above. */
export function httpStatusOf(err: unknown): ContentfulStatusCode {
  return HTTP_STATUS.find(([type]) => err instanceof type)?.[1] ?? 500;
}

/**
 * Named errors answer their status and message; Redis being away answers 503; anything else is
 * logged and answered 500 without detail.
 */
export function handleError(logger: Logger) {
  return (err: Error, c: Context): Response => {
    const status = httpStatusOf(err);
    if (status !== 500) return c.json(errorBody(err.message), status);
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
