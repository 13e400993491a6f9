/**
 * Garbage collection of a repository (docs/formats.md §3.7): removes what no snapshot names any
 * more, under the repository's exclusive lock (locks.ts), so no snapshot writer runs meanwhile —
 * a chunk a running backup decided to reuse is never removed.
 *
 * Roots are every snapshot object in the location, whatever the state of its backup (a running
 * backup's snapshots exist before its manifests do): every object `<id>/<node>/<index>/<shard>`
 * that starts with zstd's magic (format-1 dump objects do not, and are skipped). A snapshot
 * that cannot be read stops the collection before anything is removed.
 *
 * The unit of removal is an index file and the pack it names (one per pack since the writer
 * writes them so): they go together once no snapshot names the index file (the index file
 * first, so no writer can reuse its chunks, then the pack). Packs that no index file names (a
 * run that failed), lineage hints whose snapshot is gone, stale locks and what dead writes left
 * (the filesystem's temporaries) go too. A pack some of whose chunks are still named stays
 * whole; repacking it is later work.
 */
import type { Backend, CallOptions } from '../backends/backend.ts';
import { readSmall } from '../backends/bodies.ts';
import { mapBounded } from '../concurrency.ts';
import { IntegrityError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { decodeObject, readObject } from './codec.ts';
import { INDEX_PREFIX, indexFileSchema, indexKey, lineageKey, lineageSchema, MAX_METADATA_BYTES, packKey, REPOSITORY_ROOT, snapshotSchema } from './format.ts';
import { acquireLock, removeStaleLocks } from './locks.ts';

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const PACK_PREFIX = `${REPOSITORY_ROOT}/packs/`;
const LINEAGE_PREFIX = lineageKey('');
/** Objects a collection reads (or deletes) at once: one at a time waits a round trip for each of thousands. */
const READS_AT_ONCE = 16;

export interface CollectResult {
  /** Index files (snapshot runs) removed, and packs with them. */
  runs: number;
  packs: number;
  /** Bytes of the packs removed. */
  bytes: number;
  /** Runs kept because a snapshot still names them. */
  kept: number;
}

/** How long a collection waits for the backups that hold the repository (running snapshots) to let it go. */
export const COLLECT_LOCK_WAIT_MS = 5 * 60_000;

export async function collectGarbage(backend: Backend, options: CallOptions & { owner: string; logger?: Logger; staleMs?: number; lockWaitMs?: number }): Promise<CollectResult> {
  const lock = await acquireLock(backend, true, { ...options, waitMs: options.lockWaitMs ?? COLLECT_LOCK_WAIT_MS });
  try {
    const objects = await backend.list('', options);
    // Every snapshot (a backup's shard objects of format 2: zstd frames) names the runs it uses.
    const named = new Set<string>();
    const shardObjects = objects.filter(({ key }) => !key.startsWith(`${REPOSITORY_ROOT}/`) && key.split('/').length === 4);
    await mapBounded(shardObjects, READS_AT_ONCE, async ({ key }) => {
      const head = await readSmall(await backend.read(key, { ...options, range: { start: 0, length: 4 } }), 4, 'object head').catch(() => Buffer.alloc(0));
      if (!head.equals(ZSTD_MAGIC)) return;
      const body = await readSmall(await backend.read(key, options), MAX_METADATA_BYTES, 'snapshot');
      const snapshot = await decodeObject(body, snapshotSchema, backend.locate(key)).catch((err: unknown) => {
        throw new IntegrityError(`garbage collection stopped before removing anything: ${(err as Error).message}`);
      });
      for (const id of snapshot.indexes) named.add(id);
    });
    // Runs no snapshot names go; the packs of those that stay are kept.
    const result: CollectResult = { runs: 0, packs: 0, bytes: 0, kept: 0 };
    const packsInUse = new Set<string>();
    await mapBounded(
      objects.filter((o) => o.key.startsWith(INDEX_PREFIX)),
      READS_AT_ONCE,
      async ({ key }) => {
        const id = key.slice(INDEX_PREFIX.length);
        if (!named.has(id)) {
          await backend.deletePrefix(indexKey(id), options);
          result.runs++;
          return;
        }
        const file = await readObject(backend, key, indexFileSchema, 'index file', options);
        result.kept++;
        for (const p of file.packs) packsInUse.add(packKey(p));
      },
    );
    // A lineage's hint whose snapshot is gone (its backup deleted) names nothing any more.
    const snapshots = new Set(shardObjects.map((o) => o.key));
    await mapBounded(
      objects.filter((o) => o.key.startsWith(LINEAGE_PREFIX)),
      READS_AT_ONCE,
      async ({ key }) => {
        const hint = await readObject(backend, key, lineageSchema, 'lineage', options).catch(() => undefined);
        if (!hint || !snapshots.has(hint.key)) await backend.deletePrefix(key, options);
      },
    );
    const unused = objects.filter((o) => o.key.startsWith(PACK_PREFIX) && !packsInUse.has(o.key));
    await mapBounded(unused, READS_AT_ONCE, async ({ key, size }) => {
      await backend.deletePrefix(key, options);
      result.packs++;
      result.bytes += size;
    });
    await removeStaleLocks(backend, options, options.staleMs);
    // Pack writes that died part-way (their keys are never written again to clean them up).
    await backend.sweepAbandonedWrites?.(`${REPOSITORY_ROOT}/`, options);
    options.logger?.info({ location: backend.locate(REPOSITORY_ROOT), ...result }, 'repository garbage collected');
    return result;
  } finally {
    await lock.release();
  }
}
