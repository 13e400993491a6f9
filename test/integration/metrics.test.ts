/**
 * GET /metrics after real work: an in-process API and worker over a private Redis, the
 * filesystem backend in a temp directory. A backup that succeeds and a restore that fails (a
 * damaged shard object) show up in BullMQ's queue metrics and in shardvault's counters and
 * histograms, counted once however often and from however many API instances it is scraped.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createApi } from '../../api/app.ts';
import { LocalData } from '../../shared/cluster/data.ts';
import { createLogger } from '../../shared/logger.ts';
import { OperationMeter } from '../../shared/metrics/operation-meter.ts';
import { createTestApi } from '../support/api.ts';
import { useApiWithWorker } from '../support/api-worker.ts';
import { waitForStatus } from '../support/backups.ts';

const t = useApiWithWorker({ index: 'Metered', docs: 250 });

async function scrape(api = t.api): Promise<string> {
  const res = await api.app.request('/metrics');
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

/** The value of one sample line (`name{labels} value`), labels given in any order. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([\w:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('GET /metrics', () => {
  it('shows queue metrics and the counters and histograms of a finished backup', async () => {
    const res = await t.call('POST', '/v1/backups/filesystem', { id: 'metered-1' });
    expect(res.status).toBe(200);
    const done = await waitForStatus(t.call, '/v1/backups/filesystem/metered-1');
    expect(done.status).toBe('SUCCESS');
    const { docs, bytes } = done.progress!;
    expect(docs).toBe(250);

    const text = await scrape();
    // One HELP and TYPE per family, even though BullMQ writes them once per queue.
    expect(text.match(/^# TYPE bullmq_job_count gauge$/gm)).toHaveLength(1);
    for (const queue of ['backups', 'restores', ...t.config.nodes.map((n) => `node-${n}`)]) {
      expect(sample(text, 'bullmq_job_count', { queue, state: 'waiting' }), queue).toBe(0);
    }
    expect(sample(text, 'bullmq_job_count', { queue: 'backups', state: 'completed' })).toBe(1);
    expect(sample(text, 'bullmq_job_completed_total', { queue: 'backups' })).toBe(1);
    const shardJobs = t.config.nodes.reduce((n, node) => n + (sample(text, 'bullmq_job_completed_total', { queue: `node-${node}` }) ?? 0), 0);
    expect(shardJobs).toBe(3);

    const ok = { backend: 'filesystem', outcome: 'SUCCESS' };
    expect(text).toContain('# TYPE shardvault_backups_total counter');
    expect(sample(text, 'shardvault_backups_total', ok)).toBe(1);
    expect(text).toContain('# TYPE shardvault_backup_duration_seconds histogram');
    expect(sample(text, 'shardvault_backup_duration_seconds_count', ok)).toBe(1);
    expect(sample(text, 'shardvault_backup_duration_seconds_bucket', { ...ok, le: '+Inf' })).toBe(1);
    expect(sample(text, 'shardvault_backup_duration_seconds_sum', ok)).toBeGreaterThan(0);
    expect(sample(text, 'shardvault_backup_documents_sum', ok)).toBe(250);
    expect(sample(text, 'shardvault_backup_documents_bucket', { ...ok, le: '100' })).toBe(0);
    expect(sample(text, 'shardvault_backup_documents_bucket', { ...ok, le: '1000' })).toBe(1);
    expect(sample(text, 'shardvault_backup_size_bytes_sum', ok)).toBe(bytes);
    expect(sample(text, 'shardvault_backup_size_bytes_count', ok)).toBe(1);

    // HTTP durations by route pattern, never by raw path.
    expect(sample(text, 'shardvault_http_request_duration_seconds_count', { method: 'POST', route: '/v1/backups/:backend', status: '200' })).toBe(1);
    expect(sample(text, 'shardvault_http_request_duration_seconds_count', { method: 'GET', route: '/v1/backups/:backend/:id', status: '200' })).toBeGreaterThan(0);
    expect(text).not.toContain('route="/v1/backups/filesystem');
    expect(text).toContain('# TYPE process_cpu_user_seconds_total counter');

    // Scraped again, and by a second API instance on the same Redis: still counted once.
    const other = createApi({ config: t.config, data: new LocalData(t.store), logger: createLogger('silent'), redis: t.redis });
    const [again, fromOther] = await Promise.all([scrape(), scrape(other)]);
    await other.stop();
    expect(sample(again, 'shardvault_backups_total', ok)).toBe(1);
    expect(sample(fromOther, 'shardvault_backups_total', ok)).toBe(1);
    expect(sample(fromOther, 'shardvault_backup_documents_sum', ok)).toBe(250);
  });

  it('counts a failed restore under outcome FAILED', async () => {
    // Damage one shard object: the restore fails its checksum and creates nothing.
    const root = path.join(t.config.backends.filesystem.path, 'metered-1');
    const manifest = JSON.parse(fs.readFileSync(path.join(root, t.config.nodes[0]!, 'backup.json'), 'utf8'));
    const object = path.join(t.config.backends.filesystem.path, manifest.shards[0].key);
    fs.appendFileSync(object, 'damage');
    await t.store.deleteIndex('Metered');

    expect((await t.call('POST', '/v1/backups/filesystem/metered-1/restore', {})).status).toBe(200);
    const failed = await waitForStatus(t.call, '/v1/backups/filesystem/metered-1/restore');
    expect(failed.status).toBe('FAILED');

    const text = await scrape();
    const labels = { backend: 'filesystem', outcome: 'FAILED' };
    expect(sample(text, 'shardvault_restores_total', labels)).toBe(1);
    expect(sample(text, 'shardvault_restore_duration_seconds_count', labels)).toBe(1);
    expect(sample(text, 'shardvault_restores_total', { backend: 'filesystem', outcome: 'SUCCESS' })).toBeUndefined();
    expect(sample(text, 'shardvault_backups_total', { backend: 'filesystem', outcome: 'SUCCESS' })).toBe(1);
    expect(sample(text, 'bullmq_job_completed_total', { queue: 'restores' })).toBe(1);
  });

  it('counts each operation once when meters sweep concurrently', async () => {
    const meters = Array.from({ length: 4 }, () => new OperationMeter(t.redis));
    await t.redis.del('{shardvault}:metrics:operations');
    for (const kind of ['backup', 'restore']) {
      for (const key of await t.redis.keys(`{shardvault}:metrics:metered:${kind}:*`)) await t.redis.del(key);
    }
    const counted = await Promise.all(meters.map((m) => m.sweep()));
    expect(counted.reduce((a, b) => a + b, 0)).toBe(2);
    const series = await meters[0]!.read();
    expect(series.map((s) => [s.kind, s.backend, s.outcome, s.count])).toEqual([
      ['backup', 'filesystem', 'SUCCESS', 1],
      ['restore', 'filesystem', 'FAILED', 1],
    ]);
  });

  it('counts a backup deleted before any scrape, and each restore of a backup restored twice before one', async () => {
    const ok = { backend: 'filesystem', outcome: 'SUCCESS' };
    const before = await scrape();
    const [backups, restores] = [sample(before, 'shardvault_backups_total', ok) ?? 0, sample(before, 'shardvault_restores_total', ok) ?? 0];
    expect((await t.store.putDocuments('Again', [{ _id: 'a1', title: 'one' }]))[0]!.ok).toBe(true);
    // Its own location: the first test's backup there is damaged, which stops a collection.
    expect((await t.call('POST', '/v1/backups/filesystem', { id: 'metered-2', include: ['Again'], config: { Path: 'again' } })).status).toBe(200);
    expect((await waitForStatus(t.call, '/v1/backups/filesystem/metered-2?path=again')).status).toBe('SUCCESS');
    for (let i = 0; i < 2; i++) {
      await t.store.deleteIndex('Again');
      const restore = await t.call('POST', '/v1/backups/filesystem/metered-2/restore', { config: { Path: 'again' } });
      expect(restore.status, await restore.clone().text()).toBe(200);
      expect((await waitForStatus(t.call, '/v1/backups/filesystem/metered-2/restore')).status).toBe('SUCCESS');
    }
    const deleted = await t.call('POST', '/v1/backups/filesystem/metered-2/delete?path=again');
    expect(deleted.status, await deleted.clone().text()).toBe(200);

    const text = await scrape();
    expect(sample(text, 'shardvault_backups_total', ok)).toBe(backups + 1);
    expect(sample(text, 'shardvault_restores_total', ok)).toBe(restores + 2);
  });
});

describe('GET /metrics with auth on', () => {
  it('answers 401 without the API key and the metrics with it', async () => {
    const secured = createTestApi(t.redisUrl, { AUTHENTICATION_APIKEY_ENABLED: 'true', AUTHENTICATION_APIKEY_ALLOWED_KEYS: 'k1,k2' });
    try {
      const refused = await secured.api.app.request('/metrics');
      expect(refused.status).toBe(401);
      expect(await refused.json()).toEqual({ error: [{ message: expect.stringMatching(/API key/) }] });
      expect((await secured.api.app.request('/metrics', { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
      const ok = await secured.api.app.request('/metrics', { headers: { authorization: 'Bearer k2' } });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain('shardvault_backups_total');
    } finally {
      await secured.api.stop();
      await secured.close();
    }
  });
});
