import { createApi, type Api } from '../../api/app.ts';
import { loadConfig, type Config } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';
import { createApiRedis } from '../../shared/redis.ts';
import { LocalData } from '../../shared/cluster/data.ts';
import { Store } from '../../shared/store/store.ts';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import type { RedisServer } from '../../shared/redis-server.ts';
import { startTestRedis } from './redis.ts';
import { tempDir } from './temp.ts';

export interface TestApi {
  api: Api;
  config: Config;
  /** The API's data is this Store (LocalData): tests seed and inspect it directly. */
  store: Store;
  redis: Redis;
  /** `app.request` with JSON encoding of the body. */
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  close(): Promise<void>;
}

/** An in-process API over a temp data directory and the given Redis. */
export function createTestApi(redisUrl: string, env: Record<string, string> = {}): TestApi {
  const { dir, cleanup } = tempDir('shardvault-data-');
  // No gRPC port: in-process APIs of parallel test files must not compete for 50051.
  const config = loadConfig({ DATA_DIR: `${dir}/data`, BACKUP_FILESYSTEM_PATH: `${dir}/backups`, REDIS_URL: redisUrl, GRPC_PORT: '0', ...env });
  const store = new Store({ dataDir: config.dataDir, nodes: config.nodes });
  const redis = createApiRedis(redisUrl);
  const logger = createLogger('silent');
  const api = createApi({ config, data: new LocalData(store), logger, redis });
  return {
    api,
    config,
    store,
    redis,
    call: (method, path, body, headers = {}) =>
      Promise.resolve(
        api.app.request(path, {
          method,
          headers: { 'content-type': 'application/json', ...headers },
          body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
        }),
      ),
    close: async () => {
      await store.close();
      redis.disconnect();
      cleanup();
    },
  };
}

/**
 * A TestApi over a private Redis for one test file: started in beforeAll, closed in
 * afterAll. The handle forwards to the instance once it exists.
 */
export function useTestApi(env: Record<string, string> = {}): TestApi {
  let server: RedisServer | undefined;
  let t: TestApi | undefined;
  beforeAll(async () => {
    server = await startTestRedis();
    t = createTestApi(server.url, env);
  });
  afterAll(async () => {
    await t?.close();
    await server?.stop();
  });
  const current = (): TestApi => {
    if (!t) throw new Error('useTestApi: the API exists only inside tests and hooks');
    return t;
  };
  return {
    get api() { return current().api; },
    get config() { return current().config; },
    get store() { return current().store; },
    get redis() { return current().redis; },
    call: (...args) => current().call(...args),
    close: () => current().close(),
  };
}
