import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { jsonText } from '../shared/store/schema.ts';

/** Answer JSON, indented when the request has `?pretty` (Xapiand's convention). */
export function reply(c: Context, data: unknown, status: ContentfulStatusCode = 200): Response {
  const pretty = c.req.query('pretty') !== undefined;
  const body = jsonText(data, pretty ? 2 : undefined);
  return c.body(pretty ? `${body}\n` : body, status, { 'content-type': 'application/json; charset=utf-8' });
}
