import { startRedisServer, type RedisServer } from '../../shared/redis-server.ts';
import { tempDir } from './temp.ts';

/** A private redis-server on a free port for one test file; never the machine's own Redis. */
export async function startTestRedis(options: { appendonly?: boolean } = {}): Promise<RedisServer> {
  const { dir, cleanup } = tempDir('shardvault-redis-');
  const server = await startRedisServer({ dir, appendonly: options.appendonly });
  const stop = server.stop;
  return {
    ...server,
    stop: async () => {
      await stop();
      cleanup();
    },
  };
}
