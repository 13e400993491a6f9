/**
 * The online dump and restore of Xapiand's backups page, as written there:
 * `POST /twitter/:dump?pretty` (JSON, MessagePack, NDJSON, the dump file) and
 * `POST /{index}/:restore?pretty` of the two tweets in each format.
 */
import { Packr, unpackMultiple } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { useTestApi } from '../support/api.ts';
import { SEED_TWEETS } from '../support/xapiand-seed.ts';

const t = useTestApi({ MAX_BODY_BYTES: '2048' });

const STORED = [
  { _id: 1, user: 'Kronuz', postDate: '2016-11-15T13:12:00.000Z', message: 'Trying out Xapiand, so far, so good... so what!' },
  { _id: 2, user: 'Kronuz', postDate: '2016-10-15T10:31:18.000Z', message: 'Another tweet, will it be indexed?' },
];

const byId = (docs: { _id: number }[]) => [...docs].sort((a, b) => a._id - b._id);

function post(path: string, body?: string | Uint8Array, headers: Record<string, string> = {}): Promise<Response> {
  return Promise.resolve(t.api.app.request(path, { method: 'POST', body: body as BodyInit | undefined, headers }));
}

describe('POST /{index}/:restore and /{index}/:dump (the seed)', () => {
  it('restores the two tweets from the seed JSON and answers counts', async () => {
    const res = await post('/twitter/:restore?pretty', SEED_TWEETS, { 'content-type': 'application/json' });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text.endsWith('\n')).toBe(true);
    expect(JSON.parse(text)).toEqual({ processed: 2, indexed: 2, total: 2, items: [] });
    expect(await (await t.call('GET', '/twitter/2')).json()).toEqual(STORED[1]);
  });

  it('dumps them as a pretty JSON array', async () => {
    const res = await post('/twitter/:dump?pretty');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const text = await res.text();
    expect(text).toMatch(/^\[\n  \{\n    "_id": /);
    expect(byId(JSON.parse(text))).toEqual(STORED);
    // Without ?pretty: compact.
    const compact = await (await post('/twitter/:dump')).text();
    expect(compact).not.toContain('\n');
    expect(byId(JSON.parse(compact))).toEqual(STORED);
  });

  it('dumps MessagePack that any reader reads as a stream of maps, and restores it into new_twitter', async () => {
    const res = await post('/twitter/:dump?pretty', undefined, { accept: 'application/x-msgpack' });
    expect(res.headers.get('content-type')).toBe('application/x-msgpack');
    const bytes = Buffer.from(await res.arrayBuffer());
    expect(bytes[0]! & 0xf0).toBe(0x80); // a fixmap: plain MessagePack, no msgpackr extensions
    const maps = unpackMultiple(bytes) as { _id: number }[];
    expect(byId(maps)).toEqual(STORED);

    // curl 'localhost:8880/new_twitter/:restore?pretty' -H 'Content-Type: application/x-msgpack' --data-binary '@twitter.msgpack'
    const restored = await post('/new_twitter/:restore?pretty', bytes, { 'content-type': 'application/x-msgpack' });
    expect(await restored.json()).toEqual({ processed: 2, indexed: 2, total: 2, items: [] });
    expect(await (await t.call('GET', '/new_twitter/1')).json()).toEqual(STORED[0]);
    const schema = await (await t.call('GET', '/new_twitter/:schema')).json();
    expect(schema).toMatchObject({ _id: { _type: 'integer' }, postDate: { _type: 'datetime' } });
  });

  it('dumps and restores NDJSON', async () => {
    const res = await post('/twitter/:dump', undefined, { accept: 'application/x-ndjson' });
    expect(res.headers.get('content-type')).toBe('application/x-ndjson');
    const text = await res.text();
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(byId(lines.map((l) => JSON.parse(l)))).toEqual(STORED);
    const restored = await post('/ndjson_twitter/:restore', text, { 'content-type': 'application/x-ndjson' });
    expect(await restored.json()).toEqual({ processed: 2, indexed: 2, total: 2, items: [] });
    expect(byId(await (await post('/ndjson_twitter/:dump')).json())).toEqual(STORED);
  });

  it('dumps the dump file with Accept: application/octet-stream and restores it, also sent as x-msgpack', async () => {
    const res = await post('/twitter/:dump', undefined, { accept: 'application/octet-stream' });
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    const file = Buffer.from(await res.arrayBuffer());
    expect(file.subarray(0, 6).toString()).toBe('SVDUMP');
    const restored = await post('/file_twitter/:restore', file, { 'content-type': 'application/octet-stream' });
    expect(await restored.json()).toEqual({ processed: 2, indexed: 2, total: 2, items: [] });
    // Xapiand's page restores the CLI's twitter.msgpack with Content-Type: application/x-msgpack.
    const again = await post('/file_twitter2/:restore', file, { 'content-type': 'application/x-msgpack' });
    expect(await again.json()).toEqual({ processed: 2, indexed: 2, total: 2, items: [] });
    expect(byId(await (await post('/file_twitter2/:dump')).json())).toEqual(STORED);
  });

  it('refuses a corrupted dump file and changes nothing', async () => {
    const file = Buffer.from(await (await post('/twitter/:dump', undefined, { accept: 'application/octet-stream' })).arrayBuffer());
    const corrupt = Buffer.from(file);
    const at = corrupt.indexOf('Another tweet');
    expect(at).toBeGreaterThan(0);
    corrupt[at] = 'a'.charCodeAt(0); // a changed letter: still well-formed, but the checksum differs
    const res = await post('/corrupt/:restore', corrupt, { 'content-type': 'application/octet-stream' });
    expect(res.status).toBe(422);
    expect((await res.json()).error[0].message).toMatch(/checksum mismatch/);
    expect((await t.call('GET', '/corrupt/:info')).status).toBe(404);

    const truncated = await post('/corrupt/:restore', file.subarray(0, file.length - 10), { 'content-type': 'application/octet-stream' });
    expect(truncated.status).toBe(422);
    expect((await truncated.json()).error[0].message).toMatch(/truncated/);
    const garbage = await post('/corrupt/:restore', Buffer.from('not a dump at all'), { 'content-type': 'application/octet-stream' });
    expect(garbage.status).toBe(422);
    expect((await garbage.json()).error[0].message).toMatch(/not a shardvault dump/);
    expect((await t.call('GET', '/corrupt/:info')).status).toBe(404);
  });

  it('reports documents that do not fit the schema (position and _id) and keeps the others', async () => {
    const body = `[{"_id": 10, "user": "a"}, {"_id": "abc", "user": "b"}, {"_id": 11, "postDate": "not a date"}, {"_id": 12, "user": "c",},]`;
    const res = await post('/twitter/:restore', body, { 'content-type': 'application/json' });
    expect(res.status).toBe(200);
    const answer = await res.json();
    expect(answer).toMatchObject({ processed: 4, indexed: 2, total: 4 });
    expect(answer.items).toEqual([
      { index: 'twitter', position: 1, _id: 'abc', status: 422, error: expect.stringMatching(/_id.*integer/) },
      { index: 'twitter', position: 2, _id: 11, status: 422, error: expect.stringMatching(/postDate.*datetime/) },
    ]);
    expect((await t.call('GET', '/twitter/12')).status).toBe(200);
  });

  it('does not apply the body size limit to :restore, but refuses one document larger than it', async () => {
    // MAX_BODY_BYTES is 2048 here: a 200-document body is far larger, each document small.
    const docs = Array.from({ length: 200 }, (_, i) => ({ _id: 1000 + i, user: 'u', message: 'x'.repeat(50) }));
    const big = await post('/limits/:restore', JSON.stringify(docs), { 'content-type': 'application/json' });
    expect(await big.json()).toEqual({ processed: 200, indexed: 200, total: 200, items: [] });
    expect((await t.call('POST', '/limits/', { _id: 1, message: 'y'.repeat(4000) })).status).toBe(413);

    const huge = JSON.stringify([{ _id: 1, message: 'y'.repeat(4000) }]);
    const refused = await post('/limits/:restore', huge, { 'content-type': 'application/json' });
    expect(refused.status).toBe(413);
    const packed = new Packr({ useRecords: false }).pack({ _id: 1, message: 'y'.repeat(4000) });
    const refusedMsgpack = await post('/limits/:restore', packed, { 'content-type': 'application/x-msgpack' });
    expect(refusedMsgpack.status).toBe(413);
  });

  it('refuses a malformed or truncated JSON body with 400', async () => {
    const res = await post('/broken/:restore', '[{"_id": 1}, {"_id": 2', { 'content-type': 'application/json' });
    expect(res.status).toBe(400);
    expect((await res.json()).error[0].message).toMatch(/truncated/);
    const wrongType = await post('/broken/:restore', 'x', { 'content-type': 'image/png' });
    expect(wrongType.status).toBe(415);
  });

  it('answers 404 for the dump of an unknown index, and 406 for an unknown Accept', async () => {
    expect((await post('/nope/:dump')).status).toBe(404);
    expect((await post('/twitter/:dump', undefined, { accept: 'image/png' })).status).toBe(406);
  });
});
