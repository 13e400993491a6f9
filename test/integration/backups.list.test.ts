/**
 * The backup list at scale, on real backends: it reads the top-level names (never the
 * repository's objects), reads each manifest once while it is fresh, answers oldest first,
 * and pages in id order with `?limit=&after=`.
 */
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCatalog } from '../../shared/cluster/catalog.ts';
import { createBackupService, type BackupService } from '../../shared/backups/service.ts';
import { createLogger } from '../../shared/logger.ts';
import { createTestApi, type TestApi } from '../support/api.ts';
import { BACKEND_FIXTURES, type BackendFixture } from '../support/backend-fixtures.ts';
import { counting } from '../support/counting-backend.ts';
import { startTestRedis, type TestRedis } from '../support/redis.ts';
import { tempDir } from '../support/temp.ts';

const BACKUPS = 300;
const template = JSON.parse(fs.readFileSync(new URL('../fixtures/backup-v1/format-v1/backup_config.json', import.meta.url), 'utf8')) as Record<string, unknown>;
const idOf = (i: number) => `nightly-${String(i).padStart(4, '0')}`;

let redis: TestRedis;
const tmp = tempDir();
beforeAll(async () => {
  redis = await startTestRedis();
});
afterAll(async () => {
  await redis?.stop();
  tmp.cleanup();
});

describe.each(['filesystem', 's3'] as const)(`listing ${BACKUPS} backups in %s`, (name) => {
  let fixture: BackendFixture;
  let t: TestApi;
  let service: BackupService;
  let counted: ReturnType<typeof counting>;

  beforeAll(async () => {
    fixture = await BACKEND_FIXTURES[name](`${tmp.dir}/${name}`);
    // Backups started in the reverse order of their ids, so "oldest first" and "id order" differ.
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < BACKUPS; i++) {
      const manifest = { ...template, id: idOf(i), backend: name, startedAt: new Date(Date.UTC(2026, 0, 1) + (BACKUPS - i) * 60_000).toISOString() };
      writes.push(fixture.backend.write(`${idOf(i)}/backup_config.json`, Readable.from([JSON.stringify(manifest)])));
      writes.push(fixture.backend.write(`${idOf(i)}/node-1/backup.json`, Readable.from(['{}'])));
      if (writes.length >= 64) await Promise.all(writes.splice(0));
    }
    // The repository beside them holds many objects the list must never walk.
    for (let i = 0; i < 200; i++) writes.push(fixture.backend.write(`.repository/packs/${String(i % 16).padStart(2, '0')}/p${i}`, Readable.from(['x'])));
    // A directory with no manifest (a backup still being written, or half deleted) is not a backup.
    writes.push(fixture.backend.write('unfinished/node-1/backup.json', Readable.from(['{}'])));
    await Promise.all(writes);
    t = createTestApi(redis.url, fixture.env);
    counted = counting(fixture.backend);
    service = createBackupService({ config: t.config, catalog: new LocalCatalog(t.store), redis: t.redis, logger: createLogger('silent'), backends: () => counted.backend });
  }, 180_000);

  afterAll(async () => {
    await service?.close();
    await t?.close();
    await fixture?.stop();
  });

  it('answers every backup oldest first from one listing of top-level names, reading each manifest once while fresh', async () => {
    counted.reset();
    const all = await service.list(name);
    expect(all).toHaveLength(BACKUPS);
    expect(all.map((b) => b.id)).toEqual(Array.from({ length: BACKUPS }, (_, i) => idOf(BACKUPS - 1 - i)));
    expect(all[0]).toMatchObject({ status: 'SUCCESS', classes: ['Article', 'twitter'] });
    // The directory without a manifest costs one read that finds nothing.
    expect(counted.calls).toEqual({ listDirectories: 1, read: BACKUPS + 1 });

    // Polled again: one listing, and only the directory without a manifest is read again.
    counted.reset();
    expect(await service.list(name)).toEqual(all);
    expect(counted.calls).toEqual({ listDirectories: 1, read: 1 });

    // Ten lists at once share one listing. (The directory without a manifest is read by those
    // lists that reach it together once per wave: how many waves depends on the machine's load.)
    counted.reset();
    const lists = await Promise.all(Array.from({ length: 10 }, () => service.list(name)));
    for (const l of lists) expect(l).toEqual(all);
    expect(counted.calls.listDirectories).toBe(1);
  });

  it('pages in id order with limit and after, every backup once, and refuses a bad page naming the field', async () => {
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await service.list(name, {}, { limit: 70, ...(after ? { after } : {}) });
      seen.push(...page.map((b) => b.id));
      if (page.length < 70) break;
      after = page.at(-1)!.id;
    }
    expect(seen).toEqual(Array.from({ length: BACKUPS }, (_, i) => idOf(i)));
    expect((await service.list(name, {}, { limit: 3, after: idOf(BACKUPS - 2) })).map((b) => b.id)).toEqual([idOf(BACKUPS - 1)]);

    const limit = await t.call('GET', `/v1/backups/${name}?limit=0`);
    expect(limit.status).toBe(422);
    expect((await limit.json()).error[0].message).toMatch(/^limit must be an integer from 1 to 10000/);
    const cursor = await t.call('GET', `/v1/backups/${name}?after=../x`);
    expect(cursor.status).toBe(422);
    expect((await cursor.json()).error[0].message).toMatch(/^after must be a backup id/);
  });

  it('answers 404 at once for a backup another process deleted, whose manifest this one holds in memory', async () => {
    const other = createBackupService({ config: t.config, catalog: new LocalCatalog(t.store), redis: t.redis, logger: createLogger('silent'), backends: () => fixture.backend });
    try {
      expect((await service.status(name, idOf(9))).status).toBe('SUCCESS');
      counted.reset();
      expect((await service.status(name, idOf(9))).status).toBe('SUCCESS');
      expect(counted.calls.read ?? 0, 'answered from memory').toBe(0);
      await other.deleteBackup(name, idOf(9));
      await expect(service.status(name, idOf(9))).rejects.toThrow(/not found/);
      // Other backups are still answered from memory.
      counted.reset();
      expect((await service.status(name, idOf(10))).status).toBe('SUCCESS');
      expect(counted.calls.read ?? 0).toBe(0);
    } finally {
      await other.close();
    }
  });

  it('drops a backup deleted by another process once its objects are gone', async () => {
    await fixture.backend.deletePrefix(`${idOf(7)}/`);
    const ids = (await service.list(name)).map((b) => b.id);
    expect(ids).toHaveLength(BACKUPS - 2);
    expect(ids).not.toContain(idOf(7));
    expect(ids).not.toContain(idOf(9));
  });
});
