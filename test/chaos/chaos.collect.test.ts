/**
 * Garbage collection that dies (issue 13): a collector process is SIGKILLed at a random moment
 * of its work, round after round, while backups whose objects were removed leave runs to
 * collect. Whatever it had removed when it died, every backup that still exists verifies OK
 * and restores exactly — a collection removes a run's index file before its packs, and only
 * runs no snapshot names — and a later collection finishes the job: the runs only the removed
 * backups named are gone. The dead collectors' exclusive locks are not refreshed any more; each
 * next collector is told to take them as stale at once (in production it waits STALE_MS).
 * Seeded: SHARDVAULT_SEED replays a run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../shared/backends/backend.ts';
import { readSmall } from '../../shared/backends/bodies.ts';
import { configuredBackends } from '../../shared/backups/backends.ts';
import { LocalCatalog } from '../../shared/cluster/catalog.ts';
import { LocalShardHost } from '../../shared/cluster/shard-host.ts';
import { decodeObject } from '../../shared/repository/codec.ts';
import { snapshotSchema } from '../../shared/repository/format.ts';
import { createLogger } from '../../shared/logger.ts';
import type { RedisServer } from '../../shared/redis-server.ts';
import { collectGarbage } from '../../shared/repository/collect.ts';
import { createWorker, type ShardvaultWorker } from '../../worker/worker.ts';
import { createTestApi, type TestApi } from '../support/api.ts';
import { makeDoc, readIndex, waitForStatus } from '../support/backups.ts';
import { spawnNode } from '../support/process.ts';
import { startTestRedis } from '../support/redis.ts';
import { byMode, createRng, recordFigures, seedFor } from '../support/reliability.ts';

const ROUNDS = byMode({ short: 5, long: 20 });
const BACKUPS = 8;

let redis: RedisServer;
let t: TestApi;
let worker: ShardvaultWorker;
const taken = new Map<string, Map<string, string>>();
const figures = { seed: 0, rounds: 0, killedMidWork: 0, finishedBeforeKill: 0, objectsRemovedByKilledCollectors: 0, backupsVerified: 0, documentsCompared: 0 };

beforeAll(async () => {
  redis = await startTestRedis();
  t = createTestApi(redis.url);
  worker = createWorker({ config: t.config, logger: createLogger('silent'), redisUrl: redis.url, catalog: new LocalCatalog(t.store), shards: new LocalShardHost(t.store) });
  await worker.start();
  for (let b = 0; b < BACKUPS; b++) {
    const docs = Array.from({ length: 400 }, (_, i) => makeDoc('Article', b * 400 + i));
    expect((await t.store.putDocuments('Article', docs)).every((r) => r.ok)).toBe(true);
    const id = `gc-${b}`;
    expect((await t.call('POST', '/v1/backups/filesystem', { id })).status).toBe(200);
    expect((await waitForStatus(t.call, `/v1/backups/filesystem/${id}`)).status).toBe('SUCCESS');
    taken.set(id, await readIndex(t.config.dataDir, t.config.nodes, 'Article'));
  }
}, 120_000);

afterAll(async () => {
  recordFigures('collect-kills', figures);
  await worker?.stop();
  await t?.close();
  await redis?.stop();
});

/** The index files (runs) the snapshots of a backup name that no other backup's snapshots name. */
async function snapshotIndexes(backend: Backend, id: string): Promise<string[]> {
  const mine = new Set<string>();
  const others = new Set<string>();
  for (const { key } of await backend.list('')) {
    const parts = key.split('/');
    if (parts.length !== 4 || key.startsWith('.repository/')) continue;
    const body = await readSmall(await backend.read(key), 64 * 1024 * 1024, 'snapshot');
    const snapshot = await decodeObject(body, snapshotSchema, key);
    for (const ix of snapshot.indexes) (parts[0] === id ? mine : others).add(ix);
  }
  return [...mine].filter((ix) => !others.has(ix));
}

describe('a collector killed part-way', () => {
  it('never removes a chunk a remaining backup names, and a later collection finishes the job', async () => {
    const seed = seedFor('collect-kills');
    const rng = createRng(seed);
    figures.seed = seed;
    const backend = configuredBackends(t.config)('filesystem');
    // Backups gone without a collection. gc-7 is the newest: the runs it stored are named by no
    // other backup, so they must go; older ones share chunks with the backups after them.
    const onlyNamedByLast = await snapshotIndexes(backend, 'gc-7');
    for (const id of ['gc-1', 'gc-3', 'gc-5', 'gc-7']) {
      await backend.deletePrefix(`${id}/`);
      taken.delete(id);
    }
    for (let round = 0; round < ROUNDS; round++) {
      const before = (await backend.list('.repository/')).length;
      const collector = spawnNode('test/support/collector.ts', ['filesystem', '0'], { BACKUP_FILESYSTEM_PATH: t.config.backends.filesystem.path });
      await collector.waitFor(/collecting/, 30_000);
      await new Promise((r) => setTimeout(r, rng.int(0, 60)));
      const finished = /"runs":/.test(collector.output());
      await collector.kill('SIGKILL');
      figures.rounds++;
      if (finished) figures.finishedBeforeKill++;
      else {
        figures.killedMidWork++;
        figures.objectsRemovedByKilledCollectors += Math.max(0, before - (await backend.list('.repository/')).length);
      }
      for (const id of taken.keys()) {
        const report = (await (await t.call('GET', `/v1/backups/filesystem/${id}/verify`)).json()) as { status: string; problems: unknown[] };
        expect(report, `${id} after round ${round} (seed ${seed})`).toMatchObject({ status: 'OK', problems: [] });
        figures.backupsVerified++;
      }
    }
    await collectGarbage(backend, { owner: 'test', staleMs: 0 });
    const left = new Set((await backend.list('.repository/index/')).map((o) => o.key.split('/').pop()));
    for (const id of onlyNamedByLast) expect(left.has(id), `run ${id} of the removed gc-7`).toBe(false);
    expect(await backend.list('.repository/locks/')).toEqual([]);
    for (const id of taken.keys()) {
      expect(await (await t.call('GET', `/v1/backups/filesystem/${id}/verify`)).json()).toMatchObject({ status: 'OK' });
    }
    const last = 'gc-6';
    await t.store.deleteIndex('Article');
    expect((await t.call('POST', `/v1/backups/filesystem/${last}/restore`, {})).status).toBe(200);
    expect((await waitForStatus(t.call, `/v1/backups/filesystem/${last}/restore`)).status).toBe('SUCCESS');
    const restored = await readIndex(t.config.dataDir, t.config.nodes, 'Article');
    expect(restored).toEqual(taken.get(last));
    figures.documentsCompared += restored.size;
  }, 180_000);
});
