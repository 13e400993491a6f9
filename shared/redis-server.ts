/**
 * Starting a private `redis-server` child: used by `npm start` when no Redis is reachable,
 * and by the test suite, which never touches a Redis it did not start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ConfigError } from './errors.ts';

export interface RedisServer {
  url: string;
  port: number;
  dir: string;
  /** Stop the server (SIGTERM, then SIGKILL after a grace period). */
  stop(): Promise<void>;
  /** Start it again on the same port and directory (AOF, when on, brings the data back). */
  restart(): Promise<void>;
}

export interface RedisServerOptions {
  /** Working directory for the server's files. */
  dir: string;
  /** Port to listen on; a free one when omitted. */
  port?: number;
  /** Keep an append-only file so data survives a restart. */
  appendonly?: boolean;
  binary?: string;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Answers whether something speaking Redis answers PING at host:port. */
export async function pingRedis(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (chunk) => done(chunk.toString().startsWith('+PONG')));
  });
}

export function findBinary(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export const NO_REDIS_MESSAGE =
  'no Redis reachable and no redis-server on PATH; install it (apt-get install redis-server) or set REDIS_URL=redis://host:port';

export async function startRedisServer(options: RedisServerOptions): Promise<RedisServer> {
  const binary = options.binary ?? findBinary('redis-server');
  if (!binary || !fs.existsSync(binary)) throw new ConfigError(NO_REDIS_MESSAGE);
  fs.mkdirSync(options.dir, { recursive: true });
  const port = options.port ?? (await freePort());
  let child: ChildProcess | undefined;

  const launch = async () => {
    const args = [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', options.dir, '--save', '',
      '--appendonly', options.appendonly ? 'yes' : 'no', '--daemonize', 'no', '--loglevel', 'warning',
      '--maxmemory-policy', 'noeviction',
    ];
    const proc = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<never>((_, reject) =>
      proc.once('exit', (code) => reject(new Error(`redis-server exited with code ${code}: ${stderr.trim()}`))),
    );
    exited.catch(() => undefined);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (await Promise.race([pingRedis('127.0.0.1', port, 200), exited])) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    proc.kill('SIGKILL');
    throw new Error(`redis-server did not answer on port ${port} within 10s`);
  };

  const stop = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  };

  await launch();
  return { url: `redis://127.0.0.1:${port}`, port, dir: options.dir, stop, restart: launch };
}
