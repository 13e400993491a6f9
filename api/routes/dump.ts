/**
 * Xapiand's online dump and restore: `POST /{index}/:dump` and `POST /{index}/:restore`.
 * The format is chosen by `Accept` (dump) or `Content-Type` (restore); both stream, so the
 * request body limit does not apply to `:restore` — only a single document larger than it
 * is refused. Mounted before the generic Xapiand routes.
 */
import path from 'node:path';
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { fromWebStream, toWebStream } from '../../shared/dump/byte-streams.ts';
import { dumpDocuments, restoreStream, type DocumentFormat } from '../../shared/dump/document-streams.ts';
import { indexName } from './xapiand.ts';
import type { ApiDeps } from '../deps.ts';
import { reply } from '../reply.ts';

/** Where dump files sent to `:restore` are spooled, under DATA_DIR (node names never start with `_`). */
const SPOOL_DIR = '_spool';

const MEDIA_TYPES: Record<string, DocumentFormat> = {
  'application/json': 'json',
  'text/json': 'json',
  'application/x-ndjson': 'ndjson',
  'application/ndjson': 'ndjson',
  'application/jsonl': 'ndjson',
  'application/x-jsonlines': 'ndjson',
  'application/x-msgpack': 'msgpack',
  'application/msgpack': 'msgpack',
  'application/vnd.msgpack': 'msgpack',
  'application/octet-stream': 'dump',
};

const CONTENT_TYPES: Record<DocumentFormat, string> = {
  json: 'application/json; charset=utf-8',
  ndjson: 'application/x-ndjson',
  msgpack: 'application/x-msgpack',
  dump: 'application/octet-stream',
};

/** The format of the first acceptable media type in `Accept` (by q, then order); JSON by default. */
function formatForAccept(accept: string | undefined): DocumentFormat {
  if (!accept) return 'json';
  const ranked = accept
    .split(',')
    .map((part, order) => {
      const [type = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
      const q = params.find((p) => p.startsWith('q='));
      return { type, q: q ? Number(q.slice(2)) : 1, order };
    })
    .filter((r) => r.q > 0)
    .sort((a, b) => b.q - a.q || a.order - b.order);
  for (const { type } of ranked) {
    if (MEDIA_TYPES[type]) return MEDIA_TYPES[type];
    if (type === '*/*' || type === 'application/*') return 'json';
  }
  throw new HTTPException(406, { message: `cannot dump as ${JSON.stringify(accept)}; accept one of ${Object.keys(MEDIA_TYPES).join(', ')}` });
}

/** The format of a restore body; curl's default form type and text/plain are read as JSON. */
function formatForContentType(contentType: string | undefined): DocumentFormat {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === '' || type === 'text/plain' || type === 'application/x-www-form-urlencoded') return 'json';
  const format = MEDIA_TYPES[type] ?? (/^application\/[\w.+-]+\+json$/.test(type) ? 'json' : undefined);
  if (!format) {
    throw new HTTPException(415, { message: `cannot restore a ${JSON.stringify(type)} body; send one of ${Object.keys(MEDIA_TYPES).join(', ')}` });
  }
  return format;
}

export function dumpRoutes({ data, config }: ApiDeps): Hono {
  const app = new Hono();

  app.post('/:index/:cmd{:dump}', async (c) => {
    const name = indexName(c);
    const format = formatForAccept(c.req.header('accept'));
    const body = await dumpDocuments(data, name, format, { pretty: c.req.query('pretty') !== undefined });
    const headers: Record<string, string> = { 'content-type': CONTENT_TYPES[format] };
    if (format === 'dump') headers['content-disposition'] = `attachment; filename="${name}.docs"`;
    return new Response(toWebStream(body), { status: 200, headers });
  });

  app.post('/:index/:cmd{:restore}', async (c) => {
    const name = indexName(c);
    const format = formatForContentType(c.req.header('content-type'));
    const raw = c.req.raw.body;
    const body: AsyncIterable<Uint8Array> = raw ? fromWebStream(raw) : (async function* empty() {})();
    const result = await restoreStream(data, name, format, body, {
      maxDocumentBytes: config.maxBodyBytes,
      signal: c.req.raw.signal,
      // Inside DATA_DIR: the server writes nowhere else, and a large dump does not fill a RAM-backed /tmp.
      spoolDir: path.join(config.dataDir, SPOOL_DIR),
    });
    const { processed, indexed, total, items, refused } = result;
    return reply(c, { processed, indexed, total, items, ...(refused > items.length ? { refused } : {}) });
  });

  return app;
}
