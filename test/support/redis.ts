import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { startRedisServer, type RedisServer } from '../../shared/redis-server.ts';
import { tempDir } from './temp.ts';

export interface TestRedis extends RedisServer {
  /** Stop the server (SIGTERM) but keep its directory, so restart() brings the data back (with appendonly). */
  halt(): Promise<void>;
  /** The server's process id (INFO), for SIGSTOP/SIGCONT. */
  pid(): Promise<number>;
  /**
   * Kill the server with SIGKILL and lose what a host crash with `appendfsync everysec` loses:
   * the append-only file is cut back to what it held `loseMs` before the kill (needs
   * appendonly). A killed process alone loses little (the pages it wrote are the kernel's), so
   * the test makes the lost second certain. `from`: when a write of the last `loseMs` holds
   * these bytes (respFragment), the loss starts at the command holding them instead (a
   * transaction cut half-way is dropped whole when Redis loads the file). Answers the bytes cut
   * and whether `from` was found; restart() brings back the rest.
   */
  crash(loseMs: number, from?: Buffer): Promise<{ bytesLost: number; fromFound: boolean }>;
}

/** The bytes a command with these arguments holds in the append-only file (RESP bulk strings). */
export function respFragment(...args: string[]): Buffer {
  return Buffer.from(args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(''));
}

/** How often the size of the append-only file is sampled, for crash(). */
const AOF_SAMPLE_MS = 50;

/** The append-only file Redis appends to now (Redis 7: the `type i` file of appendonlydir's manifest). */
function currentAof(dir: string): string | undefined {
  const aofDir = path.join(dir, 'appendonlydir');
  let manifest: string;
  try {
    manifest = fs.readFileSync(path.join(aofDir, 'appendonly.aof.manifest'), 'utf8');
  } catch {
    return undefined;
  }
  const incr = manifest.split('\n').filter((l) => / type i\b/.test(l)).at(-1);
  const name = incr && /^file (\S+)/.exec(incr)?.[1];
  return name ? path.join(aofDir, name) : undefined;
}

/** A private redis-server on a free port for one test file; never the machine's own Redis. */
export async function startTestRedis(options: { appendonly?: boolean } = {}): Promise<TestRedis> {
  const { dir, cleanup } = tempDir('shardvault-redis-');
  const server = await startRedisServer({ dir, appendonly: options.appendonly });
  const stop = server.stop;
  // The append-only file's size over the last seconds: [time, file, size], newest last.
  const sizes: [number, string, number][] = [];
  const sampler = options.appendonly
    ? setInterval(() => {
        const file = currentAof(dir);
        if (!file) return;
        try {
          sizes.push([Date.now(), file, fs.statSync(file).size]);
        } catch {
          return;
        }
        while (sizes.length > 0 && sizes[0]![0] < Date.now() - 10_000) sizes.shift();
      }, AOF_SAMPLE_MS)
    : undefined;
  sampler?.unref();

  const pid = async () => {
    const client = new Redis(server.url, { maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    try {
      return Number(/process_id:(\d+)/.exec(await client.info('server'))?.[1]);
    } finally {
      client.disconnect();
    }
  };

  return {
    ...server,
    halt: stop,
    pid,
    async crash(loseMs, from) {
      if (!options.appendonly) throw new Error('crash() needs a Redis with appendonly');
      const target = await pid();
      const killedAt = Date.now();
      process.kill(target, 'SIGKILL');
      for (let t = Date.now(); ; await new Promise((r) => setTimeout(r, 20))) {
        try {
          process.kill(target, 0);
        } catch {
          break;
        }
        if (Date.now() - t > 10_000) throw new Error(`redis-server ${target} still runs 10 s after SIGKILL`);
      }
      // The last size sampled at least loseMs before the kill, in the file Redis appended to then.
      const file = currentAof(dir);
      const before = sizes.filter(([at, f]) => at <= killedAt - loseMs && f === file).at(-1);
      if (!file || !before) return { bytesLost: 0, fromFound: false };
      const content = fs.readFileSync(file);
      let cut = before[2];
      const at = from ? content.indexOf(from, cut) : -1;
      // The command holding `from` starts at the array header (`*<n>`) before it.
      if (at >= 0) cut = content.lastIndexOf('\r\n*', at) + 2;
      if (content.length > cut) fs.truncateSync(file, cut);
      return { bytesLost: Math.max(0, content.length - cut), fromFound: at >= 0 };
    },
    stop: async () => {
      if (sampler) clearInterval(sampler);
      await stop();
      cleanup();
    },
  };
}
