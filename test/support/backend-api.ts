/**
 * An in-process API and a real worker over a private Redis, whose backups go to a real `name`
 * backend (the filesystem, or S3 or GCS on a server of their own: backend-fixtures.ts), for one
 * describe block: started in its beforeAll, stopped in its afterAll. The handle's fields are set
 * once that beforeAll has run.
 */
import { afterAll, beforeAll } from 'vitest';
import type { BackendName } from '../../shared/backends/index.ts';
import { LocalCatalog } from '../../shared/cluster/catalog.ts';
import { LocalShardHost } from '../../shared/cluster/shard-host.ts';
import { createLogger } from '../../shared/logger.ts';
import type { RedisServer } from '../../shared/redis-server.ts';
import { createWorker, type ShardvaultWorker } from '../../worker/worker.ts';
import { createTestApi, type TestApi } from './api.ts';
import { BACKEND_FIXTURES, type BackendFixture } from './backend-fixtures.ts';
import { startTestRedis } from './redis.ts';
import { tempDir } from './temp.ts';

export interface BackendApi {
  t: TestApi;
  /** The backup location, from the test itself (to list, read or damage objects). */
  backend: BackendFixture;
}

export function useBackendApi(name: BackendName): BackendApi {
  const handle = {} as BackendApi;
  let tmp: ReturnType<typeof tempDir> | undefined;
  let redis: RedisServer | undefined;
  let worker: ShardvaultWorker | undefined;
  beforeAll(async () => {
    tmp = tempDir();
    handle.backend = await BACKEND_FIXTURES[name](tmp.dir);
    redis = await startTestRedis();
    handle.t = createTestApi(redis.url, handle.backend.env);
    worker = createWorker({ config: handle.t.config, logger: createLogger('silent'), redisUrl: redis.url, catalog: new LocalCatalog(handle.t.store), shards: new LocalShardHost(handle.t.store) });
    await worker.start();
  }, 60_000);
  afterAll(async () => {
    await worker?.stop();
    await handle.t?.close();
    await redis?.stop();
    await handle.backend?.stop();
    tmp?.cleanup();
  }, 30_000);
  return handle;
}
