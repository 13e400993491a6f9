/**
 * Backups and restores as the API (and the CLI) see them: create, status, list, cancel,
 * restore, restore status, restore cancel, verify. Every request is validated completely
 * (validate.ts) before anything is written; the jobs are planned (plan.ts), the operation is
 * recorded (state.ts) and its flow added (ARCHITECTURE.md §5); the call answers at once.
 *
 * Status lives in Redis while an operation runs and, for backups, in the backend's
 * backup_config.json once finished (status.ts reads both), so it can be answered after Redis
 * is flushed or from another cluster sharing the backend. Reads of a running operation go
 * through repair.ts, which records FAILED an operation that can no longer end.
 *
 * No Hono here: routes translate HTTP to these calls and back.
 */
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { parseBackendName, withRetry, type Backend, type BackendName } from '../backends/index.ts';
import type { Config } from '../config.ts';
import { ConflictError, IntegrityError, NotFoundError, UnavailableError, ValidationError } from '../errors.ts';
import { CATALOG, type FlowJobSpec, type IndexSnapshot } from '../jobs/catalog.ts';
import { operationRef, type OperationRef } from '../jobs/operation.ts';
import { openProducer } from '../jobs/queues.ts';
import { OperationMeter } from '../metrics/operation-meter.ts';
import type { Logger } from '../logger.ts';
import type { ClusterCatalog } from '../cluster/catalog.ts';
import { requireIndex } from '../cluster/data.ts';
import { configuredBackends, rememberedAccessCheck, type BackendFactory } from './backends.ts';
import { BACKUP_ID, isTerminal, type BackupListItem, type DeleteResult, type OperationStarted, type OperationStatus, type Status, type VerifyReport } from './contract.ts';
import { backupPrefix, globalManifestKey, globalManifestSchema, nodeManifestSchema, readJson, type GlobalManifest, type NodeManifest } from './manifest.ts';
import { collectGarbage } from '../repository/collect.ts';
import { mapBounded } from '../concurrency.ts';
import { InFlight } from './in-flight.ts';
import { ManifestCache } from './manifest-cache.ts';
import { planBackup, planRestore } from './plan.ts';
import { readRepairingStuck } from './repair.ts';
import { listing, statusFromManifest, statusFromState } from './status.ts';
import { OperationStore, type OperationState } from './state.ts';
import { verifyBackup } from './verify.ts';
import { assertBackupId, mapNodes, parseCreateRequest, parseRestoreRequest, selectClasses, type ListPage, type Overrides } from './validate.ts';

/** One backup of a deleteBackups: the objects removed, or why it was not deleted. */
export type DeleteOutcome = { id: string; deleted: number } | { id: string; error: string };

/** Manifests read at once while listing. */
const LIST_READ_CONCURRENCY = 16;

export interface BackupService {
  /** `schedule`: the backup schedule starting it (not a request field: schedules call this themselves). */
  create(backend: string, body: unknown, options?: { schedule?: string }): Promise<OperationStarted>;
  status(backend: string, id: string, overrides?: Overrides): Promise<OperationStatus>;
  /** The backups of a backend, by starting time or a page in id order (ListPage). */
  list(backend: string, overrides?: Overrides, page?: ListPage): Promise<BackupListItem[]>;
  cancel(backend: string, id: string, overrides?: Overrides): Promise<void>;
  restore(backend: string, id: string, body: unknown): Promise<OperationStarted>;
  restoreStatus(backend: string, id: string): Promise<OperationStatus>;
  cancelRestore(backend: string, id: string): Promise<void>;
  /**
   * Remove a finished backup (not running, nor being restored), then collect the chunks no
   * backup of its location names any more.
   */
  deleteBackup(backend: string, id: string, overrides?: Overrides): Promise<DeleteResult>;
  /**
   * Delete several finished backups of one location, then collect once (a collection reads
   * every snapshot and index of the repository): what a schedule's retention does. Each id
   * answers the objects removed or why it was not deleted; a failed collection is thrown.
   */
  deleteBackups(backend: string, ids: string[], overrides?: Overrides): Promise<{ outcomes: DeleteOutcome[] } & Pick<DeleteResult, 'collected' | 'collectionDeferred'>>;
  /** Check every object of a finished backup against its manifests, without restoring (verify.ts). */
  verify(backend: string, id: string, overrides?: Overrides): Promise<VerifyReport>;
  close(): Promise<void>;
}

export interface BackupServiceDeps {
  config: Config;
  /** The indexes a backup selects and snapshots, and a restore must not clash with. */
  catalog: ClusterCatalog;
  /** A connection with `maxRetriesPerRequest: null` (createRedis); not closed by close(). */
  redis: Redis;
  logger: Logger;
  /** Default: the configured backends. */
  backends?: BackendFactory;
  /** How long a delete's collection waits for the repository (default COLLECT_LOCK_WAIT_MS). */
  collectLockWaitMs?: number;
}

/** A settled promise's value, or its error thrown. */
function settled<T>(result: PromiseSettledResult<T>): T {
  if (result.status === 'rejected') throw result.reason;
  return result.value;
}

export function createBackupService(deps: BackupServiceDeps): BackupService {
  const { config, catalog, logger } = deps;
  const backends = deps.backends ?? configuredBackends(config, logger);
  const checkAccess = rememberedAccessCheck();
  const ops = new OperationStore(deps.redis);
  const meter = new OperationMeter(deps.redis);
  /** An operation that ended is counted (/metrics) before its state is replaced by a new start. */
  const countEnded = async (op: OperationRef, state: OperationState | undefined) => {
    if (state && isTerminal(state.status)) await meter.count(op);
  };
  const producer = openProducer(deps.redis);
  const current = (op: OperationRef) => readRepairingStuck({ ops, producer, logger, backendOf: (s) => backends(s.op.backend, s.overrides) }, op);
  /**
   * A backup's state in Redis when it was started at this location. Redis keys operations by
   * backend and id, while Weaviate's `bucket`/`path` overrides let one id be used in several
   * locations: the state of the last one started must not answer for the others.
   */
  const currentAt = async (op: OperationRef, backend: Backend) => {
    const state = await current(op);
    return state?.path === backend.locate(op.id) ? state : undefined;
  };
  const manifests = new ManifestCache();
  // Concurrent lists of one backend location share one listing of its top-level names (a list
  // that arrives while one is being listed is answered with it: a backup finished meanwhile is
  // in Redis's states anyway).
  const listings = new InFlight<Backend, string[]>();

  /**
   * Remove the jobs a previous run with the same ids left (finished jobs are kept a week), so
   * the deterministic ids can be used again; a job still locked by a worker cannot be removed.
   */
  async function clearPreviousRun(parent: FlowJobSpec): Promise<void> {
    // A new id (the common case) costs one round trip: none of the flow's job keys exists.
    const specs = [parent, ...(parent.children ?? [])];
    const keys = specs.map((spec) => producer.queue(spec.queueName).toKey(String(spec.opts.jobId)));
    if ((await deps.redis.exists(...keys)) === 0) return;
    const parentId = String(parent.opts.jobId);
    const job = await producer.queue(parent.queueName).getJob(parentId);
    if (job) {
      try {
        await job.remove({ removeChildren: true });
      } catch (err) {
        throw new ConflictError(`a previous run of ${parentId} is still active: ${(err as Error).message}`);
      }
    }
    await Promise.all(
      (parent.children ?? []).map(async (c) => {
        const child = await producer.queue(c.queueName).getJob(String(c.opts.jobId));
        if (child) await child.remove().catch(() => undefined);
      }),
    );
  }

  /** Add the planned flow; an operation whose flow cannot be added is recorded FAILED. */
  async function launch(op: OperationRef, parent: FlowJobSpec): Promise<void> {
    try {
      await clearPreviousRun(parent);
      await producer.addFlow(parent);
    } catch (err) {
      await ops.advance(op, 'FAILED', { error: `could not start: ${(err as Error).message}` });
      throw err;
    }
  }

  /**
   * A backend check on the request path (does the id exist, may we write, what does the
   * manifest say) gets the retry policy a shard transfer gets: the backend retries each call
   * itself, and a call that still fails transiently is tried again with the shard job's
   * attempts and backoff. Without the outer tries, a burst of resets that a transfer would
   * ride out answered the request 503.
   */
  function precheck<T>(label: string, fn: () => Promise<T>): Promise<T> {
    const { attempts, backoff } = CATALOG['snapshot-shard'].options;
    return withRetry(fn, { attempts, baseMs: backoff.delay, logger, label, isTransient: (err) => err instanceof UnavailableError });
  }

  /**
   * A backup's global manifest, undefined when there is none. `cached`: a finished manifest
   * read in the last seconds is answered from memory (manifest-cache.ts; list and status only).
   */
  async function readGlobal(backend: Backend, id: string, options: { cached?: boolean } = {}): Promise<GlobalManifest | undefined> {
    const where = backend.locate(globalManifestKey(id));
    const load = async () => {
      try {
        const manifest = await precheck(`read ${globalManifestKey(id)}`, () => readJson(backend, globalManifestKey(id), globalManifestSchema));
        manifests.set(where, manifest);
        return manifest;
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    };
    return options.cached ? manifests.read(where, load) : load();
  }

  /** The manifests of these ids that exist, LIST_READ_CONCURRENCY read at a time; an unreadable one is logged and left out. */
  async function readManifests(backend: Backend, ids: string[]): Promise<GlobalManifest[]> {
    const found = await mapBounded(ids, LIST_READ_CONCURRENCY, (id) =>
      readGlobal(backend, id, { cached: true }).catch((err: Error) => {
        logger.warn({ id, err: err.message }, 'unreadable backup manifest');
        return undefined;
      }),
    );
    return found.filter((m): m is GlobalManifest => m !== undefined);
  }

  /**
   * Remove a finished backup (not running, nor being restored): its manifest first, then its
   * objects. Answers how many objects it had. Its chunks stay in the repository until a
   * collection finds that no backup names them.
   */
  async function removeBackup(name: BackendName, backend: Backend, id: string): Promise<number> {
    const op = operationRef('backup', name, id);
    for (const kind of ['backup', 'restore'] as const) {
      const state = await current(operationRef(kind, name, id));
      if (state && !isTerminal(state.status)) {
        throw new ConflictError(`${kind === 'backup' ? 'backup' : 'a restore of backup'} ${JSON.stringify(id)} is running (${state.status}); cancel it or wait for it to end before deleting`);
      }
    }
    const manifest = await readGlobal(backend, id);
    const objects = await backend.list(backupPrefix(id));
    if (!manifest && objects.length === 0) {
      // A backup cancelled (or failed) before it wrote anything is listed from Redis alone: it
      // goes from there.
      const ended = await currentAt(op, backend);
      if (!ended) throw new NotFoundError(`backup ${JSON.stringify(id)} not found in backend ${name} (${backend.locate(id)})`);
      await meter.count(op);
      await ops.forget(op, backend.locate(globalManifestKey(id)));
      logger.info({ backup: id, backend: name, status: ended.status }, 'backup deleted (nothing of it was written)');
      return 0;
    }
    // backup_config.json first: from then on the backup is gone for list, status and restore
    // (in other processes too: forget marks it deleted for them).
    const where = backend.locate(globalManifestKey(id));
    if (manifest) await backend.deletePrefix(globalManifestKey(id));
    manifests.forget(where);
    await meter.count(op);
    await ops.forget(op, where);
    await backend.deletePrefix(backupPrefix(id));
    logger.info({ backup: id, backend: name, objects: objects.length }, 'backup deleted');
    return objects.length;
  }

  /**
   * Garbage collection after a delete. The backups are gone by then, so a collection that cannot
   * run (running backups hold the repository past COLLECT_LOCK_WAIT_MS, or its backend is away)
   * is reported, not thrown: a retried delete would only find them gone, and the next delete in
   * the location collects what this one left.
   */
  async function collect(backend: Backend, what: string): Promise<Pick<DeleteResult, 'collected' | 'collectionDeferred'>> {
    try {
      return { collected: await collectGarbage(backend, { owner: `${hostname()} pid ${process.pid}: ${what}`, logger, lockWaitMs: deps.collectLockWaitMs }) };
    } catch (err) {
      if (!(err instanceof UnavailableError)) throw err;
      logger.warn({ err: err.message, location: backend.locate('') }, 'garbage collection after a delete deferred');
      return { collectionDeferred: `${err.message.replace(/; try again later$/, '')}: the next delete in this location collects what this one left` };
    }
  }

  async function statusOf(op: OperationRef, state: OperationState | undefined): Promise<OperationStatus | undefined> {
    return state && statusFromState(state, await ops.readProgress(op, state.shardsTotal));
  }

  async function snapshotIndex(name: string): Promise<IndexSnapshot> {
    const rec = await requireIndex(catalog, name);
    return {
      name: rec.name,
      uid: rec.uid,
      shards: rec.shards,
      placement: rec.placement,
      schema: rec.schema as unknown as Record<string, unknown>,
      effectiveSchema: (await catalog.effectiveSchema(rec)) as Record<string, unknown>,
      metadata: await catalog.listMetadata(rec.name),
      createdAt: rec.createdAt,
    };
  }

  /**
   * `incremental_base_backup_id` must name a SUCCESS backup in the same backend and location
   * (the same repository): anything else is refused, naming it. (Every backup reuses every
   * chunk its location holds; the base is recorded, and says which backup a user builds on.)
   */
  async function checkIncrementalBase(backend: Backend, name: BackendName, base: string): Promise<void> {
    const where = `incremental_base_backup_id ${JSON.stringify(base)}`;
    const manifest = await readGlobal(backend, base);
    if (!manifest) {
      // Its manifest is written last: a base still running has none yet.
      const running = await currentAt(operationRef('backup', name, base), backend);
      if (running && !isTerminal(running.status)) throw new ValidationError(`${where} is still running (${running.status}); a base must be a SUCCESS backup: start this one once it has ended`);
      throw new ValidationError(`${where} does not exist in backend ${name} at ${backend.locate(base)}; a base must be in the same backend and location`);
    }
    if (manifest.status !== 'SUCCESS') throw new ValidationError(`${where} has status ${manifest.status}; a base must be a SUCCESS backup`);
  }

  async function cancelOperation(op: OperationRef, state: OperationState | undefined, finished: () => Promise<Status | undefined>): Promise<void> {
    const { kind, id, backend } = op;
    const tooLate = (status: Status) =>
      new ConflictError(`${kind} ${JSON.stringify(id)} has already finished (${status}); only a running ${kind} can be cancelled`);
    if (!state) {
      const done = await finished();
      if (done) throw tooLate(done);
      throw new NotFoundError(`${kind} ${JSON.stringify(id)} not found in backend ${backend}`);
    }
    if (isTerminal(state.status)) throw tooLate(state.status);
    const after = await ops.advance(op, 'CANCELLING');
    if (after === 'CANCELLING') {
      await ops.publishCancel(op);
      // Shard jobs still queued (every worker slot busy) would otherwise each wait for a slot to
      // see the cancel: removed now, and when none is running BullMQ hands the coordinator its
      // turn at once (it then cleans up and records CANCELED). Running ones stop on the message.
      await (await producer.coordinatorJob(op))?.removeUnprocessedChildren();
      logger.info({ ...op }, 'cancel requested');
    } else if (after && isTerminal(after)) {
      throw tooLate(after);
    }
  }

  return {
    async create(rawBackend, body, options = {}) {
      const name = parseBackendName(rawBackend);
      const req = parseCreateRequest(body);
      const op = operationRef('backup', name, req.id);
      const backend = backends(name, req.overrides);
      const classes = selectClasses(
        (await catalog.listIndexes()).map((r) => r.name),
        req.include,
        req.exclude,
        'this cluster',
      );
      // The checks are independent: asked at once (Redis, the backend and the catalog answer in
      // parallel), their answers are then judged in this order, so the error is the same.
      const path = backend.locate(req.id);
      const [running, exists, access, base, snapshots] = await Promise.allSettled([
        current(op),
        precheck(`exists ${globalManifestKey(req.id)}`, () => backend.exists(globalManifestKey(req.id))),
        precheck('access check', () => checkAccess(backend)),
        req.incrementalBase ? checkIncrementalBase(backend, name, req.incrementalBase) : undefined,
        Promise.all(classes.map(snapshotIndex)),
      ]);
      const state = settled(running);
      if (state && !isTerminal(state.status)) {
        // Redis keys a backup by backend and id: one id runs in one location at a time.
        throw new ConflictError(`backup ${JSON.stringify(req.id)} is already in progress (${state.status}) at ${state.path}`);
      }
      if (settled(exists)) throw new ConflictError(`backup ${JSON.stringify(req.id)} already exists at ${path}; choose another id`);
      settled(access);
      settled(base);
      const indexes = settled(snapshots);
      await countEnded(op, state);

      const startedAt = new Date().toISOString();
      const plan = planBackup({
        op,
        overrides: req.overrides,
        compression: req.compression,
        nodes: config.nodes,
        indexes,
        startedAt,
        ...(req.incrementalBase ? { incrementalBase: req.incrementalBase } : {}),
        ...(options.schedule ? { schedule: options.schedule } : {}),
      });
      const already = await ops.begin(op, {
        path,
        classes,
        startedAt,
        shardsTotal: plan.shards,
        overrides: req.overrides,
        nodes: config.nodes,
        ...(req.incrementalBase ? { incrementalBase: req.incrementalBase } : {}),
        ...(options.schedule ? { schedule: options.schedule } : {}),
        ...(req.notes.length ? { notes: req.notes } : {}),
      });
      if (already) throw new ConflictError(`backup ${JSON.stringify(req.id)} is already in progress (${already})`);
      await launch(op, plan.parent);
      logger.info({ backup: req.id, backend: name, classes, shards: plan.shards }, 'backup started');
      return {
        id: req.id,
        backend: name,
        classes,
        path,
        status: 'STARTED',
        ...(req.overrides.bucket ? { bucket: req.overrides.bucket } : {}),
        ...(req.notes.length ? { notes: req.notes } : {}),
      };
    },

    async status(rawBackend, rawId, overrides = {}) {
      const name = parseBackendName(rawBackend);
      const id = assertBackupId(rawId);
      // Overrides are checked even when Redis answers, so a bad ?path= is refused, never ignored.
      const backend = backends(name, overrides);
      const op = operationRef('backup', name, id);
      const running = await statusOf(op, await currentAt(op, backend));
      if (running) return running;
      // Deleted by another process lately: its manifest may still be in this one's memory.
      const where = backend.locate(globalManifestKey(id));
      if (await ops.wasDeleted(op, where)) manifests.forget(where);
      const manifest = await readGlobal(backend, id, { cached: true });
      if (!manifest) throw new NotFoundError(`backup ${JSON.stringify(id)} not found in backend ${name} (${backend.locate(id)})`);
      return statusFromManifest(manifest, name, (key) => backend.locate(key));
    },

    async list(rawBackend, overrides = {}, page = {}) {
      const name = parseBackendName(rawBackend);
      const backend = backends(name, overrides);
      // One listing of the top-level names (the repository's objects are not walked), one
      // Redis round trip for the states; only operations still running are checked further.
      const [directories, known] = await Promise.all([
        precheck('list backups', () => listings.run(backend, () => backend.listDirectories(''))),
        ops.all('backup', name),
      ]);
      const here = known.filter((s) => s.path === backend.locate(s.op.id));
      const states = (await Promise.all(here.map((s) => (isTerminal(s.status) ? s : currentAt(s.op, backend))))).filter((s) => s !== undefined);
      let ids = directories.filter((d) => BACKUP_ID.test(d));
      if (page.limit === undefined && page.after === undefined) {
        const all = listing(await readManifests(backend, ids), states);
        return page.order === 'desc' ? all.reverse() : all;
      }
      // A page: ids in order after `after`, manifests read only until the page is full.
      const after = page.after ?? '';
      const limit = page.limit ?? Infinity;
      const pageStates = states.filter((s) => s.op.id > after);
      ids = [...new Set([...ids, ...pageStates.map((s) => s.op.id)])].filter((id) => id > after).sort();
      const items: BackupListItem[] = [];
      for (let at = 0; at < ids.length && items.length < limit; at += LIST_READ_CONCURRENCY) {
        const chunk = ids.slice(at, at + LIST_READ_CONCURRENCY);
        const chunkItems = listing(await readManifests(backend, chunk), pageStates.filter((s) => chunk.includes(s.op.id)));
        items.push(...chunkItems.sort((a, b) => (a.id < b.id ? -1 : 1)));
      }
      return items.slice(0, limit);
    },

    async cancel(rawBackend, rawId, overrides = {}) {
      const name = parseBackendName(rawBackend);
      const id = assertBackupId(rawId);
      const backend = backends(name, overrides);
      const op = operationRef('backup', name, id);
      await cancelOperation(op, await currentAt(op, backend), async () => (await readGlobal(backend, id))?.status);
    },

    async restore(rawBackend, rawId, body) {
      const name = parseBackendName(rawBackend);
      const id = assertBackupId(rawId);
      const req = parseRestoreRequest(body);
      const op = operationRef('restore', name, id);
      const backend = backends(name, req.overrides);
      const where = `backup ${JSON.stringify(id)}`;

      const backupState = await current(operationRef('backup', name, id));
      if (backupState && !isTerminal(backupState.status)) {
        throw new ValidationError(`${where} is not finished (${backupState.status}); only a SUCCESS backup can be restored`);
      }
      const manifest = await readGlobal(backend, id);
      if (!manifest) throw new NotFoundError(`${where} not found in backend ${name} (${backend.locate(id)})`);
      if (manifest.status !== 'SUCCESS') {
        throw new ValidationError(`${where} has status ${manifest.status}; only a SUCCESS backup can be restored`);
      }
      const classes = selectClasses(manifest.classes, req.include, req.exclude, where);
      const mapping = mapNodes(manifest.nodes, config.nodes, req.nodeMapping);
      const found = await Promise.all(classes.map((c) => catalog.getIndex(c)));
      const existing = classes.filter((_, i) => found[i]);
      if (existing.length > 0) {
        throw new ConflictError(
          `class${existing.length > 1 ? 'es' : ''} ${existing.map((c) => JSON.stringify(c)).join(', ')} already exist${existing.length > 1 ? '' : 's'}: ` +
            'delete before restoring',
        );
      }
      const running = await current(op);
      if (running && !isTerminal(running.status)) {
        throw new ConflictError(`a restore of ${where} is already in progress (${running.status})`);
      }
      await countEnded(op, running);

      // Read (and verify) the per-node manifests before any byte moves.
      const nodeManifests = new Map<string, NodeManifest>();
      for (const node of manifest.nodes) {
        const entry = manifest.nodeManifests[node];
        if (!entry) throw new IntegrityError(`${where} is incomplete: no manifest for node ${node}`);
        nodeManifests.set(node, await readJson(backend, entry.key, nodeManifestSchema, { sha256: entry.sha256 }));
      }
      const plan = planRestore({ op, overrides: req.overrides, classes, mapping, nodeManifests });
      const path = backend.locate(id);
      const already = await ops.begin(op, {
        path,
        classes,
        startedAt: new Date().toISOString(),
        shardsTotal: plan.shards,
        overrides: req.overrides,
        nodeMapping: mapping,
        ...(req.notes.length ? { notes: req.notes } : {}),
      });
      if (already) throw new ConflictError(`a restore of ${where} is already in progress (${already})`);
      await launch(op, plan.parent);
      logger.info({ backup: id, backend: name, classes, mapping }, 'restore started');
      return { id, backend: name, classes, path, status: 'STARTED', ...(req.notes.length ? { notes: req.notes } : {}) };
    },

    async restoreStatus(rawBackend, rawId) {
      const name = parseBackendName(rawBackend);
      const id = assertBackupId(rawId);
      const op = operationRef('restore', name, id);
      const status = await statusOf(op, await current(op));
      if (!status) throw new NotFoundError(`no restore of backup ${JSON.stringify(id)} in backend ${name} is known`);
      return status;
    },

    async cancelRestore(rawBackend, rawId) {
      const name = parseBackendName(rawBackend);
      const id = assertBackupId(rawId);
      const op = operationRef('restore', name, id);
      await cancelOperation(op, await current(op), async () => undefined);
    },

    async deleteBackup(rawBackend, rawId, overrides = {}) {
      const name = parseBackendName(rawBackend);
      const id = assertBackupId(rawId);
      const backend = backends(name, overrides);
      const deleted = await removeBackup(name, backend, id);
      return { id, backend: name, deleted, ...(await collect(backend, `delete of ${id}`)) };
    },

    async deleteBackups(rawBackend, rawIds, overrides = {}) {
      const name = parseBackendName(rawBackend);
      const backend = backends(name, overrides);
      const outcomes: DeleteOutcome[] = [];
      for (const rawId of rawIds) {
        try {
          outcomes.push({ id: rawId, deleted: await removeBackup(name, backend, assertBackupId(rawId)) });
        } catch (err) {
          outcomes.push({ id: rawId, error: (err as Error).message });
        }
      }
      const removed = outcomes.filter((o) => 'deleted' in o).length;
      return { outcomes, ...(removed > 0 ? await collect(backend, `delete of ${removed} backups`) : {}) };
    },

    async verify(rawBackend, rawId, overrides = {}) {
      const name = parseBackendName(rawBackend);
      const id = assertBackupId(rawId);
      const state = await current(operationRef('backup', name, id));
      if (state && !isTerminal(state.status)) {
        throw new ValidationError(`backup ${JSON.stringify(id)} is not finished (${state.status}); only a SUCCESS backup can be verified`);
      }
      return verifyBackup(backends(name, overrides), name, id);
    },

    close: () => producer.close(),
  };
}
