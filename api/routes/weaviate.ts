/** Weaviate's data endpoints: schema (classes), objects, batch, meta, nodes, health. */
import { Hono } from 'hono';
import { NotFoundError, ValidationError } from '../../shared/errors.ts';
import { BATCH_BODY_MESSAGE, batchObjectsSchema, classOf, objectOf, parseClass, putObject, resolveClass } from '../../shared/weaviate.ts';
import { readJson } from '../body.ts';
import type { ApiDeps } from '../deps.ts';
import { reply } from '../reply.ts';

/**
 * The Weaviate API level shardvault implements, as `/v1/meta` and `/v1/nodes` report it:
 * its backup API (create, status, restore, cancel, list; CompressionLevel, CPUPercentage,
 * Bucket, Path), schema and REST objects. 1.27.0 is also the oldest level Weaviate's current
 * clients connect to.
 */
export const VERSION = '1.27.0';

export function weaviateRoutes({ store, config, redis }: ApiDeps): Hono {
  const app = new Hono();

  app.get('/.well-known/live', (c) => c.body(null, 200));
  app.get('/.well-known/ready', async (c) => {
    const timeout = new Promise<boolean>((resolve) => setTimeout(resolve, 1000, false).unref());
    const redisOk = await Promise.race([redis.ping().then(() => true, () => false), timeout]);
    const dataOk = await store.healthy();
    return c.body(null, redisOk && dataOk ? 200 : 503);
  });

  app.get('/meta', (c) => reply(c, { hostname: `http://${config.host}:${config.port}`, version: VERSION, modules: {} }));

  app.get('/nodes', (c) => {
    const indexes = store.listIndexes().map((rec) => store.info(rec.name));
    const nodes = config.nodes.map((name) => {
      const shards = indexes.flatMap((i) =>
        i.placement.filter((p) => p.node === name).map((p) => ({ name: `${i.name}-${p.shard}`, class: i.name, shard: p.shard, objectCount: p.docs })),
      );
      return {
        name,
        status: 'HEALTHY',
        version: VERSION,
        stats: { shardCount: shards.length, objectCount: shards.reduce((n, s) => n + s.objectCount, 0) },
        shards,
      };
    });
    return reply(c, { nodes });
  });

  app.get('/schema', (c) => reply(c, { classes: store.listIndexes().map((rec) => classOf(store, rec)) }));

  app.post('/schema', async (c) => {
    const cls = parseClass(await readJson(c, config.maxBodyBytes));
    if (store.getIndex(cls.name)) throw new ValidationError(`class name ${JSON.stringify(cls.name)} already exists`);
    const rec = await store.createIndex(cls.name, { shards: cls.shards, schema: cls.schema });
    return reply(c, classOf(store, rec));
  });

  app.get('/schema/:class', (c) => {
    const rec = store.getIndex(resolveClass(store, c.req.param('class')));
    if (!rec) throw new NotFoundError(`class ${JSON.stringify(c.req.param('class'))} not found`);
    return reply(c, classOf(store, rec));
  });

  app.delete('/schema/:class', async (c) => {
    const name = resolveClass(store, c.req.param('class'));
    if (store.getIndex(name)) await store.deleteIndex(name);
    return c.body(null, 200);
  });

  app.post('/objects', async (c) => reply(c, await putObject(store, await readJson(c, config.maxBodyBytes))));

  app.post('/batch/objects', async (c) => {
    const body = batchObjectsSchema.safeParse(await readJson(c, config.maxBodyBytes));
    if (!body.success) throw new ValidationError(BATCH_BODY_MESSAGE);
    const results = [];
    for (const o of body.data.objects) {
      try {
        results.push({ ...(await putObject(store, o)), result: {} });
      } catch (err) {
        if (!(err instanceof ValidationError || err instanceof NotFoundError)) throw err;
        results.push({ ...(typeof o === 'object' && o ? o : {}), result: { errors: { error: [{ message: err.message }] } } });
      }
    }
    return reply(c, results);
  });

  app.get('/objects/:class/:id', (c) => {
    const name = resolveClass(store, c.req.param('class'));
    return reply(c, objectOf(name, store.getDocument(name, c.req.param('id'))));
  });

  app.get('/objects', (c) => {
    const limitRaw = c.req.query('limit') ?? '25';
    const limit = Number(limitRaw);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new ValidationError(`limit must be an integer from 1 to 10000, got ${JSON.stringify(limitRaw)}`);
    const cls = c.req.query('class');
    const after = c.req.query('after');
    if (after !== undefined && !cls) throw new ValidationError('after requires class');
    const classes = cls ? [resolveClass(store, cls)] : store.listIndexes().map((r) => r.name);
    const objects = [];
    for (const name of classes) {
      if (objects.length >= limit) break;
      for (const doc of store.listDocuments(name, { limit: limit - objects.length, after })) objects.push(objectOf(name, doc));
    }
    return reply(c, { objects, totalResults: objects.length });
  });

  return app;
}

