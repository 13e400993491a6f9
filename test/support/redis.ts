import { startRedisServer, type RedisServer } from '../../shared/redis-server.ts';
import { tempDir } from './temp.ts';

export interface TestRedis extends RedisServer {
  /** Stop the server (SIGTERM) but keep its directory, so restart() brings the data back (with appendonly). */
  halt(): Promise<void>;
}

/** A private redis-server on a free port for one test file; never the machine's own Redis. */
export async function startTestRedis(options: { appendonly?: boolean } = {}): Promise<TestRedis> {
  const { dir, cleanup } = tempDir('shardvault-redis-');
  const server = await startRedisServer({ dir, appendonly: options.appendonly });
  const stop = server.stop;
  return {
    ...server,
    halt: stop,
    stop: async () => {
      await stop();
      cleanup();
    },
  };
}
