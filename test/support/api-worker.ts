/**
 * An in-process API and worker over a private Redis for one test file, with `docs` documents
 * of `index` stored first (makeDoc): what tests of whole operations through the API need.
 * Built on useTestApi; the worker starts after the API and stops before it.
 */
import { afterAll, beforeAll } from 'vitest';
import { LocalCatalog } from '../../shared/cluster/catalog.ts';
import { LocalShardHost } from '../../shared/cluster/shard-host.ts';
import { createLogger } from '../../shared/logger.ts';
import { createWorker, type ShardvaultWorker } from '../../worker/worker.ts';
import { useTestApi, type TestApi } from './api.ts';
import { makeDoc } from './backups.ts';

export function useApiWithWorker(seed: { index: string; docs: number }): TestApi & { readonly redisUrl: string } {
  const t = useTestApi();
  let worker: ShardvaultWorker | undefined;
  const redisUrl = (): string => {
    const url = t.config.redisUrl;
    if (!url) throw new Error('useApiWithWorker: the test API has no Redis URL');
    return url;
  };
  beforeAll(async () => {
    worker = createWorker({ config: t.config, logger: createLogger('silent'), redisUrl: redisUrl(), catalog: new LocalCatalog(t.store), shards: new LocalShardHost(t.store) });
    await worker.start();
    const results = await t.store.putDocuments(seed.index, Array.from({ length: seed.docs }, (_, i) => makeDoc(seed.index, i)));
    const refused = results.find((r) => !r.ok);
    if (refused && !refused.ok) throw refused.error;
  });
  afterAll(async () => {
    await worker?.stop();
    await t.api.stop();
  });
  return Object.defineProperty(t, 'redisUrl', { get: redisUrl }) as TestApi & { readonly redisUrl: string };
}
