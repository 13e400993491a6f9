/**
 * Xapiand's index and document endpoints. Commands are literal `:name` path segments
 * (`/twitter/:schema`); Hono sees them as a parameter constrained by a regular expression.
 */
import { randomUUID } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { BadRequestError, NotFoundError, ValidationError } from '../../shared/errors.ts';
import { assertIndexName } from '../../shared/store/store.ts';
import { readJson } from '../body.ts';
import type { ApiDeps } from '../deps.ts';
import { reply } from '../reply.ts';

/**
 * The body of PUT /{index}/:schema: `{_schema?, _settings?: {number_of_shards?}}`; without
 * `_schema`, the body's other keys are the schema.
 */
export const schemaBodySchema = z.looseObject(
  {
    _schema: z.unknown().optional().meta({ description: 'the schema; when absent, the other keys of the body are the schema' }),
    _settings: z
      .looseObject(
        {
          number_of_shards: z
            .int({ error: (iss) => `_settings.number_of_shards must be an integer, got ${JSON.stringify(iss.input)}` })
            .optional(),
        },
        { error: '_settings must be a JSON object' },
      )
      .optional(),
  },
  { error: 'schema must be a JSON object' },
);

/** A document body (PUT /{index}/{id}, POST /{index}/); its fields are checked against the index schema. */
export const documentBodySchema = z.record(z.string(), z.unknown(), { error: 'a document must be a JSON object' });

/**
 * Check a body with a schema whose messages are complete sentences; answers the body itself
 * (these schemas transform nothing, and the body keeps every key exactly as sent).
 */
function checked<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new ValidationError(parsed.error.issues[0]!.message);
  return body as T;
}

function settingsOf(body: unknown): { schema: unknown; shards?: number } {
  const { _schema, _settings, ...rest } = checked(schemaBodySchema, body);
  return { schema: _schema ?? rest, shards: _settings?.number_of_shards };
}

/** A path id; ids that look like commands are refused so a typo is not stored as a document. */
function docId(c: Context): string {
  const id = c.req.param('id')!;
  if (id.startsWith(':')) throw new BadRequestError(`unknown command ${JSON.stringify(id)}`);
  return id;
}

/** The `{index}` path parameter, refused (422) unless it is a valid index name. */
export function indexName(c: Context): string {
  const name = c.req.param('index')!;
  assertIndexName(name);
  return name;
}

export function xapiandRoutes({ data, config }: ApiDeps): Hono {
  const app = new Hono();
  const body = (c: Context) => readJson(c, config.maxBodyBytes);

  app.put('/:index/:cmd{:schema}', async (c) => {
    const name = indexName(c);
    const { schema, shards } = settingsOf(await body(c));
    await data.putSchema(name, schema, { shards });
    return reply(c, await data.describeSchema(name));
  });
  app.get('/:index/:cmd{:schema}', async (c) => reply(c, await data.describeSchema(indexName(c))));

  app.get('/:index/:cmd{:info}', async (c) => reply(c, await data.info(indexName(c))));

  app.get('/:index/:cmd{:metadata}/', async (c) => reply(c, await data.listMetadata(indexName(c))));
  app.get('/:index/:cmd{:metadata}', async (c) => reply(c, await data.listMetadata(indexName(c))));
  app.get('/:index/:cmd{:metadata}/:key', async (c) => reply(c, await data.getMetadata(indexName(c), c.req.param('key'))));
  app.put('/:index/:cmd{:metadata}/:key', async (c) => {
    const value = await body(c);
    if (value === undefined) throw new ValidationError('metadata value is missing: send a JSON value');
    await data.putMetadata(indexName(c), c.req.param('key'), value);
    return reply(c, value);
  });

  // Xapiand's POST stores a document under a new id (a UUID) unless the body names its _id; an
  // index whose ids are numbers or dates needs the _id given.
  const newId = async (name: string): Promise<string> => {
    const idType = await data.describeSchema(name).then(
      (schema) => (schema._id as { _type?: string } | undefined)?._type,
      (err: unknown) => {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      },
    );
    if (idType !== undefined && idType !== 'uuid' && idType !== 'keyword' && idType !== 'text') {
      throw new ValidationError(`field _id: index ${name} has ${idType} ids: give the document's _id (a new id, a UUID, is made only for uuid or keyword ids)`);
    }
    return randomUUID();
  };
  const create = async (c: Context) => {
    const name = indexName(c);
    const given = checked(documentBodySchema, await body(c));
    const doc = given._id === undefined || given._id === null || given._id === '' ? { ...given, _id: await newId(name) } : given;
    const { doc: stored, created } = await data.putDocument(name, doc);
    return reply(c, stored, created ? 201 : 200);
  };
  app.post('/:index/', create);
  app.post('/:index', create);

  app.put('/:index/:id', async (c) => {
    const name = indexName(c);
    const doc = checked(documentBodySchema, await body(c));
    const { doc: stored, created } = await data.putDocument(name, { ...doc, _id: docId(c) });
    return reply(c, stored, created ? 201 : 200);
  });
  app.get('/:index/:id', async (c) => reply(c, await data.getDocument(indexName(c), docId(c))));
  app.delete('/:index/:id', async (c) => {
    const name = indexName(c);
    const id = docId(c);
    await data.deleteDocument(name, id);
    return reply(c, { _id: await data.parseId(name, id), result: 'deleted' });
  });

  const drop = async (c: Context) => {
    const name = indexName(c);
    await data.deleteIndex(name);
    return reply(c, { index: name, result: 'deleted' });
  };
  app.delete('/:index/', drop);
  app.delete('/:index', drop);

  return app;
}
