/**
 * Makes test/fixtures/backup-v<N>: a backup written in repository format version N, with the
 * documents it holds, so that every later version of shardvault is tested to still list, verify
 * and restore it. Run once per format, with the code that writes that format, never again: a
 * fixture is users' data from an earlier version.
 *
 *   node --import tsx scripts/make-backup-fixture.ts 1   # at commit "Tests: a backup of format version 1 as a fixture"
 *   node --import tsx scripts/make-backup-fixture.ts 2   # at commit 79a613e
 *
 * test/fixtures/backup-v2-21c6d48 is format 2 as its first versions wrote it (21c6d48, 7cb9385:
 * a snapshot's `sha256` is that of the file's bytes, not the fingerprint of its chunks), made at
 * 21c6d48 with this script changed in four lines: the worker is given `store: t.store` (that
 * version has no LocalCatalog/LocalShardHost), and the output directory, the backup id
 * (`format-v2-21c6d48`) and the Redis port came from the environment.
 *
 * Format 1 is one gzip'd docs dump object per shard (docs/formats.md §1); format 2 is a
 * snapshot per shard in the location's content-addressed repository (§3), so its fixture holds
 * the repository (`.repository/`) beside the backup.
 *
 * What it holds: a Weaviate class `Article` (4 shards, 120 objects with uuids, text, int, date
 * and text[] properties), and a Xapiand index `twitter` (integer ids, a datetime field, index
 * metadata) over 3 nodes; backup id `format-v<N>`, CompressionLevel DefaultCompression.
 * `expected.json` beside the backup lists every document as stored (id → JSON).
 */
import fs from 'node:fs';
import path from 'node:path';
import { LocalCatalog } from '../shared/cluster/catalog.ts';
import { LocalShardHost } from '../shared/cluster/shard-host.ts';
import { createLogger } from '../shared/logger.ts';
import { startRedisServer } from '../shared/redis-server.ts';
import { createWorker } from '../worker/worker.ts';
import { createTestApi } from '../test/support/api.ts';
import { readIndex, waitForStatus } from '../test/support/backups.ts';
import { tempDir } from '../test/support/temp.ts';

const format = process.argv[2];
if (format !== '1' && format !== '2') throw new Error('usage: make-backup-fixture.ts 1|2 (the repository format the running code writes)');
const OUT = path.resolve(import.meta.dirname, `../test/fixtures/backup-v${format}`);
const FIXTURE_BACKUP_ID = `format-v${format}`;

const tmp = tempDir('shardvault-fixture-');
const redis = await startRedisServer({ dir: path.join(tmp.dir, 'redis') });
const t = createTestApi(redis.url, { BACKUP_FILESYSTEM_PATH: path.join(tmp.dir, 'backups') });
const worker = createWorker({ config: t.config, logger: createLogger('silent'), redisUrl: redis.url, catalog: new LocalCatalog(t.store), shards: new LocalShardHost(t.store) });
try {
  await worker.start();
  const ok = async (res: Response | Promise<Response>) => {
    const r = await res;
    if (r.status >= 300) throw new Error(`${r.status} ${await r.text()}`);
  };
  await ok(
    t.call('POST', '/v1/schema', {
      class: 'Article',
      properties: [
        { name: 'title', dataType: ['text'] },
        { name: 'words', dataType: ['int'] },
        { name: 'published', dataType: ['date'] },
        { name: 'tags', dataType: ['text[]'] },
      ],
      shardingConfig: { desiredCount: 4 },
    }),
  );
  const objects = Array.from({ length: 120 }, (_, i) => ({
    class: 'Article',
    id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    properties: { title: `Article ${i}`, words: 100 + i, published: `2026-0${1 + (i % 9)}-1${i % 10}T10:00:00Z`, tags: [`t${i % 5}`, 'all'] },
  }));
  await ok(t.call('POST', '/v1/batch/objects', { objects }));
  for (let i = 1; i <= 40; i++) {
    await ok(t.call('PUT', `/twitter/${i}`, { user: i % 2 ? 'Kronuz' : 'shardvault', postDate: `2016-11-${String(1 + (i % 28)).padStart(2, '0')}T13:12:00`, message: `tweet ${i}` }));
  }
  await ok(t.call('PUT', '/twitter/:metadata/owner', { name: 'fixture' }));
  await ok(t.call('POST', '/v1/backups/filesystem', { id: FIXTURE_BACKUP_ID, config: { CompressionLevel: 'DefaultCompression' } }));
  const done = await waitForStatus(t.call, `/v1/backups/filesystem/${FIXTURE_BACKUP_ID}`, undefined, 60_000);
  if (done.status !== 'SUCCESS') throw new Error(`fixture backup ended ${done.status}: ${done.error}`);

  const expected: Record<string, Record<string, string>> = {};
  for (const index of ['Article', 'twitter']) expected[index] = Object.fromEntries(await readIndex(t.config.dataDir, t.config.nodes, index));
  fs.rmSync(OUT, { recursive: true, force: true });
  fs.mkdirSync(OUT, { recursive: true });
  for (const name of [FIXTURE_BACKUP_ID, ...(format === '2' ? ['.repository'] : [])]) {
    fs.cpSync(path.join(t.config.backends.filesystem.path, name), path.join(OUT, name), { recursive: true });
  }
  fs.writeFileSync(path.join(OUT, 'expected.json'), `${JSON.stringify(expected, null, 1)}\n`);
  console.log(`wrote ${OUT}`);
} finally {
  await worker.stop();
  await t.close();
  await redis.stop();
  tmp.cleanup();
}
