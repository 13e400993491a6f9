/**
 * Backups and restores as the API (and the CLI) see them: create, status, list, cancel,
 * restore, restore status, restore cancel. Every request is validated completely before
 * anything is written; then one BullMQ flow is added (ARCHITECTURE.md §5) and the call answers at once.
 *
 * Status lives in Redis while an operation runs (shared/backups/state.ts) and, for backups,
 * in the backend's backup_config.json once finished, so it can be answered after Redis is
 * flushed or from another cluster sharing the backend.
 *
 * No Hono here: routes translate HTTP to these calls and back.
 */
import { FlowProducer, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { parseBackendName, withRetry, type Backend, type BackendName } from '../backends/index.ts';
import type { Config } from '../config.ts';
import { ConflictError, IntegrityError, NotFoundError, UnavailableError, ValidationError } from '../errors.ts';
import {
  CATALOG,
  flowJob,
  operationKey,
  PREFIX,
  shardJobId,
  type FlowJobSpec,
  type IndexSnapshot,
  type OperationKind,
  type RestoredIndex,
} from '../jobs/catalog.ts';
import type { Logger } from '../logger.ts';
import type { Store } from '../store/store.ts';
import { configuredBackends, rememberedAccessCheck, type BackendFactory } from './backends.ts';
import {
  globalManifestKey,
  globalManifestSchema,
  nodeManifestKey,
  nodeManifestSchema,
  readJson,
  shardObjectKey,
  type GlobalManifest,
  type NodeManifest,
} from './manifest.ts';
import { isTerminal, OperationStore, type OperationState, type Progress, type Status } from './state.ts';
import { verifyBackup, type VerifyReport } from './verify.ts';
import { assertBackupId, mapNodes, parseCreateRequest, parseRestoreRequest, selectClasses, type Overrides } from './validate.ts';

// ---- answers (Weaviate's shapes, plus progress fields) -----------------------------------------

/** BackupCreateResponse / BackupRestoreResponse. */
export interface OperationStarted {
  id: string;
  backend: BackendName;
  classes: string[];
  path: string;
  status: 'STARTED';
  bucket?: string;
}

/** BackupCreateStatusResponse / BackupRestoreStatusResponse, plus classes and progress. */
export interface OperationStatus {
  id: string;
  backend: BackendName;
  path: string;
  status: Status;
  error?: string;
  classes: string[];
  startedAt: string;
  completedAt?: string;
  progress: Progress;
}

/** One item of BackupListResponse. */
export interface BackupListItem {
  id: string;
  classes: string[];
  status: Status;
  startedAt: string;
  completedAt?: string;
}

export interface BackupService {
  create(backend: string, body: unknown): Promise<OperationStarted>;
  status(backend: string, id: string, overrides?: Overrides): Promise<OperationStatus>;
  list(backend: string, overrides?: Overrides): Promise<BackupListItem[]>;
  cancel(backend: string, id: string, overrides?: Overrides): Promise<void>;
  restore(backend: string, id: string, body: unknown): Promise<OperationStarted>;
  restoreStatus(backend: string, id: string): Promise<OperationStatus>;
  cancelRestore(backend: string, id: string): Promise<void>;
  /** Check every object of a finished backup against its manifests, without restoring (verify.ts). */
  verify(backend: string, id: string, overrides?: Overrides): Promise<VerifyReport>;
  close(): Promise<void>;
}

export interface BackupServiceDeps {
  config: Config;
  store: Store;
  /** A connection with `maxRetriesPerRequest: null` (createRedis); not closed by close(). */
  redis: Redis;
  logger: Logger;
  /** Default: the configured backends. */
  backends?: BackendFactory;
}

/** How long an operation may be recorded without its coordinator job before it counts as lost. */
export const ORPHAN_GRACE_MS = 30_000;

export function createBackupService(deps: BackupServiceDeps): BackupService {
  const { config, store, logger } = deps;
  const backends = deps.backends ?? configuredBackends(config, logger);
  const checkAccess = rememberedAccessCheck();
  const ops = new OperationStore(deps.redis);
  const flows = new FlowProducer({ connection: deps.redis, prefix: PREFIX });
  const queues = new Map<string, Queue>();
  const queue = (name: string): Queue => {
    let q = queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: deps.redis, prefix: PREFIX });
      queues.set(name, q);
    }
    return q;
  };

  /**
   * Remove the jobs a previous run with the same ids left (finished jobs are kept a week), so
   * the deterministic ids can be used again; a job still locked by a worker cannot be removed.
   */
  async function clearPreviousRun(parentQueue: string, parentId: string, children: FlowJobSpec[]): Promise<void> {
    const q = queue(parentQueue);
    const job = await q.getJob(parentId);
    if (job) {
      try {
        await job.remove({ removeChildren: true });
      } catch (err) {
        throw new ConflictError(`a previous run of ${parentId} is still active: ${(err as Error).message}`);
      }
    }
    await Promise.all(
      children.map(async (c) => {
        const child = await queue(c.queueName).getJob(String(c.opts.jobId));
        if (child) await child.remove().catch(() => undefined);
      }),
    );
  }

  /**
   * The state of an operation, failed first if it can no longer end by itself: its coordinator
   * job is gone (Redis went away between recording the operation and adding its jobs) or has
   * failed without recording it (BullMQ fails a job that stalled too often in its stalled check,
   * which no worker's `failed` handler sees). Without this such an operation would stay
   * STARTED (or TRANSFERRING…) for ever and its id could never be used again.
   */
  async function current(kind: OperationKind, name: BackendName, id: string): Promise<OperationState | undefined> {
    const state = await ops.get(kind, name, id);
    if (!state || isTerminal(state.status)) return state;
    const job = await queue(kind === 'backup' ? 'backups' : 'restores').getJob(operationKey(kind, name, id));
    let why: string | undefined;
    if (!job) {
      // A new operation is recorded a moment before its jobs are added.
      if (Date.now() - Date.parse(state.startedAt) < ORPHAN_GRACE_MS) return state;
      why = `the ${kind} was lost: its jobs do not exist (Redis was unavailable while it started, or they were removed)`;
    } else if (await job.isFailed()) {
      why = `coordinator failed: ${job.failedReason || 'no reason recorded'}`;
    } else {
      return state;
    }
    await ops.advance(kind, name, id, 'FAILED', { error: why });
    logger.warn({ kind, backend: name, id, error: why }, 'operation could not end by itself: recorded FAILED');
    return ops.get(kind, name, id);
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

  async function readGlobal(backend: Backend, id: string): Promise<GlobalManifest | undefined> {
    try {
      return await precheck(`read ${globalManifestKey(id)}`, () => readJson(backend, globalManifestKey(id), globalManifestSchema));
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  async function statusOf(state: OperationState, name: BackendName): Promise<OperationStatus> {
    const progress = await ops.readProgress(state.kind, name, state.id, state.shardsTotal);
    return {
      id: state.id,
      backend: name,
      path: state.path,
      status: state.status,
      ...(state.error && (state.status === 'FAILED' || state.status === 'CANCELED') ? { error: state.error } : {}),
      classes: state.classes,
      startedAt: state.startedAt,
      ...(state.completedAt ? { completedAt: state.completedAt } : {}),
      progress,
    };
  }

  function statusFromManifest(m: GlobalManifest, name: BackendName, backend: Backend): OperationStatus {
    return {
      id: m.id,
      backend: name,
      path: m.path ?? backend.locate(m.id),
      status: m.status,
      ...(m.error ? { error: m.error } : {}),
      classes: m.classes,
      startedAt: m.startedAt,
      ...(m.completedAt ? { completedAt: m.completedAt } : {}),
      progress: { shardsDone: m.totals.shards, shardsTotal: m.totals.shards, docs: m.totals.docs, bytes: m.totals.bytes },
    };
  }

  function snapshotIndex(name: string): IndexSnapshot {
    const rec = store.requireIndex(name);
    return {
      name: rec.name,
      uid: rec.uid,
      shards: rec.shards,
      placement: rec.placement,
      schema: rec.schema as unknown as Record<string, unknown>,
      effectiveSchema: store.effectiveSchema(rec) as Record<string, unknown>,
      metadata: store.listMetadata(rec.name),
      createdAt: rec.createdAt,
    };
  }

  async function cancelOperation(kind: OperationKind, name: BackendName, id: string, finished: () => Promise<Status | undefined>): Promise<void> {
    const state = await current(kind, name, id);
    if (!state) {
      const done = await finished();
      if (done) throw new ConflictError(`${kind} ${JSON.stringify(id)} has already finished (${done}); only a running ${kind} can be cancelled`);
      throw new NotFoundError(`${kind} ${JSON.stringify(id)} not found in backend ${name}`);
    }
    if (isTerminal(state.status)) {
      throw new ConflictError(`${kind} ${JSON.stringify(id)} has already finished (${state.status}); only a running ${kind} can be cancelled`);
    }
    const after = await ops.advance(kind, name, id, 'CANCELLING');
    if (after === 'CANCELLING') {
      await ops.publishCancel(operationKey(kind, name, id));
      logger.info({ kind, backend: name, id }, 'cancel requested');
    } else if (after && isTerminal(after)) {
      throw new ConflictError(`${kind} ${JSON.stringify(id)} has already finished (${after}); only a running ${kind} can be cancelled`);
    }
  }

  return {
    async create(rawBackend, body) {
      const name = parseBackendName(rawBackend);
      const req = parseCreateRequest(body);
      const backend = backends(name, req.overrides);
      const classes = selectClasses(
        store.listIndexes().map((r) => r.name),
        req.include,
        req.exclude,
        'this cluster',
      );
      const running = await current('backup', name, req.id);
      if (running && !isTerminal(running.status)) {
        throw new ConflictError(`backup ${JSON.stringify(req.id)} is already in progress (${running.status})`);
      }
      const path = backend.locate(req.id);
      if (await precheck(`exists ${globalManifestKey(req.id)}`, () => backend.exists(globalManifestKey(req.id)))) {
        throw new ConflictError(`backup ${JSON.stringify(req.id)} already exists at ${path}; choose another id`);
      }
      await precheck('access check', () => checkAccess(backend));

      const indexes = classes.map(snapshotIndex);
      const startedAt = new Date().toISOString();
      const operation = { backend: name, overrides: req.overrides, backupId: req.id };
      const children = indexes.flatMap((index) =>
        index.placement.map((node, shard) =>
          flowJob(
            'snapshot-shard',
            {
              ...operation,
              node,
              index: index.name,
              uid: index.uid,
              shard,
              key: shardObjectKey(req.id, node, index.name, shard),
              compression: req.compression,
            },
            shardJobId('backup', name, req.id, node, index.name, shard),
          ),
        ),
      );
      const parentId = operationKey('backup', name, req.id);
      const parent = flowJob(
        'commit-backup',
        { ...operation, nodes: config.nodes, classes, compression: req.compression, startedAt, indexes },
        parentId,
        children,
      );
      const already = await ops.begin('backup', name, req.id, {
        path,
        classes,
        startedAt,
        shardsTotal: children.length,
        overrides: req.overrides,
        nodes: config.nodes,
      });
      if (already) throw new ConflictError(`backup ${JSON.stringify(req.id)} is already in progress (${already})`);
      try {
        await clearPreviousRun('backups', parentId, children);
        await flows.add(parent as Parameters<FlowProducer['add']>[0]);
      } catch (err) {
        await ops.advance('backup', name, req.id, 'FAILED', { error: `could not start: ${(err as Error).message}` });
        throw err;
      }
      logger.info({ backup: req.id, backend: name, classes, shards: children.length }, 'backup started');
      return { id: req.id, backend: name, classes, path, status: 'STARTED', ...(req.overrides.bucket ? { bucket: req.overrides.bucket } : {}) };
    },

    async status(rawBackend, rawId, overrides = {}) {
      const name = parseBackendName(rawBackend);
      const id = assertBackupId(rawId);
      // Overrides are checked even when Redis answers, so a bad ?path= is refused, never ignored.
      const backend = backends(name, overrides);
      const state = await current('backup', name, id);
      if (state) return statusOf(state, name);
      const manifest = await readGlobal(backend, id);
      if (!manifest) throw new NotFoundError(`backup ${JSON.stringify(id)} not found in backend ${name} (${backend.locate(id)})`);
      return statusFromManifest(manifest, name, backend);
    },

    async list(rawBackend, overrides = {}) {
      const name = parseBackendName(rawBackend);
      const backend = backends(name, overrides);
      const objects = await backend.list('');
      const ids = objects.map((o) => /^([a-z0-9_-]+)\/backup_config\.json$/.exec(o.key)?.[1]).filter((x): x is string => !!x);
      const items = new Map<string, BackupListItem>();
      for (const id of ids) {
        const m = await readGlobal(backend, id).catch((err: Error) => {
          logger.warn({ id, err: err.message }, 'unreadable backup manifest');
          return undefined;
        });
        if (m) items.set(id, { id, classes: m.classes, status: m.status, startedAt: m.startedAt, ...(m.completedAt ? { completedAt: m.completedAt } : {}) });
      }
      for (const id of await ops.ids('backup', name)) {
        const s = await current('backup', name, id);
        if (!s) continue;
        if (items.has(id) && isTerminal(s.status) && s.status !== 'CANCELED') continue;
        items.set(id, { id, classes: s.classes, status: s.status, startedAt: s.startedAt, ...(s.completedAt ? { completedAt: s.completedAt } : {}) });
      }
      return [...items.values()].sort((a, b) => (a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : a.id < b.id ? -1 : 1));
    },

    async cancel(rawBackend, rawId, overrides = {}) {
      const name = parseBackendName(rawBackend);
      const id = assertBackupId(rawId);
      const backend = backends(name, overrides);
      await cancelOperation('backup', name, id, async () => (await readGlobal(backend, id))?.status);
    },

    async restore(rawBackend, rawId, body) {
      const name = parseBackendName(rawBackend);
      const id = assertBackupId(rawId);
      const req = parseRestoreRequest(body);
      const backend = backends(name, req.overrides);
      const where = `backup ${JSON.stringify(id)}`;

      const backupState = await current('backup', name, id);
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
      const existing = classes.filter((c) => store.getIndex(c));
      if (existing.length > 0) {
        throw new ConflictError(
          `class${existing.length > 1 ? 'es' : ''} ${existing.map((c) => JSON.stringify(c)).join(', ')} already exist${existing.length > 1 ? '' : 's'}: ` +
            'delete before restoring',
        );
      }
      const running = await current('restore', name, id);
      if (running && !isTerminal(running.status)) {
        throw new ConflictError(`a restore of ${where} is already in progress (${running.status})`);
      }

      // Read (and verify) the per-node manifests before any byte moves.
      const nodeManifests = new Map<string, NodeManifest>();
      for (const node of manifest.nodes) {
        const entry = manifest.nodeManifests[node];
        if (!entry) throw new IntegrityError(`${where} is incomplete: no manifest for node ${node}`);
        nodeManifests.set(node, await readJson(backend, entry.key, nodeManifestSchema, { sha256: entry.sha256 }));
      }
      const restoreKey = `${name}.${id}`;
      const operation = { backend: name, overrides: req.overrides, backupId: id };
      const indexes: RestoredIndex[] = [];
      const children: FlowJobSpec[] = [];
      for (const cls of classes) {
        const snap = [...nodeManifests.values()].flatMap((m) => m.indexes).find((i) => i.name === cls);
        if (!snap) throw new IntegrityError(`${where} is incomplete: no node manifest describes class ${cls}`);
        const placement = snap.placement.map((source) => {
          const target = mapping[source];
          if (!target) throw new IntegrityError(`${where} places a shard of ${cls} on ${source}, which is not one of its nodes`);
          return target;
        });
        indexes.push({ name: cls, shards: snap.shards, placement, schema: snap.schema, effectiveSchema: snap.effectiveSchema, metadata: snap.metadata });
        snap.placement.forEach((source, shard) => {
          const object = nodeManifests.get(source)?.shards.find((s) => s.index === cls && s.shard === shard);
          if (!object) {
            throw new IntegrityError(`${where} is incomplete: ${backend.locate(nodeManifestKey(id, source))} lists no object for shard ${cls}/${shard}`);
          }
          children.push(
            flowJob(
              'restore-shard',
              {
                ...operation,
                restoreKey,
                sourceNode: source,
                node: placement[shard]!,
                index: cls,
                shard,
                key: object.key,
                sha256: object.sha256,
                bytes: object.bytes,
                docs: object.docs,
              },
              shardJobId('restore', name, id, placement[shard]!, cls, shard),
            ),
          );
        });
      }
      const parentId = operationKey('restore', name, id);
      const parent = flowJob('commit-restore', { ...operation, restoreKey, classes, nodeMapping: mapping, indexes }, parentId, children);
      const path = backend.locate(id);
      const already = await ops.begin('restore', name, id, {
        path,
        classes,
        startedAt: new Date().toISOString(),
        shardsTotal: children.length,
        overrides: req.overrides,
        nodeMapping: mapping,
      });
      if (already) throw new ConflictError(`a restore of ${where} is already in progress (${already})`);
      try {
        await clearPreviousRun('restores', parentId, children);
        await flows.add(parent as Parameters<FlowProducer['add']>[0]);
      } catch (err) {
        await ops.advance('restore', name, id, 'FAILED', { error: `could not start: ${(err as Error).message}` });
        throw err;
      }
      logger.info({ backup: id, backend: name, classes, mapping }, 'restore started');
      return { id, backend: name, classes, path, status: 'STARTED' };
    },

    async restoreStatus(rawBackend, rawId) {
      const name = parseBackendName(rawBackend);
      const id = assertBackupId(rawId);
      const state = await current('restore', name, id);
      if (!state) throw new NotFoundError(`no restore of backup ${JSON.stringify(id)} in backend ${name} is known`);
      return statusOf(state, name);
    },

    async cancelRestore(rawBackend, rawId) {
      const name = parseBackendName(rawBackend);
      const id = assertBackupId(rawId);
      await cancelOperation('restore', name, id, async () => undefined);
    },

    async verify(rawBackend, rawId, overrides = {}) {
      const name = parseBackendName(rawBackend);
      const id = assertBackupId(rawId);
      const state = await current('backup', name, id);
      if (state && !isTerminal(state.status)) {
        throw new ValidationError(`backup ${JSON.stringify(id)} is not finished (${state.status}); only a SUCCESS backup can be verified`);
      }
      return verifyBackup(backends(name, overrides), name, id);
    },

    async close() {
      await flows.close();
      await Promise.all([...queues.values()].map((q) => q.close()));
    },
  };
}

