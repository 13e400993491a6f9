import { describe, expect, it } from 'vitest';
import { useTestApi } from '../support/api.ts';

const t = useTestApi();

describe('Xapiand flavour', () => {
  it('creates an index on its first document and types its fields', async () => {
    const put = await t.call('PUT', '/twitter/1', { user: 'Kronuz', postDate: '2016-11-15T13:12:00', message: 'Trying out Xapiand' });
    expect(put.status).toBe(201);
    expect(await put.json()).toEqual({ _id: 1, user: 'Kronuz', postDate: '2016-11-15T13:12:00.000Z', message: 'Trying out Xapiand' });
    const again = await t.call('PUT', '/twitter/1', { user: 'Kronuz', message: 'edited' });
    expect(again.status).toBe(200);
    const schema = await (await t.call('GET', '/twitter/:schema')).json();
    expect(schema).toMatchObject({ _id: { _type: 'integer' }, user: { _type: 'text' }, postDate: { _type: 'datetime' } });
    const got = await (await t.call('GET', '/twitter/1')).json();
    expect(got).toEqual({ _id: 1, user: 'Kronuz', message: 'edited' });
  });

  it('honours ?pretty', async () => {
    const res = await t.call('GET', '/twitter/1?pretty');
    expect(await res.text()).toBe(`${JSON.stringify({ _id: 1, user: 'Kronuz', message: 'edited' }, null, 2)}\n`);
  });

  it('sets a schema with a shard count, and refuses to change a field type', async () => {
    const res = await t.call('PUT', '/tweets/:schema', {
      _settings: { number_of_shards: 6 },
      _id: { _type: 'integer' }, user: { _type: 'keyword' }, postDate: { _type: 'datetime' },
    });
    expect(res.status).toBe(200);
    const info = await (await t.call('GET', '/tweets/:info')).json();
    expect(info.shards).toBe(6);
    expect(info.nodes).toEqual(['node-1', 'node-2', 'node-3']);
    const bad = await t.call('PUT', '/tweets/:schema', { postDate: { _type: 'text' } });
    expect(bad.status).toBe(422);
    expect(await bad.json()).toEqual({ error: [{ message: 'field postDate is datetime; its type cannot change to text' }] });
  });

  it('rejects a document that does not fit the schema with 422 naming the field', async () => {
    const res = await t.call('PUT', '/tweets/abc', { user: 'x' });
    expect(res.status).toBe(422);
    expect((await res.json()).error[0].message).toBe('field _id: expected an integer, got "abc"');
    const date = await t.call('PUT', '/tweets/2', { postDate: 'not a date' });
    expect(date.status).toBe(422);
    expect((await date.json()).error[0].message).toMatch(/^field postDate: expected a datetime/);
    expect((await t.call('GET', '/tweets/:info').then((r) => r.json())).docs).toBe(0);
  });

  it('accepts POST /{index}/ with an _id in the body, and GET/DELETE by id', async () => {
    const res = await t.call('POST', '/tweets/', { _id: 10, user: 'a', postDate: '2020-01-01T00:00:00Z' });
    expect(res.status).toBe(201);
    expect((await t.call('GET', '/tweets/10')).status).toBe(200);
    expect((await t.call('DELETE', '/tweets/10')).status).toBe(200);
    expect((await t.call('GET', '/tweets/10')).status).toBe(404);
    expect((await t.call('DELETE', '/tweets/10')).status).toBe(404);
  });

  it('stores a POST /{index}/ without an _id under a new one, as Xapiand does', async () => {
    const res = await t.call('POST', '/notes/', { text: 'no id given' });
    expect(res.status).toBe(201);
    const { _id: id } = (await res.json()) as { _id: string };
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(await (await t.call('GET', `/notes/${id}`)).json()).toMatchObject({ _id: id, text: 'no id given' });
    const other = (await (await t.call('POST', '/notes', { text: 'another' })).json()) as { _id: string };
    expect(other._id).not.toBe(id);
    expect((await t.call('GET', '/notes/:info').then((r) => r.json())).docs).toBe(2);
    // An index with integer ids gets no UUID: the _id must be given.
    const numbered = await t.call('POST', '/tweets/', { user: 'a', postDate: '2020-01-01T00:00:00Z' });
    expect(numbered.status).toBe(422);
    expect((await numbered.json()).error[0].message).toBe("field _id: index tweets has integer ids: give the document's _id (a new id, a UUID, is made only for uuid or keyword ids)");
  });

  it('reads and writes index metadata', async () => {
    expect((await t.call('PUT', '/tweets/:metadata/owner', { team: 'search' })).status).toBe(200);
    expect(await (await t.call('GET', '/tweets/:metadata/owner')).json()).toEqual({ team: 'search' });
    expect(await (await t.call('GET', '/tweets/:metadata/')).json()).toEqual({ owner: { team: 'search' } });
    expect((await t.call('GET', '/tweets/:metadata/missing')).status).toBe(404);
  });

  it('answers 4xx for unknown indexes, commands and bad names', async () => {
    expect((await t.call('GET', '/nope/1')).status).toBe(404);
    expect((await t.call('GET', '/nope/:info')).status).toBe(404);
    expect((await t.call('GET', '/twitter/:frobnicate')).status).toBe(400);
    expect((await t.call('PUT', '/..%2Fetc/1', { a: 1 })).status).toBe(422);
    expect((await t.call('PUT', '/.schemas/1', { a: 1 })).status).toBe(422);
  });

  it('deletes an index with its shards', async () => {
    const info = await (await t.call('GET', '/twitter/:info')).json();
    expect(info.docs).toBe(1);
    expect((await t.call('DELETE', '/twitter')).status).toBe(200);
    expect((await t.call('GET', '/twitter/:info')).status).toBe(404);
    expect((await t.call('DELETE', '/twitter')).status).toBe(404);
  });

  it('stores a foreign schema once in .schemas and shares it between indexes', async () => {
    const body = `{
      "_type": "foreign/object",
      "_endpoint": ".schemas/00000000-0000-1000-8000-010000000000",
      "_id": { "_type": "uuid", },
      "description": "Twitter Schema",
      "schema": {
        "_type": "object",
        "_id": { "_type": "integer", },
        "user": { "_type": "keyword" },
        "postDate": { "_type": "datetime" },
        "message": { "_type": "text" }
      },
    }`;
    expect((await t.call('PUT', '/new_twitter/:schema', body)).status).toBe(200);
    const shared = { _type: 'foreign/object', _endpoint: '.schemas/00000000-0000-1000-8000-010000000000' };
    expect((await t.call('PUT', '/other_twitter/:schema', shared)).status).toBe(200);
    for (const index of ['new_twitter', 'other_twitter']) {
      const res = await t.call('PUT', `/${index}/1`, { user: 'Kronuz', postDate: '2016-11-15T13:12:00', message: 'hi' });
      expect(res.status).toBe(201);
      expect(await res.json()).toEqual({ _id: 1, user: 'Kronuz', postDate: '2016-11-15T13:12:00.000Z', message: 'hi' });
      expect(await (await t.call('GET', `/${index}/:schema`)).json()).toMatchObject({ ...shared, _id: { _type: 'integer' }, user: { _type: 'keyword' } });
    }
    const missing = await t.call('PUT', '/third/:schema', { _type: 'foreign/object', _endpoint: '.schemas/11111111-0000-1000-8000-010000000000' });
    expect(missing.status).toBe(422);
    expect((await missing.json()).error[0].message).toMatch(/foreign schema \.schemas\/11111111-0000-1000-8000-010000000000 does not exist/);
    expect((await t.call('GET', '/third/:info')).status).toBe(404);
  });
});
