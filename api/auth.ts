import type { MiddlewareHandler } from 'hono';
import { UnauthorizedError } from '../shared/errors.ts';
import { matchesSecret } from '../shared/secret.ts';

/** Paths that stay open with auth on (load balancers and orchestrators probe them). */
const OPEN = new Set(['/v1/.well-known/live', '/v1/.well-known/ready']);

/** Weaviate's API-key auth: `Authorization: Bearer <key>` with a key from the allowed list. */
export function apiKeyAuth(keys: string[]): MiddlewareHandler {
  return async (c, next) => {
    if (OPEN.has(c.req.path)) return next();
    const header = c.req.header('authorization') ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(header);
    if (!m || !matchesSecret(m[1]!.trim(), keys)) {
      throw new UnauthorizedError(m ? 'invalid API key' : 'missing API key: send Authorization: Bearer <key>');
    }
    return next();
  };
}
