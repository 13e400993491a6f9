/**
 * Incremental backups over the repository (issue 13), on the three real backends, with the API
 * in-process and a real worker over a private Redis: a chain full → incremental → incremental,
 * each restoring to exactly what the source held when it was taken; later backups store a small
 * share of what the first did; `incremental_base_backup_id` is checked, recorded and answered;
 * deleting the base (and collecting garbage) leaves the rest restorable; a collection that
 * runs while a backup runs leaves every SUCCESS backup verifying OK.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createBackupService } from '../../shared/backups/service.ts';
import { OperationStore } from '../../shared/backups/state.ts';
import { LocalCatalog } from '../../shared/cluster/catalog.ts';
import { operationRef } from '../../shared/jobs/operation.ts';
import { createLogger } from '../../shared/logger.ts';
import { collectGarbage } from '../../shared/repository/collect.ts';
import { acquireLock } from '../../shared/repository/locks.ts';
import type { TestApi } from '../support/api.ts';
import { useBackendApi } from '../support/backend-api.ts';
import type { BackendFixture } from '../support/backend-fixtures.ts';
import { makeDoc, readIndex, waitForStatus } from '../support/backups.ts';

const DOCS = 3000;

describe.each(['filesystem', 's3', 'gcs'] as const)('incremental backups on %s', (name) => {
  const cluster = useBackendApi(name);
  let fixture: BackendFixture;
  let t: TestApi;
  /** Each backup's content when it was taken. */
  const taken = new Map<string, Map<string, string>>();
  const base = `/v1/backups/${name}`;

  const json = async <T = Record<string, unknown>>(res: Response) => (await res.json()) as T;
  async function backup(id: string, body: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const res = await t.call('POST', base, { id, include: ['Article'], ...body });
    expect(res.status, JSON.stringify(await res.clone().json())).toBe(200);
    const done = await waitForStatus(t.call, `${base}/${id}`);
    expect(done.status, JSON.stringify(done)).toBe('SUCCESS');
    taken.set(id, await readIndex(t.config.dataDir, t.config.nodes, 'Article'));
    return done as unknown as Record<string, unknown>;
  }
  async function restoreAndCompare(id: string): Promise<void> {
    const live = await readIndex(t.config.dataDir, t.config.nodes, 'Article');
    await t.store.deleteIndex('Article');
    expect((await t.call('POST', `${base}/${id}/restore`, {})).status).toBe(200);
    const done = await waitForStatus(t.call, `${base}/${id}/restore`);
    expect(done.status, JSON.stringify(done)).toBe('SUCCESS');
    expect(await readIndex(t.config.dataDir, t.config.nodes, 'Article')).toEqual(taken.get(id));
    // Back to the live content for what follows.
    await t.store.deleteIndex('Article');
    for (const [, text] of live) expect((await t.store.putDocuments('Article', [JSON.parse(text)]))[0]!.ok).toBe(true);
  }
  const change = async (round: number) => {
    // 1 % updated, 0.5 % deleted, 1 % added.
    const updates = Array.from({ length: DOCS / 100 }, (_, i) => makeDoc('Article', i * 100, { round }));
    expect((await t.store.putDocuments('Article', updates)).every((r) => r.ok)).toBe(true);
    for (let i = 50; i < DOCS; i += 200) await t.store.deleteDocument('Article', makeDoc('Article', i + round)._id);
    const added = Array.from({ length: DOCS / 100 }, (_, i) => makeDoc('Article', DOCS * round + i));
    expect((await t.store.putDocuments('Article', added)).every((r) => r.ok)).toBe(true);
  };
  const stored = async (id: string) => {
    const res = await json<{ progress: { bytes: number } }>(await t.call('GET', `${base}/${id}`));
    return res.progress.bytes;
  };

  beforeAll(async () => {
    ({ t, backend: fixture } = cluster);
    for (let i = 0; i < DOCS; i += 500) {
      const docs = Array.from({ length: 500 }, (_, j) => makeDoc('Article', i + j));
      expect((await t.store.putDocuments('Article', docs)).every((r) => r.ok)).toBe(true);
    }
  }, 120_000);

  it('chains full → incremental → incremental; later backups store much less; each restores as it was taken', async () => {
    await backup('full');
    await change(1);
    const inc1 = await backup('inc-1', { incremental_base_backup_id: 'full' });
    expect(inc1.incremental_base_backup_id).toBe('full');
    await change(2);
    await backup('inc-2', { incremental_base_backup_id: 'inc-1' });
    // Small documents (~20 a page) make 1 % of them touch a large share of pages; the bench
    // measures the share on realistic data. Here: far less than a full backup, never all of it.
    expect(await stored('inc-1')).toBeLessThan((await stored('full')) * 0.5);
    expect(await stored('inc-2')).toBeLessThan((await stored('full')) * 0.5);
    const listed = await json<{ id: string; incremental_base_backup_id?: string }[]>(await t.call('GET', base));
    expect(listed.find((b) => b.id === 'inc-2')?.incremental_base_backup_id).toBe('inc-1');
    for (const id of ['full', 'inc-1', 'inc-2']) await restoreAndCompare(id);
  }, 180_000);

  it('refuses an incremental_base_backup_id that does not exist or did not succeed, naming it', async () => {
    const res = await t.call('POST', base, { id: 'inc-bad', incremental_base_backup_id: 'no-such' });
    expect(res.status).toBe(422);
    expect((await json<{ error: { message: string }[] }>(res)).error[0]!.message).toMatch(/^incremental_base_backup_id "no-such" does not exist in backend/);
    const bad = await t.call('POST', base, { id: 'inc-bad', incremental_base_backup_id: 'Not An Id' });
    expect(bad.status).toBe(422);
    // A base still running has no manifest yet (it is written last): said so, not "does not exist".
    const { path } = await json<{ path: string }>(await t.call('GET', `${base}/full`));
    const going = operationRef('backup', name, 'inc-going');
    await new OperationStore(t.redis).begin(going, { path: path.replace(/full$/, 'inc-going'), classes: ['Article'], startedAt: new Date().toISOString(), shardsTotal: 1, overrides: {} });
    try {
      const onRunning = await t.call('POST', base, { id: 'inc-bad', incremental_base_backup_id: 'inc-going' });
      expect(onRunning.status).toBe(422);
      expect((await json<{ error: { message: string }[] }>(onRunning)).error[0]!.message).toBe(
        'incremental_base_backup_id "inc-going" is still running (STARTED); a base must be a SUCCESS backup: start this one once it has ended',
      );
    } finally {
      await new OperationStore(t.redis).advance(going, 'FAILED', { error: 'ended for the test', completedAt: new Date().toISOString() });
    }
    // Ended before it wrote anything, it is listed from Redis alone, and deleted from there.
    expect((await json<{ id: string }[]>(await t.call('GET', base))).map((b) => b.id)).toContain('inc-going');
    const deleted = await t.call('POST', `${base}/inc-going/delete`);
    expect(deleted.status).toBe(200);
    expect(await json(deleted)).toMatchObject({ id: 'inc-going', deleted: 0 });
    expect((await t.call('GET', `${base}/inc-going`)).status).toBe(404);
    expect((await json<{ id: string }[]>(await t.call('GET', base))).map((b) => b.id)).not.toContain('inc-going');
  });

  it('deletes the base: it is gone, the later backups still verify and restore, unused chunks are collected', async () => {
    const res = await t.call('POST', `${base}/full/delete`);
    const body = await json<{ deleted: number; collected: { runs: number; kept: number } }>(res);
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.deleted).toBeGreaterThan(0);
    expect((await t.call('GET', `${base}/full`)).status).toBe(404);
    expect((await t.call('POST', `${base}/full/delete`)).status).toBe(404);
    for (const id of ['inc-1', 'inc-2']) {
      expect(await json(await t.call('GET', `${base}/${id}/verify`))).toMatchObject({ status: 'OK', problems: [] });
    }
    await restoreAndCompare('inc-2');
    // Deleting the rest at once, as a schedule's retention does: each backup (one that does not
    // exist is named, the others go on), then one collection for all of them, which leaves a
    // repository with nothing in it.
    const service = createBackupService({ config: t.config, catalog: new LocalCatalog(t.store), redis: t.redis, logger: createLogger('silent') });
    try {
      const runs = (await fixture.backend.list('.repository/index/')).length;
      const { outcomes, collected } = await service.deleteBackups(name, ['inc-1', 'no-such', 'inc-2']);
      expect(outcomes).toEqual([
        { id: 'inc-1', deleted: expect.any(Number) },
        { id: 'no-such', error: expect.stringMatching(/^backup "no-such" not found/) },
        { id: 'inc-2', deleted: expect.any(Number) },
      ]);
      // One collection removed the runs (index files) of both.
      expect(collected).toMatchObject({ runs, kept: 0 });
    } finally {
      await service.close();
    }
    for (const id of ['inc-1', 'inc-2']) expect((await t.call('GET', `${base}/${id}`)).status).toBe(404);
    expect((await fixture.backend.list('.repository/packs/')).length).toBe(0);
    expect((await fixture.backend.list('.repository/index/')).length).toBe(0);
  }, 180_000);

  it('a delete whose collection cannot have the repository in time deletes the backup and says the collection was deferred', async () => {
    await backup('held-1');
    // A running backup holds the repository (shared) past the collection's wait.
    const held = await acquireLock(fixture.backend, false, { owner: 'a backup that runs on' });
    const service = createBackupService({ config: t.config, catalog: new LocalCatalog(t.store), redis: t.redis, logger: createLogger('silent'), collectLockWaitMs: 1000 });
    try {
      const result = await service.deleteBackup(name, 'held-1');
      expect(result).toMatchObject({ id: 'held-1', deleted: expect.any(Number) });
      expect(result.collected).toBeUndefined();
      expect(result.collectionDeferred).toMatch(/is locked by .*a backup that runs on.*: the next delete in this location collects what this one left$/);
      expect((await t.call('GET', `${base}/held-1`)).status).toBe(404);
    } finally {
      await held.release();
      await service.close();
    }
  }, 180_000);

  it('a collection while backups run: it waits for them, and every SUCCESS backup verifies OK afterwards', async () => {
    await backup('gc-a');
    await change(3);
    const started = await t.call('POST', base, { id: 'gc-b', include: ['Article'] });
    expect(started.status).toBe(200);
    const collecting = collectGarbage(fixture.backend, { owner: 'test' });
    const done = await waitForStatus(t.call, `${base}/gc-b`);
    expect(done.status).toBe('SUCCESS');
    await collecting;
    await collectGarbage(fixture.backend, { owner: 'test, again' });
    for (const id of ['gc-a', 'gc-b']) {
      expect(await json(await t.call('GET', `${base}/${id}/verify`))).toMatchObject({ status: 'OK', problems: [] });
    }
  }, 180_000);
});
