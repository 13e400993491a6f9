/**
 * Status reading: what the status and list endpoints answer, from an operation's state in
 * Redis while it is known there, else from the backup's backup_config.json. Pure functions;
 * the service fetches the state, the progress and the manifests.
 */
import type { BackendName } from '../backends/backend.ts';
import { isTerminal, type BackupListItem, type OperationStatus, type Progress } from './contract.ts';
import type { GlobalManifest } from './manifest.ts';
import type { OperationState } from './state.ts';

/** Weaviate's `size`: a backup's shard files before compression, in GiB, when recorded. */
const sizeOf = (bytes: number | undefined) => (bytes === undefined ? {} : { size: bytes / 2 ** 30 });

/** A running (or recently finished) operation, as Redis knows it. */
export function statusFromState(state: OperationState, progress: Progress): OperationStatus {
  return {
    id: state.op.id,
    backend: state.op.backend,
    path: state.path,
    status: state.status,
    ...(state.error && (state.status === 'FAILED' || state.status === 'CANCELED') ? { error: state.error } : {}),
    classes: state.classes,
    startedAt: state.startedAt,
    ...(state.completedAt ? { completedAt: state.completedAt } : {}),
    ...sizeOf(state.preCompressionSizeBytes),
    ...(state.incrementalBase ? { incremental_base_backup_id: state.incrementalBase } : {}),
    ...(state.notes?.length ? { notes: state.notes } : {}),
    progress,
  };
}

/** A finished backup, as its global manifest records it. */
export function statusFromManifest(m: GlobalManifest, backend: BackendName, locate: (id: string) => string): OperationStatus {
  return {
    id: m.id,
    backend,
    // Where it is read from now: a backup copied or moved keeps the path it was written to in its manifest.
    path: locate(m.id),
    status: m.status,
    ...(m.error ? { error: m.error } : {}),
    classes: m.classes,
    startedAt: m.startedAt,
    ...(m.completedAt ? { completedAt: m.completedAt } : {}),
    ...sizeOf(m.preCompressionSizeBytes),
    ...(m.incremental_base_backup_id ? { incremental_base_backup_id: m.incremental_base_backup_id } : {}),
    progress: { shardsDone: m.totals.shards, shardsTotal: m.totals.shards, docs: m.totals.docs, bytes: m.totals.bytes },
  };
}

const item = (
  id: string,
  s: { classes: string[]; status: BackupListItem['status']; startedAt: string; completedAt?: string; schedule?: string; preCompressionSizeBytes?: number },
  base: string | undefined,
): BackupListItem => ({
  id,
  classes: s.classes,
  status: s.status,
  startedAt: s.startedAt,
  ...(s.completedAt ? { completedAt: s.completedAt } : {}),
  ...sizeOf(s.preCompressionSizeBytes),
  ...(base ? { incremental_base_backup_id: base } : {}),
  ...(s.schedule ? { schedule: s.schedule } : {}),
});

/**
 * The backups of a backend, oldest first: every manifest, and every backup Redis knows. Redis
 * wins while a backup runs and for a cancel (which leaves no manifest); a finished backup's
 * manifest wins otherwise.
 */
export function listing(manifests: GlobalManifest[], states: OperationState[]): BackupListItem[] {
  const items = new Map<string, BackupListItem>();
  for (const m of manifests) items.set(m.id, item(m.id, m, m.incremental_base_backup_id));
  for (const s of states) {
    if (items.has(s.op.id) && isTerminal(s.status) && s.status !== 'CANCELED') continue;
    items.set(s.op.id, item(s.op.id, s, s.incrementalBase));
  }
  return [...items.values()].sort((a, b) => (a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : a.id < b.id ? -1 : 1));
}
