/**
 * Planning and status reading without Redis or a backend: which jobs a backup and a restore
 * run, where, under which ids; what a damaged backup is refused for before any job exists; and
 * what the status and list endpoints answer from Redis's state and the manifests.
 */
import { describe, expect, it } from 'vitest';
import type { GlobalManifest, NodeManifest } from '../../shared/backups/manifest.ts';
import { planBackup, planRestore } from '../../shared/backups/plan.ts';
import type { OperationState } from '../../shared/backups/state.ts';
import { listing, statusFromManifest, statusFromState } from '../../shared/backups/status.ts';
import { IntegrityError } from '../../shared/errors.ts';
import type { IndexSnapshot } from '../../shared/jobs/catalog.ts';
import type { OperationRef } from '../../shared/jobs/operation.ts';

const backup: OperationRef = { kind: 'backup', backend: 's3', id: 'nightly' };
const restore: OperationRef = { ...backup, kind: 'restore' };

const index = (name: string, placement: string[]): IndexSnapshot => ({
  name,
  uid: `${name}-uid`,
  shards: placement.length,
  placement,
  schema: {},
  effectiveSchema: {},
  metadata: {},
  createdAt: '2026-12-01T00:00:00Z',
});

const shardObject = (node: string, idx: string, shard: number) => ({ node, index: idx, shard, key: `nightly/${node}/${idx}/${shard}`, docs: 10, bytes: 100, sha256: 'a'.repeat(64) });

function nodeManifests(indexes: IndexSnapshot[]): Map<string, NodeManifest> {
  const nodes = [...new Set(indexes.flatMap((i) => i.placement))];
  return new Map(
    nodes.map((node) => [
      node,
      {
        version: 1,
        id: 'nightly',
        node,
        indexes: indexes.filter((i) => i.placement.includes(node)),
        shards: indexes.flatMap((i) => i.placement.flatMap((n, s) => (n === node ? [shardObject(node, i.name, s)] : []))),
      },
    ]),
  );
}

describe('planning a backup', () => {
  it('runs one snapshot per shard on the queue of the node that holds it, under one commit', () => {
    const plan = planBackup({
      op: backup,
      overrides: { bucket: 'b' },
      compression: 'BestSpeed',
      nodes: ['n1', 'n2'],
      indexes: [index('Article', ['n1', 'n2', 'n1']), index('Author', ['n2'])],
      startedAt: '2026-12-03T00:00:00Z',
    });
    expect(plan.shards).toBe(4);
    expect(plan.parent).toMatchObject({ name: 'commit-backup', queueName: 'backups', opts: { jobId: 'backup.s3.nightly' } });
    expect(plan.parent.data).toMatchObject({ op: backup, classes: ['Article', 'Author'], nodes: ['n1', 'n2'], compression: 'BestSpeed' });
    expect(plan.parent.children!.map((c) => [c.queueName, c.opts.jobId, (c.data as { key: string }).key])).toEqual([
      ['node-n1', 'backup.s3.nightly.n1.Article.0', 'nightly/n1/Article/0'],
      ['node-n2', 'backup.s3.nightly.n2.Article.1', 'nightly/n2/Article/1'],
      ['node-n1', 'backup.s3.nightly.n1.Article.2', 'nightly/n1/Article/2'],
      ['node-n2', 'backup.s3.nightly.n2.Author.0', 'nightly/n2/Author/0'],
    ]);
    for (const c of plan.parent.children!) expect(c.data).toMatchObject({ op: backup, overrides: { bucket: 'b' }, compression: 'BestSpeed' });
  });
});

describe('planning a restore', () => {
  const indexes = [index('Article', ['a1', 'a2']), index('Author', ['a2'])];

  it('sends each shard to the target of its source node and recreates the placement there', () => {
    const plan = planRestore({ op: restore, overrides: {}, classes: ['Article'], mapping: { a1: 'n2', a2: 'n1' }, nodeManifests: nodeManifests(indexes) });
    expect(plan.shards).toBe(2);
    expect(plan.indexes).toEqual([expect.objectContaining({ name: 'Article', shards: 2, placement: ['n2', 'n1'] })]);
    expect(plan.parent).toMatchObject({ name: 'commit-restore', queueName: 'restores', opts: { jobId: 'restore.s3.nightly' } });
    expect(plan.parent.children!.map((c) => [c.queueName, c.opts.jobId, (c.data as { sourceNode: string }).sourceNode])).toEqual([
      ['node-n2', 'restore.s3.nightly.n2.Article.0', 'a1'],
      ['node-n1', 'restore.s3.nightly.n1.Article.1', 'a2'],
    ]);
  });

  it('queues the largest shards first, by file size (format 2) or stored bytes (format 1), so a restore does not end on one large shard', () => {
    const manifests = nodeManifests([index('Article', ['a1', 'a2', 'a1']), index('Author', ['a2'])]);
    const sized = (node: string, idx: string, shard: number, sizes: { bytes: number; file?: number }) => {
      const object = manifests.get(node)!.shards.find((s) => s.index === idx && s.shard === shard)!;
      object.bytes = sizes.bytes;
      if (sizes.file !== undefined) Object.assign(object, { file: { size: sizes.file, sha256: 'b'.repeat(64), chunks: 1, newChunks: 0 } });
    };
    sized('a1', 'Article', 0, { bytes: 10, file: 5_000 });
    sized('a2', 'Article', 1, { bytes: 900, file: 90_000 });
    sized('a1', 'Article', 2, { bytes: 20, file: 20_000 });
    sized('a2', 'Author', 0, { bytes: 50_000 });
    const plan = planRestore({ op: restore, overrides: {}, classes: ['Article', 'Author'], mapping: { a1: 'n1', a2: 'n2' }, nodeManifests: manifests });
    expect(plan.parent.children!.map((c) => c.opts.jobId)).toEqual([
      'restore.s3.nightly.n2.Article.1',
      'restore.s3.nightly.n2.Author.0',
      'restore.s3.nightly.n1.Article.2',
      'restore.s3.nightly.n1.Article.0',
    ]);
    // The placement the restore recreates is the backup's, whatever the order of the jobs.
    expect(plan.indexes.map((i) => i.placement)).toEqual([['n1', 'n2', 'n1'], ['n2']]);
  });

  it('refuses, naming what is missing, a backup whose manifests do not describe every shard', () => {
    const damaged = nodeManifests(indexes);
    damaged.get('a2')!.shards = damaged.get('a2')!.shards.filter((s) => s.index !== 'Article');
    const plan = () => planRestore({ op: restore, overrides: {}, classes: ['Article'], mapping: { a1: 'n1', a2: 'n2' }, nodeManifests: damaged });
    expect(plan).toThrow(IntegrityError);
    expect(plan).toThrow('backup "nightly" is incomplete: nightly/a2/backup.json lists no object for shard Article/1');
    expect(() => planRestore({ op: restore, overrides: {}, classes: ['Book'], mapping: { a1: 'n1', a2: 'n2' }, nodeManifests: nodeManifests(indexes) })).toThrow(
      'no node manifest describes class Book',
    );
    expect(() => planRestore({ op: restore, overrides: {}, classes: ['Article'], mapping: { a1: 'n1' }, nodeManifests: nodeManifests(indexes) })).toThrow(
      'places a shard of Article on a2, which is not one of its nodes',
    );
  });
});

describe('status reading', () => {
  const state = (id: string, status: OperationState['status'], extra: Partial<OperationState> = {}): OperationState => ({
    op: { ...backup, id },
    status,
    path: `/b/${id}`,
    classes: ['A'],
    startedAt: `2026-12-03T00:00:0${id.length}Z`,
    shardsTotal: 2,
    overrides: {},
    ...extra,
  });
  const manifest = (id: string, status: GlobalManifest['status'], startedAt: string): GlobalManifest => ({
    version: 1,
    id,
    backend: 's3',
    status,
    nodes: ['n1'],
    classes: ['A'],
    startedAt,
    completedAt: startedAt,
    formatVersion: 1,
    compression: 'BestSpeed',
    totals: { shards: 3, docs: 30, bytes: 300 },
    nodeManifests: {},
  });
  const progress = { shardsDone: 1, shardsTotal: 2, docs: 5, bytes: 50 };

  it('shows an error only once the operation has failed or was cancelled, and the notes it was given', () => {
    expect(statusFromState(state('x', 'TRANSFERRING', { error: 'shard A/0 on n1 failed: disk' }), progress)).not.toHaveProperty('error');
    expect(statusFromState(state('x', 'FAILED', { error: 'shard A/0 on n1 failed: disk' }), progress)).toMatchObject({ status: 'FAILED', error: 'shard A/0 on n1 failed: disk' });
    expect(statusFromState(state('x', 'STARTED', { notes: ['config.ChunkSize is not applied'] }), progress)).toMatchObject({ notes: ['config.ChunkSize is not applied'], progress });
  });

  it('answers a finished backup from its manifest, with full progress, where it is now', () => {
    // Written elsewhere (its manifest says so), read from here: a copied or moved backup.
    expect(statusFromManifest({ ...manifest('m', 'SUCCESS', '2026-12-01T00:00:00Z'), path: 's3://old-bucket/m' }, 's3', (id) => `s3://bucket/${id}`)).toMatchObject({
      id: 'm',
      path: 's3://bucket/m',
      status: 'SUCCESS',
      progress: { shardsDone: 3, shardsTotal: 3, docs: 30, bytes: 300 },
    });
  });

  it('lists manifests and running operations oldest first; Redis wins while running and for a cancel', () => {
    const items = listing(
      [manifest('old', 'SUCCESS', '2026-12-01T00:00:00Z'), manifest('done', 'SUCCESS', '2026-12-02T00:00:00Z')],
      [state('done', 'SUCCESS'), state('running', 'TRANSFERRING'), state('gone', 'CANCELED')],
    );
    expect(items.map((i) => [i.id, i.status])).toEqual([
      ['old', 'SUCCESS'],
      ['done', 'SUCCESS'],
      ['gone', 'CANCELED'],
      ['running', 'TRANSFERRING'],
    ]);
    expect(items.find((i) => i.id === 'done')!.startedAt).toBe('2026-12-02T00:00:00Z');
  });
});
