import { describe, expect, it } from 'vitest';
import { PIECE } from '../../api/json.ts';
import { useTestApi } from '../support/api.ts';

const t = useTestApi();

const ID1 = '00000000-0000-4000-8000-000000000001';

describe('Weaviate flavour', () => {
  it('creates a class with properties and a shard count, visible as an index too', async () => {
    const res = await t.call('POST', '/v1/schema', {
      class: 'article',
      properties: [
        { name: 'title', dataType: ['text'] },
        { name: 'slug', dataType: ['text'], tokenization: 'field' },
        { name: 'words', dataType: ['int'] },
        { name: 'published', dataType: ['date'] },
        { name: 'tags', dataType: ['text[]'] },
      ],
      shardingConfig: { desiredCount: 6 },
    });
    expect(res.status).toBe(200);
    const cls = await res.json();
    expect(cls.class).toBe('Article');
    expect(cls.shardingConfig.desiredCount).toBe(6);
    const text = { indexFilterable: true, indexSearchable: true, indexRangeFilters: false };
    const other = { indexFilterable: true, indexSearchable: false, indexRangeFilters: false };
    expect(cls.properties).toEqual([
      { name: 'title', dataType: ['text'], tokenization: 'word', ...text },
      { name: 'slug', dataType: ['text'], tokenization: 'field', ...text },
      { name: 'words', dataType: ['int'], ...other },
      { name: 'published', dataType: ['date'], ...other },
      { name: 'tags', dataType: ['text[]'], tokenization: 'word', ...text },
    ]);
    // What every Weaviate server returns with a class, saying what shardvault does: no vectors,
    // one copy of each shard, no virtual shards, no tenants.
    expect(cls).toMatchObject({
      vectorizer: 'none',
      vectorIndexType: 'hnsw',
      vectorIndexConfig: { skip: true },
      invertedIndexConfig: { bm25: { b: 0.75, k1: 1.2 }, cleanupIntervalSeconds: 60, stopwords: { preset: 'en' } },
      replicationConfig: { factor: 1 },
      multiTenancyConfig: { enabled: false },
      shardingConfig: { desiredCount: 6, actualCount: 6, virtualPerPhysical: 1, desiredVirtualCount: 6, actualVirtualCount: 6, function: 'fnv1a', key: '_id', strategy: 'hash' },
    });
    const schema = await (await t.call('GET', '/Article/:schema')).json();
    expect(schema).toMatchObject({ _id: { _type: 'uuid' }, slug: { _type: 'keyword' }, words: { _type: 'integer' }, published: { _type: 'datetime' } });
    expect((await (await t.call('GET', '/v1/schema')).json()).classes.map((c: { class: string }) => c.class)).toEqual(['Article']);
    expect((await t.call('GET', '/v1/schema/Article')).status).toBe(200);
  });

  it('refuses a class that exists or is invalid with 422', async () => {
    const again = await t.call('POST', '/v1/schema', { class: 'Article' });
    expect(again.status).toBe(422);
    expect((await again.json()).error[0].message).toBe('class name "Article" already exists');
    expect((await t.call('POST', '/v1/schema', { class: '1bad' })).status).toBe(422);
    const dt = await t.call('POST', '/v1/schema', { class: 'X', properties: [{ name: 'v', dataType: ['geoCoordinates'] }] });
    expect(dt.status).toBe(422);
    expect((await dt.json()).error[0].message).toMatch(/unsupported dataType "geoCoordinates"/);
  });

  it('stores objects, coerces them to the class, and reads them back', async () => {
    const res = await t.call('POST', '/v1/objects', { class: 'Article', id: ID1, properties: { title: 'Hello', words: '12', published: '2024-01-02T03:04:05Z' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ class: 'Article', id: ID1, properties: { title: 'Hello', words: 12, published: '2024-01-02T03:04:05.000Z' } });
    const got = await (await t.call('GET', `/v1/objects/Article/${ID1}`)).json();
    expect(got.properties.words).toBe(12);
    const bad = await t.call('POST', '/v1/objects', { class: 'Article', properties: { words: 'many' } });
    expect(bad.status).toBe(422);
    expect((await bad.json()).error[0].message).toBe('field words: expected an integer, got "many"');
    expect((await t.call('GET', '/v1/objects/Article/00000000-0000-4000-8000-0000000000ff')).status).toBe(404);
  });

  it('batches objects and reports per-object errors', async () => {
    const objects = Array.from({ length: 20 }, (_, i) => ({
      class: 'Article', id: `00000000-0000-4000-8000-${String(i + 100).padStart(12, '0')}`, properties: { title: `t${i}`, words: i },
    }));
    objects.push({ class: 'Article', id: '00000000-0000-4000-8000-999999999999', properties: { title: 'x', words: 'NaN' as unknown as number } });
    const res = await t.call('POST', '/v1/batch/objects', { objects });
    expect(res.status).toBe(200);
    const out = await res.json();
    expect(out).toHaveLength(21);
    expect(out.filter((o: { result: { errors?: unknown } }) => o.result.errors)).toHaveLength(1);
    expect(out[20].result.errors.error[0].message).toMatch(/field words/);
    // Every good object is stored, on every one of the class's six shards.
    const info = t.store.info('Article');
    expect(info.docs).toBe(21);
    expect(info.placement.every((p) => p.docs > 0)).toBe(true);
    expect(out[3]).toEqual({ class: 'Article', id: objects[3]!.id, properties: { title: 't3', words: 3 }, result: {} });
  });

  it('lists objects in id order with a cursor', async () => {
    const first = await (await t.call('GET', '/v1/objects?class=Article&limit=5')).json();
    expect(first.objects).toHaveLength(5);
    const ids = first.objects.map((o: { id: string }) => o.id);
    expect(ids).toEqual([...ids].sort());
    const next = await (await t.call('GET', `/v1/objects?class=Article&limit=100&after=${ids[4]}`)).json();
    expect(next.objects).toHaveLength(21 - 5);
    expect(next.objects[0].id > ids[4]).toBe(true);
    expect((await t.call('GET', '/v1/objects?limit=0')).status).toBe(422);
    expect((await t.call('GET', '/v1/objects?after=x')).status).toBe(422);
  });

  it('shows nodes with their shards and object counts', async () => {
    const { nodes } = await (await t.call('GET', '/v1/nodes')).json();
    expect(nodes.map((n: { name: string }) => n.name)).toEqual(['node-1', 'node-2', 'node-3']);
    for (const n of nodes) expect(n.shards).toHaveLength(2);
    expect(nodes.reduce((s: number, n: { stats: { objectCount: number } }) => s + n.stats.objectCount, 0)).toBe(21);
  });

  it('answers meta and health', async () => {
    expect((await (await t.call('GET', '/v1/meta')).json()).version).toMatch(/^\d+\.\d+\.\d+$/);
    expect((await t.call('GET', '/v1/.well-known/live')).status).toBe(200);
    expect((await t.call('GET', '/v1/.well-known/ready')).status).toBe(200);
  });

  it('deletes a class', async () => {
    expect((await t.call('DELETE', '/v1/schema/Article')).status).toBe(200);
    expect((await t.call('GET', '/v1/schema/Article')).status).toBe(404);
    expect((await t.call('GET', `/v1/objects/Article/${ID1}`)).status).toBe(404);
  });
});

describe('Weaviate objects: batch of several classes, replace, merge, delete, exists', () => {
  const NOTE = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

  it('answers each object of a mixed batch in its place, storing the good ones and naming what is wrong with the others', async () => {
    await t.call('POST', '/v1/schema', { class: 'Note', properties: [{ name: 'text', dataType: ['text'] }, { name: 'n', dataType: ['int'] }], shardingConfig: { desiredCount: 4 } });
    const objects: unknown[] = [];
    for (let i = 0; i < 200; i++) objects.push({ class: i % 2 ? 'Note' : 'Memo', id: NOTE(i), properties: { text: `t${i}`, n: i } });
    objects.splice(50, 0, { class: 'Note', id: 'not-a-uuid', properties: {} });
    objects.splice(100, 0, { class: 'bad name!', properties: {} });
    objects.splice(150, 0, 'not an object');
    const out = await (await t.call('POST', '/v1/batch/objects', { objects })).json();
    expect(out).toHaveLength(203);
    const failed = out.flatMap((o: { result: { errors?: { error: { message: string }[] } } }, i: number) => (o.result.errors ? [[i, o.result.errors.error[0]!.message]] : []));
    expect(failed).toEqual([
      [50, 'invalid object: id: id must be a uuid'],
      [100, expect.stringMatching(/^invalid index name "Bad name!"/)],
      [150, 'invalid object: body: Invalid input: expected object, received string'],
    ]);
    expect(out[0]).toEqual({ class: 'Memo', id: NOTE(0), properties: { text: 't0', n: 0 }, result: {} });
    // A class that did not exist is created, as Weaviate's auto-schema does.
    expect(t.store.info('Note').docs).toBe(100);
    expect(t.store.info('Note').placement.every((p) => p.docs > 0)).toBe(true);
    expect(t.store.info('Memo').docs).toBe(100);
  });

  it('takes a batch larger than a parsing piece as it takes a small one: escapes, non-ASCII text, trailing commas and malformed bodies alike', async () => {
    const text = (i: number) => `"quoted" \\ back\\slash, {[brackets]}: ü 日本 🚀 ${i} `.repeat(12);
    const objects: unknown[] = Array.from({ length: 200 }, (_, i) => ({ class: 'Letter', id: NOTE(1000 + i), properties: { text: text(i), n: i } }));
    objects.splice(120, 0, { class: 'Letter', id: 'not-a-uuid', properties: {} });
    const body = JSON.stringify({ objects, fields: ['ALL'] }, null, 1);
    expect(Buffer.byteLength(body)).toBeGreaterThan(PIECE);
    const res = await t.call('POST', '/v1/batch/objects', body);
    expect(res.status).toBe(200);
    const out = await res.json();
    expect(out).toHaveLength(201);
    expect(out[120].result.errors.error[0].message).toBe('invalid object: id: id must be a uuid');
    expect(out[199]).toEqual({ class: 'Letter', id: NOTE(1198), properties: { text: text(198), n: 198 }, result: {} });
    expect((await (await t.call('GET', `/v1/objects/Letter/${NOTE(1007)}`)).json()).properties.text).toBe(text(7));
    // Trailing commas, as the Xapiand routes accept them, and a body cut short.
    const lenient = await t.call('POST', '/v1/batch/objects', body.replace(/\n \]/, ',\n ]'));
    expect(lenient.status).toBe(200);
    expect(await lenient.json()).toEqual(out);
    const cut = await t.call('POST', '/v1/batch/objects', body.slice(0, -3));
    expect(cut.status).toBe(400);
    expect((await cut.json()).error[0].message).toMatch(/^malformed JSON body/);
  });

  it('writes a batch answer as JSON.stringify writes its objects, whatever the strings hold', async () => {
    // The answer is written from a template (api/routes/weaviate.ts): its text must be exactly JSON.stringify's.
    await t.call('POST', '/v1/schema', { class: 'Verbatim', properties: [{ name: 'text', dataType: ['text'] }, { name: 'n', dataType: ['int'] }, { name: 'when', dataType: ['date'] }, { name: 'tags', dataType: ['text[]'] }] });
    const texts = ['plain', 'a "quote"', 'back\\slash', 'line\nfeed\t\u0001', 'ü 日本 🚀', 'lone \ud800 surrogate', '\u2028\u2029', ''];
    const objects = texts.map((text, i) => ({
      class: 'Verbatim', id: NOTE(3000 + i), properties: { text, n: i, when: '2024-01-02T03:04:05Z', tags: [text], inner: { text, x: 1.5 } },
    }));
    const res = await t.call('POST', '/v1/batch/objects', { objects });
    expect(res.status).toBe(200);
    const stored = objects.map((o) => ({ ...o, properties: { ...o.properties, when: '2024-01-02T03:04:05.000Z' }, result: {} }));
    expect(await res.text()).toBe(JSON.stringify(stored));
  });

  it('replaces with PUT, merges with PATCH, answers HEAD and deletes with DELETE, as Weaviate does', async () => {
    const put = await t.call('PUT', `/v1/objects/Note/${NOTE(1)}`, { class: 'Note', id: NOTE(1), properties: { text: 'replaced' } });
    expect(put.status).toBe(200);
    expect(await put.json()).toEqual({ class: 'Note', id: NOTE(1), properties: { text: 'replaced' } });
    expect((await (await t.call('GET', `/v1/objects/Note/${NOTE(1)}`)).json()).properties).toEqual({ text: 'replaced' });

    const patch = await t.call('PATCH', `/v1/objects/Note/${NOTE(3)}`, { class: 'Note', properties: { n: 33, extra: 'new field' } });
    expect(patch.status).toBe(204);
    expect((await (await t.call('GET', `/v1/objects/Note/${NOTE(3)}`)).json()).properties).toEqual({ text: 't3', n: 33, extra: 'new field' });
    expect((await (await t.call('GET', '/v1/schema/Note')).json()).properties.map((p: { name: string }) => p.name)).toContain('extra');
    const badPatch = await t.call('PATCH', `/v1/objects/Note/${NOTE(3)}`, { class: 'Note', properties: { n: 'many' } });
    expect(badPatch.status).toBe(422);
    expect((await (await t.call('GET', `/v1/objects/Note/${NOTE(3)}`)).json()).properties.n).toBe(33);

    expect((await t.call('HEAD', `/v1/objects/Note/${NOTE(5)}`)).status).toBe(204);
    expect((await t.call('DELETE', `/v1/objects/Note/${NOTE(5)}`)).status).toBe(204);
    expect((await t.call('HEAD', `/v1/objects/Note/${NOTE(5)}`)).status).toBe(404);
    expect((await t.call('GET', `/v1/objects/Note/${NOTE(5)}`)).status).toBe(404);
    expect((await t.call('DELETE', `/v1/objects/Note/${NOTE(5)}`)).status).toBe(404);
    expect((await t.call('HEAD', `/v1/objects/Nothing/${NOTE(5)}`)).status).toBe(404);

    // Nothing to replace or merge: 404, and nothing is created.
    for (const method of ['PUT', 'PATCH']) {
      const res = await t.call(method, `/v1/objects/Note/${NOTE(5)}`, { class: 'Note', properties: { text: 'x' } });
      expect(res.status, method).toBe(404);
    }
    expect((await t.call('HEAD', `/v1/objects/Note/${NOTE(5)}`)).status).toBe(404);
    // The body may not name another object than the path.
    const other = await t.call('PUT', `/v1/objects/Note/${NOTE(1)}`, { class: 'Note', id: NOTE(7), properties: {} });
    expect(other.status).toBe(422);
    expect((await other.json()).error[0].message).toMatch(/differs from the id in the path/);
  });

  it('lists a whole class with the cursor, page by page, in id order', async () => {
    const seen: string[] = [];
    let after = '';
    for (;;) {
      const page = await (await t.call('GET', `/v1/objects?class=Note&limit=7${after ? `&after=${after}` : ''}`)).json();
      if (page.objects.length === 0) break;
      seen.push(...page.objects.map((o: { id: string }) => o.id));
      after = seen.at(-1)!;
    }
    expect(seen).toHaveLength(99);
    expect(seen).toEqual([...seen].sort());
    expect(new Set(seen).size).toBe(99);
  });
});
