/** Weaviate's data endpoints: schema (classes), objects, batch, meta, nodes, health. */
import { Hono, type Context } from 'hono';
import { NotFoundError, ValidationError } from '../../shared/errors.ts';
import {
  BATCH_BODY_MESSAGE, batchObjectsSchema, classOf, mergeObject, objectOf, parseClass, putObject, putObjects, replaceObject, resolveClass,
} from '../../shared/weaviate.ts';
import type { Document } from '../../shared/store/schema.ts';
import { readJson } from '../body.ts';
import { jsonArrayBytes } from '../json.ts';
import type { ApiDeps } from '../deps.ts';
import { reply } from '../reply.ts';

/**
 * The Weaviate API level shardvault implements, as `/v1/meta` and `/v1/nodes` report it:
 * its backup API (create, status, restore, cancel, list; CompressionLevel, CPUPercentage,
 * Bucket, Path), schema and REST objects. 1.27.0 is also the oldest level Weaviate's current
 * clients connect to.
 */
export const VERSION = '1.27.0';

/** Characters JSON.stringify escapes in a string, and every surrogate (it escapes lone ones). */
const ESCAPED = /["\\\u0000-\u001f\ud800-\udfff]/;

/**
 * JSON.stringify(value), but a string in which ESCAPED finds nothing is quoted as it is: with
 * Node 20's JSON.stringify, that wrote a batch's answer (its text, then its bytes) in 60 % of
 * the time, the properties being mostly long strings.
 */
function jsonValue(value: unknown): string | undefined {
  return typeof value === 'string' && !ESCAPED.test(value) ? `"${value}"` : JSON.stringify(value);
}

/**
 * `{...objectOf(cls, doc), result: {}}` as JSON, written member by member from the stored
 * document: a batch answers a thousand of these, and the two copies of each document that
 * object made were garbage the collector paid for. A document coerced from a JSON body holds
 * only JSON values and Dates, which JSON.stringify writes as toJson does, so jsonReady has
 * nothing to convert.
 */
function batchResultJson(cls: string, doc: Document): string {
  let text = `{"class":${jsonValue(cls)},"id":${jsonValue(doc._id)},"properties":{`;
  let first = true;
  for (const key of Object.keys(doc)) {
    if (key === '_id') continue;
    const value = jsonValue(doc[key]);
    // undefined, a function, a symbol: left out, as JSON.stringify leaves them out.
    if (value === undefined) continue;
    text += `${first ? '' : ','}${jsonValue(key)}:${value}`;
    first = false;
  }
  return `${text}},"result":{}}`;
}

export function weaviateRoutes({ data, config, redis }: ApiDeps): Hono {
  const app = new Hono();

  app.get('/.well-known/live', (c) => c.body(null, 200));
  app.get('/.well-known/ready', async (c) => {
    const timeout = new Promise<boolean>((resolve) => setTimeout(resolve, 1000, false).unref());
    const redisOk = await Promise.race([redis.ping().then(() => true, () => false), timeout]);
    const dataOk = await data.healthy();
    return c.body(null, redisOk && dataOk ? 200 : 503);
  });

  app.get('/meta', (c) => reply(c, { hostname: `http://${config.host}:${config.port}`, version: VERSION, modules: {} }));

  app.get('/nodes', async (c) => {
    const nodes = (await data.nodes()).map((n) => {
      const shards = n.shards.map((s) => ({ name: `${s.index}-${s.shard}`, class: s.index, shard: s.shard, objectCount: s.docs, loaded: !s.lost }));
      return {
        name: n.name,
        status: n.status,
        version: VERSION,
        stats: { shardCount: shards.length, objectCount: shards.reduce((sum, s) => sum + s.objectCount, 0) },
        shards,
      };
    });
    return reply(c, { nodes });
  });

  app.get('/schema', async (c) => reply(c, { classes: await Promise.all((await data.listIndexes()).map((rec) => classOf(data, rec))) }));

  app.post('/schema', async (c) => {
    const cls = parseClass(await readJson(c, config.maxBodyBytes));
    if (await data.getIndex(cls.name)) throw new ValidationError(`class name ${JSON.stringify(cls.name)} already exists`);
    const rec = await data.createIndex(cls.name, { shards: cls.shards, schema: cls.schema });
    return reply(c, await classOf(data, rec));
  });

  app.get('/schema/:class', async (c) => {
    const rec = await data.getIndex(await resolveClass(data, c.req.param('class')));
    if (!rec) throw new NotFoundError(`class ${JSON.stringify(c.req.param('class'))} not found`);
    return reply(c, await classOf(data, rec));
  });

  app.delete('/schema/:class', async (c) => {
    const name = await resolveClass(data, c.req.param('class'));
    if (await data.getIndex(name)) await data.deleteIndex(name);
    return c.body(null, 200);
  });

  app.post('/objects', async (c) => reply(c, await putObject(data, await readJson(c, config.maxBodyBytes))));

  app.post('/batch/objects', async (c) => {
    const body = batchObjectsSchema.safeParse(await readJson(c, config.maxBodyBytes));
    if (!body.success) throw new ValidationError(BATCH_BODY_MESSAGE);
    const outcomes = await putObjects(data, body.data.objects);
    const answer = jsonArrayBytes(
      outcomes.map((o, i) => {
        if (o.ok) return batchResultJson(o.class, o.doc);
        const sent = body.data.objects[i];
        return JSON.stringify({ ...(typeof sent === 'object' && sent ? sent : {}), result: { errors: { error: [{ message: o.error.message }] } } });
      }),
    );
    // ?pretty is for a person reading the answer: it pays for parsing it again to indent it.
    if (c.req.query('pretty') !== undefined) return reply(c, JSON.parse(answer.toString()));
    return c.body(answer, 200, { 'content-type': 'application/json; charset=utf-8' });
  });

  const objectPath = (c: Context) => ({ class: c.req.param('class')!, id: c.req.param('id')! });
  // Hono answers HEAD with the GET route; Weaviate's HEAD answers 204 or 404 with no body.
  app.get('/objects/:class/:id', async (c) => {
    const name = await resolveClass(data, c.req.param('class'));
    if (c.req.method === 'HEAD') return c.body(null, (await data.getIndex(name)) && (await data.hasDocument(name, c.req.param('id'))) ? 204 : 404);
    return reply(c, objectOf(name, await data.getDocument(name, c.req.param('id'))));
  });
  app.put('/objects/:class/:id', async (c) => reply(c, await replaceObject(data, objectPath(c), await readJson(c, config.maxBodyBytes))));
  app.patch('/objects/:class/:id', async (c) => {
    await mergeObject(data, objectPath(c), await readJson(c, config.maxBodyBytes));
    return c.body(null, 204);
  });
  app.delete('/objects/:class/:id', async (c) => {
    const name = await resolveClass(data, c.req.param('class'));
    await data.deleteDocument(name, c.req.param('id'));
    return c.body(null, 204);
  });

  app.get('/objects', async (c) => {
    const limitRaw = c.req.query('limit') ?? '25';
    const limit = Number(limitRaw);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new ValidationError(`limit must be an integer from 1 to 10000, got ${JSON.stringify(limitRaw)}`);
    const cls = c.req.query('class');
    const after = c.req.query('after');
    if (after !== undefined && !cls) throw new ValidationError('after requires class');
    const classes = cls ? [await resolveClass(data, cls)] : (await data.listIndexes()).map((r) => r.name);
    const objects = [];
    for (const name of classes) {
      if (objects.length >= limit) break;
      for (const doc of await data.listDocuments(name, { limit: limit - objects.length, after })) objects.push(objectOf(name, doc));
    }
    return reply(c, { objects, totalResults: objects.length });
  });

  return app;
}

