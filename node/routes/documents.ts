/**
 * A node's documents, as the API reaches them with nodes on their own hosts
 * (shared/cluster/remote-data.ts is the caller). The API coerces and validates every document
 * and changes the schema through the cluster's metadata first; a node only stores, reads,
 * rewrites and lists what its own shards hold. Bodies and answers are MessagePack (dates and
 * binary values survive, as they do in the store), a shard's documents a stream of them.
 *
 * A body is read up to nodeBodyLimit (4 × MAX_BODY_BYTES; 413 naming it beyond): RemoteData
 * sends a larger batch in parts.
 *
 * Every request names the index's uid; node/checks.ts refuses another index of that name and
 * a shard placed on another node.
 */
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { readBytes } from '../../api/body.ts';
import { applyChange, type DocumentChange } from '../../shared/cluster/data.ts';
import { nodeBodyLimit } from '../../shared/cluster/node-client.ts';
import { msgpackChunks, packValue, unpackValue } from '../../shared/dump/msgpack-stream.ts';
import { toWebStream } from '../../shared/dump/byte-streams.ts';
import { ValidationError } from '../../shared/errors.ts';
import { shardFor } from '../../shared/store/hash.ts';
import type { DocId, Document, IndexSchema } from '../../shared/store/schema.ts';
import type { IndexRecord } from '../../shared/store/store.ts';
import { assertPlacedHere, checked, indexHere, shardsHere } from '../checks.ts';
import type { NodeDeps } from '../deps.ts';

const MSGPACK = 'application/x-msgpack';

const docId = z.union([z.string(), z.number()]);
const document = z.looseObject({ _id: docId });
const bodies = {
  write: z.object({ uid: z.string(), docs: z.array(document) }),
  read: z.object({ uid: z.string(), id: docId }),
  rewrite: z.object({
    uid: z.string(),
    id: docId,
    schema: z.record(z.string(), z.unknown()),
    change: z.union([z.object({ replace: z.record(z.string(), z.unknown()) }), z.object({ merge: z.record(z.string(), z.unknown()) })]),
  }),
  list: z.object({ uid: z.string(), shards: z.array(z.number().int().min(0)), limit: z.number().int().min(1), after: docId.optional() }),
};

/** A MessagePack body of at most `limit` bytes, checked against `schema`. */
async function body<T>(c: Context, schema: z.ZodType<T>, limit: number): Promise<T> {
  const bytes = await readBytes(c, limit);
  let value: unknown;
  try {
    value = unpackValue(bytes);
  } catch (err) {
    throw new ValidationError(`the body is not MessagePack: ${(err as Error).message}`);
  }
  return checked(schema, value, `${c.req.method} ${c.req.path}`);
}

const answer = (value: unknown) => new Response(new Uint8Array(packValue(value)), { headers: { 'content-type': MSGPACK } });

export function documentRoutes({ store, node, config }: NodeDeps): Hono {
  const app = new Hono();
  const bodyLimit = nodeBodyLimit(config.maxBodyBytes);

  const indexOf = (name: string, uid: string): IndexRecord => indexHere(store, node, name, uid);
  const ownShard = (rec: IndexRecord, shard: number): void => assertPlacedHere(node, rec.placement[shard], `shard ${rec.name}/${shard}`);
  const ownDocument = (rec: IndexRecord, id: DocId): void => ownShard(rec, shardFor(id, rec.shards));

  // Documents the API coerced, each written into its shard as it is; answers which were new.
  app.post('/indexes/:index/documents', async (c) => {
    const { uid, docs } = await body(c, bodies.write, bodyLimit);
    const rec = indexOf(c.req.param('index'), uid);
    for (const doc of docs) ownDocument(rec, doc._id);
    return answer({ created: await store.writeDocuments(rec, docs as Document[]) });
  });

  app.post('/indexes/:index/document', async (c) => {
    const { uid, id } = await body(c, bodies.read, bodyLimit);
    const rec = indexOf(c.req.param('index'), uid);
    ownDocument(rec, id);
    return answer({ doc: store.readDoc(rec, id) });
  });

  app.post('/indexes/:index/document/delete', async (c) => {
    const { uid, id } = await body(c, bodies.read, bodyLimit);
    const rec = indexOf(c.req.param('index'), uid);
    ownDocument(rec, id);
    return answer({ deleted: await store.removeDocument(rec, id) });
  });

  // One attempt of a PUT/PATCH against the schema the API sent; a grown schema is the API's to commit.
  app.post('/indexes/:index/document/rewrite', async (c) => {
    const { uid, id, schema, change } = await body(c, bodies.rewrite, bodyLimit);
    const rec = indexOf(c.req.param('index'), uid);
    ownDocument(rec, id);
    const outcome = await store.rewriteDocument(rec, id, schema as IndexSchema, (current) => applyChange(current, change as DocumentChange));
    return answer({ outcome });
  });

  // The head of each listed shard's cursor listing; the API merges the nodes' answers.
  app.post('/indexes/:index/listing', async (c) => {
    const { uid, shards, limit, after } = await body(c, bodies.list, bodyLimit);
    const rec = indexOf(c.req.param('index'), uid);
    for (const shard of shards) ownShard(rec, shard);
    return answer({ docs: shards.flatMap((shard) => store.shardListing(rec, shard, { limit, after })) });
  });

  // Documents in each shard of the index this node holds.
  app.get('/indexes/:index/counts', (c) => {
    const rec = indexOf(c.req.param('index'), c.req.query('uid') ?? '');
    return c.json({ counts: Object.fromEntries(shardsHere(node, rec).map((shard) => [shard, store.shardCount(rec, shard)])) });
  });

  // Every document of one shard, streamed from one read transaction.
  app.get('/indexes/:index/shards/:shard/documents', (c) => {
    const rec = indexOf(c.req.param('index'), c.req.query('uid') ?? '');
    const shard = Number(c.req.param('shard'));
    ownShard(rec, shard);
    return new Response(toWebStream(msgpackChunks(store.shardDocuments(rec, shard), { exact: true })), { headers: { 'content-type': MSGPACK } });
  });

  return app;
}
