import { randomUUID } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { logContext, type Logger } from '../shared/logger.ts';

/**
 * One structured log line per request with a request id (the caller's `x-request-id` when
 * it sends a sane one), echoed back in the response header.
 */
export function requestLog(logger: Logger): MiddlewareHandler {
  return async (c, next) => {
    const given = c.req.header('x-request-id');
    const reqId = given && /^[\w.-]{1,128}$/.test(given) ? given : randomUUID();
    const started = performance.now();
    c.header('x-request-id', reqId);
    try {
      // Lines logged while the request is handled (e.g. "backup started") carry its id too.
      await logContext.run({ reqId }, next);
    } finally {
      const ms = Math.round((performance.now() - started) * 10) / 10;
      logger.info({ reqId, method: c.req.method, path: c.req.path, status: c.res.status, ms }, 'request');
    }
  };
}
