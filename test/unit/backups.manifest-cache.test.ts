/**
 * The manifest cache of the list and status endpoints: concurrent misses share one read (a
 * thousand-backup list polled by many clients must not read each manifest once per client),
 * only finished manifests are kept, a delete forgets, and entries expire within TTL_MS to
 * twice that.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManifestCache, TTL_MS } from '../../shared/backups/manifest-cache.ts';
import type { GlobalManifest } from '../../shared/backups/manifest.ts';

const manifest = (id: string, status: GlobalManifest['status']): GlobalManifest => ({
  version: 1, id, backend: 's3', status, nodes: ['node-1'], classes: ['A'], startedAt: '2026-01-01T00:00:00.000Z', formatVersion: 2,
  compression: 'BestSpeed', totals: { shards: 1, docs: 1, bytes: 1 }, nodeManifests: {},
});

/** A read of the backend, counted; it answers after `release()`. */
function loader(answer: GlobalManifest | undefined, cache: ManifestCache, where: string) {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const load = vi.fn(async () => {
    await gate;
    if (answer) cache.set(where, answer);
    return answer;
  });
  return { load, release };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('ManifestCache', () => {
  it('lets concurrent misses of one manifest share one read, then answers from memory', async () => {
    const cache = new ManifestCache();
    const { load, release } = loader(manifest('a', 'SUCCESS'), cache, 's3://b/a');
    const reads = Array.from({ length: 10 }, () => cache.read('s3://b/a', load));
    release();
    const answers = await Promise.all(reads);
    expect(answers.every((m) => m?.id === 'a')).toBe(true);
    expect(load).toHaveBeenCalledTimes(1);
    expect((await cache.read('s3://b/a', load))?.id).toBe('a');
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('reads again after a failed or empty read, and never keeps an unfinished manifest', async () => {
    const cache = new ManifestCache();
    await expect(cache.read('x', () => Promise.reject(new Error('unreachable')))).rejects.toThrow('unreachable');
    const missing = loader(undefined, cache, 'x');
    missing.release();
    expect(await cache.read('x', missing.load)).toBeUndefined();
    const started = loader(manifest('x', 'STARTED'), cache, 'x');
    started.release();
    await cache.read('x', started.load);
    await cache.read('x', started.load);
    expect(started.load).toHaveBeenCalledTimes(2);
  });

  it('forgets a deleted backup at once and expires entries between TTL_MS and twice that', async () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1) });
    const cache = new ManifestCache();
    for (const id of ['a', 'b', 'c', 'd']) cache.set(id, manifest(id, 'SUCCESS'));
    const again = vi.fn(async () => undefined);
    cache.forget('a');
    expect(await cache.read('a', again)).toBeUndefined();
    expect(again).toHaveBeenCalledTimes(1);

    vi.setSystemTime(Date.now() + TTL_MS - 1);
    for (const id of ['b', 'c', 'd']) expect((await cache.read(id, again))?.id).toBe(id);
    expect(again).toHaveBeenCalledTimes(1);
    vi.setSystemTime(Date.now() + TTL_MS + 2);
    for (const id of ['b', 'c', 'd']) expect(await cache.read(id, again)).toBeUndefined();
    expect(again).toHaveBeenCalledTimes(4);
  });
});
