import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { jsonText } from '../shared/store/schema.ts';

/**
 * Answer JSON, indented when the request has `?pretty` (Xapiand's convention). Encoded once
 * here: a string body would be measured for its Content-Length and encoded again on write,
 * which costs a batch answer of a thousand objects as much as its own serialisation.
 */
export function reply(c: Context, data: unknown, status: ContentfulStatusCode = 200): Response {
  const pretty = c.req.query('pretty') !== undefined;
  const body = jsonText(data, pretty ? 2 : undefined);
  return c.body(Buffer.from(pretty ? `${body}\n` : body), status, { 'content-type': 'application/json; charset=utf-8' });
}
