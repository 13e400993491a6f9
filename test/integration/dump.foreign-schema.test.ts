/**
 * "Restore using different schema" from Xapiand's backups page, as written there: a
 * foreign/object schema (trailing commas included) for new_twitter, then the tweets restored
 * into it come back typed by that schema, which lives once in `.schemas` and can be shared.
 */
import { describe, expect, it } from 'vitest';
import { useTestApi } from '../support/api.ts';
import { SEED_TWEETS } from '../support/xapiand-seed.ts';

const t = useTestApi();

/** The seed's `PUT /new_twitter/:schema` body, byte for byte (its trailing commas too). */
const SEED_SCHEMA = `{
  "_type": "foreign/object",
  "_endpoint": ".schemas/00000000-0000-1000-8000-010000000000",
  "_id": {
    "_type": "uuid",
  },
  "description": "Twitter Schema",
  "schema": {
    "_type": "object",
    "_id": {
      "_type": "integer",
    },
    "user": {
      "_type": "keyword"
    },
    "postDate": {
      "_type": "datetime"
    },
    "message": {
      "_type": "text"
    }
  },
}`;

const SCHEMA_ID = '00000000-0000-1000-8000-010000000000';

function request(method: string, path: string, body?: string): Promise<Response> {
  return Promise.resolve(t.api.app.request(path, { method, body, headers: { 'content-type': 'application/json' } }));
}

describe('restore using a different (foreign) schema', () => {
  it('PUT /new_twitter/:schema with the seed body, then POST /new_twitter/:restore types the tweets by it', async () => {
    const put = await request('PUT', '/new_twitter/:schema', SEED_SCHEMA);
    expect(put.status).toBe(200);

    const restore = await request('POST', '/new_twitter/:restore?pretty', SEED_TWEETS);
    expect(restore.status).toBe(200);
    expect(await restore.json()).toEqual({ processed: 2, indexed: 2, total: 2, items: [] });

    const schema = await (await request('GET', '/new_twitter/:schema')).json();
    expect(schema).toEqual({
      _type: 'foreign/object',
      _endpoint: `.schemas/${SCHEMA_ID}`,
      _id: { _type: 'integer' },
      user: { _type: 'keyword' },
      postDate: { _type: 'datetime' },
      message: { _type: 'text' },
    });
    const tweet = await (await request('GET', '/new_twitter/1')).json();
    expect(tweet).toEqual({
      _id: 1,
      user: 'Kronuz',
      postDate: '2016-11-15T13:12:00.000Z',
      message: 'Trying out Xapiand, so far, so good... so what!',
    });
    // Stored typed: a Date for the datetime, a number for the integer _id.
    const stored = t.store.getDocument('new_twitter', 2);
    expect(stored.postDate).toBeInstanceOf(Date);
    expect(stored._id).toBe(2);
  });

  it('stores the schema once in .schemas, where another index shares it', async () => {
    const holder = t.store.getDocument('.schemas', SCHEMA_ID);
    expect(holder).toMatchObject({ _id: SCHEMA_ID, description: 'Twitter Schema', schema: { user: { _type: 'keyword' } } });

    const share = await request('PUT', '/other_twitter/:schema', JSON.stringify({ _type: 'foreign/object', _endpoint: `.schemas/${SCHEMA_ID}` }));
    expect(share.status).toBe(200);
    const restore = await request('POST', '/other_twitter/:restore', SEED_TWEETS);
    expect(await restore.json()).toEqual({ processed: 2, indexed: 2, total: 2, items: [] });
    expect((await (await request('GET', '/other_twitter/:schema')).json()).user).toEqual({ _type: 'keyword' });
    expect(t.store.info('.schemas').docs).toBe(1);
  });

  it('refuses a tweet whose _id the foreign schema types as integer, keeping the others', async () => {
    const res = await request('POST', '/new_twitter/:restore', '[{"_id": "abc", "user": "x"}, {"_id": 3, "user": "y"}]');
    const answer = await res.json();
    expect(answer).toMatchObject({ processed: 2, indexed: 1, total: 3 });
    expect(answer.items).toEqual([{ index: 'new_twitter', position: 0, _id: 'abc', status: 422, error: expect.stringMatching(/_id: expected an integer/) }]);
  });
});
