/**
 * Real child processes for end-to-end tests: `node --import tsx <entry>` for a TypeScript
 * source (the tests run the code as it is, never a stale build), plain `node <entry>` for the
 * built JavaScript users run (`dist/…`, made by `npm run build`, which `npm test` runs first);
 * spawned directly (not through npm/npx) so a signal reaches the process meant, and with the
 * environment `npm start` and the image give them (`childEnv`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** `main.ts` and every TypeScript source under `dirs` (declaration files aside), as absolute paths. */
export function sourceFiles(dirs: readonly string[]): string[] {
  const files = [path.join(ROOT, 'main.ts')];
  for (const dir of dirs) {
    for (const entry of fs.readdirSync(path.join(ROOT, dir), { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) files.push(path.join(entry.parentPath, entry.name));
    }
  }
  return files;
}

const CONFIG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).config as { glibcTunables: string; workerNodeFlags: string };

/**
 * The allocator settings the project's scripts run every process with (package.json's
 * `config.glibcTunables`; README, "Memory allocator"), unless the environment sets its own.
 */
export const GLIBC_TUNABLES: string = CONFIG.glibcTunables;

/** The node flags `npm run worker` and the compose file give a worker (package.json's `config.workerNodeFlags`). */
export const WORKER_NODE_FLAGS: string[] = CONFIG.workerNodeFlags.split(' ').filter(Boolean);

/** The environment of a child process: this one's, the scripts' allocator settings, then `env`. */
export function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { GLIBC_TUNABLES, ...process.env, ...env };
}

export interface NodeProcess {
  child: ChildProcess;
  /** Everything the process wrote so far (stdout and stderr). */
  output(): string;
  /** Resolves when the output matches, rejects if the process exits first or time runs out. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): Promise<number | string>;
}

/**
 * `nodeFlags` go before the entry (and before `--import tsx` for a TypeScript one): flags such as
 * --cpu-prof are refused in NODE_OPTIONS.
 */
export function spawnNode(entry: string, args: string[] = [], env: Record<string, string> = {}, nodeFlags: string[] = []): NodeProcess {
  const loader = entry.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const child = spawn(process.execPath, [...nodeFlags, ...loader, path.resolve(ROOT, entry), ...args], {
    cwd: ROOT,
    env: childEnv({ LOG_LEVEL: 'info', NODE_ENV: 'test', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const l of listeners) l();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  // 'exit' can come before the last output is read: wait for both pipes to end too, but not for
  // ever (a process it started may hold them open after it ended).
  const pipesClosed = Promise.all([child.stdout!, child.stderr!].map((s) => new Promise((resolve) => s.once('close', resolve))));
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => {
      const result = code ?? signal ?? -1;
      const timer = setTimeout(() => resolve(result), 2000);
      void pipesClosed.then(() => {
        clearTimeout(timer);
        resolve(result);
      });
    }),
  );
  return {
    child,
    output: () => out,
    exited,
    waitFor: (pattern, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (pattern.test(out)) {
            cleanup();
            resolve();
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for ${pattern} in output of ${entry}:\n${out.slice(-2000)}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        void exited.then((code) => {
          if (listeners.has(check)) {
            cleanup();
            reject(new Error(`${entry} exited (${code}) before printing ${pattern}:\n${out.slice(-2000)}`));
          }
        });
        check();
      }),
    kill: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
