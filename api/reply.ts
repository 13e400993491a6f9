import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { jsonText } from '../shared/store/schema.ts';
import { jsonBytes } from './json.ts';

/**
 * Answer JSON, indented when the request has `?pretty` (Xapiand's convention). Encoded here,
 * value by value (json.ts): a string body would be measured for its Content-Length and encoded
 * again on write, and one string of a batch answer of a thousand objects is a large object.
 */
export function reply(c: Context, data: unknown, status: ContentfulStatusCode = 200): Response {
  const pretty = c.req.query('pretty') !== undefined;
  const body = pretty ? Buffer.from(`${jsonText(data, 2)}\n`) : jsonBytes(data);
  return c.body(body, status, { 'content-type': 'application/json; charset=utf-8' });
}
