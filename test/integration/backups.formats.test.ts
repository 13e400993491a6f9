/**
 * Users' backups outlive the code that wrote them. A backup of each repository format, written
 * by the version that wrote that format and kept as a fixture (test/fixtures/backup-v<N>, made
 * by scripts/make-backup-fixture.ts), must list, verify and restore identical with every later
 * version, from each of the three real backends (the fixture's objects copied into it as they
 * are: S3 and GCS read a snapshot's blobs by ranges, the filesystem from its packs' files):
 * - format 1: one gzip'd docs dump object per shard (docs/formats.md §1);
 * - format 2: a snapshot per shard in the location's content-addressed repository (§3), the
 *   fixture holding the repository beside the backup; and format 2 as its first versions wrote
 *   it (backup-v2-21c6d48: a snapshot's `sha256` is that of the file's bytes, §3.3).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApi } from '../support/api.ts';
import { useBackendApi } from '../support/backend-api.ts';
import type { BackendFixture } from '../support/backend-fixtures.ts';
import { readIndex, waitForStatus } from '../support/backups.ts';
import { ROOT } from '../support/process.ts';

/** Every file under dir, as paths relative to it. */
function filesUnder(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

describe.each(['filesystem', 's3', 'gcs'] as const)('on %s', (backendName) => {
  const cluster = useBackendApi(backendName);
  let t: TestApi;
  let backend: BackendFixture;
  const base = `/v1/backups/${backendName}`;

  beforeAll(() => {
    ({ t, backend } = cluster);
  });

  describe.each(['1', '2', '2-21c6d48'])('a backup of format version %s', (format) => {
    const FIXTURE = path.join(ROOT, `test/fixtures/backup-v${format}`);
    const ID = `format-v${format}`;
    const expected = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'expected.json'), 'utf8')) as Record<string, Record<string, string>>;
    // The backup, and for format 2 the repository beside it: its objects, as they are.
    const copied = filesUnder(FIXTURE).filter((name) => name !== 'expected.json');

    beforeAll(async () => {
      for (const name of copied) await backend.backend.write(name, fs.createReadStream(path.join(FIXTURE, name)));
    });

    // The next format's backup is restored into the same cluster: its classes go, and this one.
    afterAll(async () => {
      await t.call('DELETE', '/v1/schema/Article');
      await t.call('DELETE', '/v1/schema/twitter');
      for (const top of fs.readdirSync(FIXTURE).filter((name) => name !== 'expected.json')) await backend.backend.deletePrefix(`${top}/`);
    });

    it('lists, with its status and classes, read from its manifest alone', async () => {
      const list = (await (await t.call('GET', base)).json()) as { id: string; status: string; classes: string[] }[];
      expect(list).toEqual([expect.objectContaining({ id: ID, status: 'SUCCESS', classes: ['Article', 'twitter'] })]);
      const status = await (await t.call('GET', `${base}/${ID}`)).json();
      expect(status).toMatchObject({ id: ID, status: 'SUCCESS', classes: ['Article', 'twitter'] });
    });

    it('verifies OK: every object against its manifest', async () => {
      const res = await t.call('GET', `${base}/${ID}/verify`);
      const report = (await res.json()) as { status: string; objects: number; problems: unknown[] };
      expect(res.status, JSON.stringify(report)).toBe(200);
      expect(report).toMatchObject({ status: 'OK', problems: [] });
      // backup_config.json, three backup.json, seven shard objects (dumps, or snapshots whose every chunk was checked).
      expect(report.objects).toBe(11);
    });

    it('restores identical documents, schemas and metadata', async () => {
      const res = await t.call('POST', `${base}/${ID}/restore`, {});
      expect(res.status, JSON.stringify(await res.json())).toBe(200);
      const done = await waitForStatus(t.call, `${base}/${ID}/restore`, undefined, 60_000);
      expect(done.status, JSON.stringify(done)).toBe('SUCCESS');
      for (const index of ['Article', 'twitter']) {
        const now = Object.fromEntries(await readIndex(t.config.dataDir, t.config.nodes, index));
        expect(Object.keys(now).length).toBe(Object.keys(expected[index]!).length);
        expect(now).toEqual(expected[index]);
      }
      const article = (await (await t.call('GET', '/v1/schema/Article')).json()) as { properties: { name: string; dataType: string[] }[]; shardingConfig: { actualCount: number } };
      expect(article.properties.map((p) => [p.name, p.dataType[0]])).toEqual([
        ['title', 'text'],
        ['words', 'int'],
        ['published', 'date'],
        ['tags', 'text[]'],
      ]);
      expect(article.shardingConfig.actualCount).toBe(4);
      expect(await (await t.call('GET', '/twitter/:metadata/owner')).json()).toEqual({ name: 'fixture' });
    });
  });
});
