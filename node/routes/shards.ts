/**
 * A node's side of ShardHost (shared/cluster/shard-host.ts): what the workers ask of the
 * shards this node holds. Everything streams: a snapshot is sent as the node reads it from the
 * shard's file, and a restored shard is written to staging as it arrives, so no shard is ever held in
 * memory.
 *
 * - `GET /indexes/:index/shards/:shard/lineage?uid=` — `{lineage}`: which file the shard's
 *   environment is (see ShardSnapshot's `origin`), to find its latest snapshot in a repository.
 * - `GET /indexes/:index/shards/:shard/snapshot?uid=[&lineage=&since=&chunk=&every=]` — a
 *   consistent snapshot of one shard, its bytes, documents, lineage and generation in the
 *   SNAPSHOT_*_HEADERs; the node holds the snapshot's pages until the response ends or the
 *   worker goes away. Asked against a base (the latest snapshot of that lineage, at generation
 *   `since`) and of that lineage still, the body starts with the byte ranges unchanged since
 *   (SNAPSHOT_UNCHANGED_HEADER: their bytes, encodeRanges) and leaves out their chunks but every
 *   `every`-th (allButEvery): an incremental backup moves only what changed, and a sample.
 * - `PUT /restores/:backend/:id/shards/:index/:shard?node=&kind=file|dump` — one restored shard
 *   into staging (`{docs}`); an upload cut off or failing leaves nothing of its own staged.
 * - `POST /restores/:backend/:id/prepare|publish|abort` with `{node, shards:[{index, shard}]}`
 *   — the steps of a restore's commit, each repeatable (worker/commit-restore.ts).
 *
 * A node serves only its own shards (node/checks.ts): a snapshot of a shard placed elsewhere,
 * or a restore step meant for another node (`node`), is refused naming both nodes.
 */
import { pipeline } from 'node:stream/promises';
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { readJson } from '../../api/body.ts';
import { assertBackupId } from '../../shared/backups/validate.ts';
import {
  encodeRanges,
  LocalShardHost,
  SNAPSHOT_DOCS_HEADER,
  SNAPSHOT_GENERATION_HEADER,
  SNAPSHOT_LINEAGE_HEADER,
  SNAPSHOT_SIZE_HEADER,
  SNAPSHOT_UNCHANGED_HEADER,
  snapshotBaseSchema,
  type RestoreShard,
  type SnapshotBase,
  type StagedKind,
} from '../../shared/cluster/shard-host.ts';
import { allButEvery, rangesWithin } from '../../shared/formats/ranges.ts';
import { BadRequestError, NotFoundError, ValidationError } from '../../shared/errors.ts';
import { operationRefSchema, type OperationRef } from '../../shared/jobs/operation.ts';
import { shardLineage } from '../../shared/store/shard-files.ts';
import { assertIndexName } from '../../shared/store/store.ts';
import { assertPlacedHere, checked, indexHere } from '../checks.ts';
import type { NodeDeps } from '../deps.ts';

const STAGED_KINDS: readonly StagedKind[] = ['file', 'dump'];

export function shardRoutes(deps: NodeDeps): Hono<{ Bindings: HttpBindings }> {
  const { store, node, config, logger } = deps;
  const host = new LocalShardHost(store);
  // Snapshots and restored shards go straight between the socket and the shard's file through
  // Node's own request and response (a node is always served by @hono/node-server): they are
  // most of the bytes a node moves, and a web stream in between costs about twice the CPU per byte.
  const app = new Hono<{ Bindings: HttpBindings }>();

  const assertHere = (placed: string | undefined, what: string) => assertPlacedHere(node, placed, what);

  /** The shard a snapshot path names, when it is this node's to serve. */
  const shardHere = (c: Context) => {
    const index = indexOf(c.req.param('index') ?? '');
    const shard = shardOf(c.req.param('shard') ?? '');
    const uid = c.req.query('uid');
    if (!uid) throw new BadRequestError('query parameter uid is required: the uid of the index being backed up');
    const rec = indexHere(store, node, index, uid);
    if (shard >= rec.shards) throw new NotFoundError(`index ${index} has ${rec.shards} shards, not shard ${shard}`);
    assertHere(rec.placement[shard], `shard ${index}/${shard}`);
    return { rec, index, shard };
  };

  app.get('/indexes/:index/shards/:shard/lineage', async (c) => {
    const { rec, shard } = shardHere(c);
    return c.json({ lineage: await shardLineage(store, rec, shard) });
  });

  app.get('/indexes/:index/shards/:shard/snapshot', async (c) => {
    const { rec, index, shard } = shardHere(c);
    const base = baseOf(c);
    const copy = await host.snapshot(rec, shard);
    // Against a base of this very file: the pages unchanged since, left out but for a sample.
    const unchanged = base && copy.local && copy.origin?.lineage === base.lineage ? wholeChunks(rangesWithin(await copy.local.unchangedSince(base.generation), 0, copy.size), base.chunk) : [];
    const leave = base ? allButEvery(unchanged, base.chunk, base.every) : [];
    const left = leave.reduce((sum, n, i) => (i % 2 ? sum + n : sum), 0);
    const account = unchanged.length ? encodeRanges(unchanged) : undefined;
    const stream = copy.stream(leave);
    // 'close' comes when the stream ends and when the response is cut (the worker gone).
    stream.once('close', () => void copy.release().catch((err: Error) => logger.warn({ index, shard, err: err.message }, 'releasing a snapshot')));
    const { outgoing } = c.env;
    outgoing.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': String((account?.length ?? 0) + copy.size - left),
      [SNAPSHOT_SIZE_HEADER]: String(copy.size),
      [SNAPSHOT_DOCS_HEADER]: String(copy.docs),
      ...(copy.origin ? { [SNAPSHOT_LINEAGE_HEADER]: copy.origin.lineage, [SNAPSHOT_GENERATION_HEADER]: copy.origin.generation } : {}),
      ...(account ? { [SNAPSHOT_UNCHANGED_HEADER]: String(account.length) } : {}),
    });
    if (account) outgoing.write(account);
    pipeline(stream, outgoing).catch((err: Error) => logger.debug({ index, shard, err: err.message }, 'a snapshot was not sent whole'));
    return RESPONSE_ALREADY_SENT;
  });

  const stagedRef = (c: Context) => {
    const restore = restoreOf(c);
    const index = indexOf(c.req.param('index') ?? '');
    const shard = shardOf(c.req.param('shard') ?? '');
    assertHere(c.req.query('node'), `restored shard ${index}/${shard}`);
    return { restore, node, index, shard };
  };

  app.put('/restores/:backend/:id/shards/:index/:shard', async (c) => {
    const ref = stagedRef(c);
    const kind = c.req.query('kind') as StagedKind;
    if (!STAGED_KINDS.includes(kind)) throw new BadRequestError(`query parameter kind must be one of ${STAGED_KINDS.join(', ')}, got ${JSON.stringify(kind ?? null)}`);
    const { incoming, outgoing } = c.env;
    if (incoming.headers['content-length'] === '0') throw new BadRequestError(`restored shard ${ref.index}/${ref.shard} has no body`);
    // A worker that goes away before the answer stops the staging.
    const gone = new AbortController();
    outgoing.once('close', () => {
      if (!outgoing.writableFinished) gone.abort(new Error('the worker closed the connection'));
    });
    const docs = await host.stage(ref, kind, incoming, gone.signal);
    return c.json({ docs });
  });

  for (const step of ['prepare', 'publish', 'abort'] as const) {
    app.post(`/restores/:backend/:id/${step}`, async (c) => {
      const restore = restoreOf(c);
      const { node: meant, shards } = stepBody(await readJson(c, config.maxBodyBytes), step);
      assertHere(meant, `the ${step} of restore ${restore.backend}/${restore.id}`);
      await host[step](node, restore, shards);
      return c.json({});
    });
  }

  return app;
}

/**
 * The base a snapshot is asked for against (`lineage`, `since`: its generation, `chunk`, `every`),
 * or none when the query names none.
 */
function baseOf(c: Context): SnapshotBase | undefined {
  const { lineage, since, chunk, every } = c.req.query();
  if (lineage === undefined && since === undefined) return undefined;
  return checked(snapshotBaseSchema, { lineage, generation: since, chunk, every }, "the snapshot's base (query lineage, since, chunk, every)");
}

/** ranges (within the snapshot), when every one is whole chunks of `chunk` bytes; else none. */
function wholeChunks(ranges: number[], chunk: number): number[] {
  return ranges.every((n) => n % chunk === 0) ? ranges : [];
}

function indexOf(raw: string): string {
  assertIndexName(raw);
  return raw;
}

function shardOf(raw: string | number): number {
  const shard = typeof raw === 'number' ? raw : /^\d{1,6}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(shard) || shard < 0) throw new ValidationError(`invalid shard number ${JSON.stringify(raw)}: use a whole number from 0`);
  return shard;
}

/** The restore a path names: a backend's name and a backup id, each checked as the API checks them. */
function restoreOf(c: Context): OperationRef {
  const id = assertBackupId(c.req.param('id'));
  const parsed = operationRefSchema.safeParse({ kind: 'restore', backend: c.req.param('backend'), id });
  if (!parsed.success) throw new ValidationError(`invalid restore ${JSON.stringify(c.req.param('backend'))}/${JSON.stringify(id)}: ${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message}`);
  return parsed.data;
}

const stepSchema = z.object({
  node: z.string().optional(),
  shards: z.array(z.object({ index: z.string(), shard: z.union([z.number(), z.string()]) })),
});

/** `{node, shards:[{index, shard}]}`, every entry checked like a path's. */
function stepBody(body: unknown, step: string): { node: string | undefined; shards: RestoreShard[] } {
  const b = checked(stepSchema, body, `the ${step} body`);
  return { node: b.node, shards: b.shards.map((s) => ({ index: indexOf(s.index), shard: shardOf(s.shard) })) };
}
