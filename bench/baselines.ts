/**
 * What an operator would use instead of shardvault, run on the same data directory:
 * `tar | gzip -1`, `tar | zstd -1`, `restic backup`, and a raw sequential read (`cat` of
 * every file) as the physical limit. Each run is timed by bash (wall and CPU of every
 * process in the pipeline) and its output measured, then deleted.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { findBinary } from '../shared/redis-server.ts';
import { directoryBytes } from './generate.ts';
import { sh, timeShell } from './measure.ts';

export interface BaselineRun {
  seconds: number;
  cpuSeconds: number;
  /** Bytes written (archive or repository); 0 for the raw read. */
  outputBytes: number;
}

export interface Baseline {
  key: 'raw-read' | 'tar-gzip' | 'tar-zstd' | 'tar-zstd-mt' | 'restic';
  label: string;
  command: string;
  run(outDir: string): Promise<BaselineRun>;
}

function fileSize(p: string): number {
  return fs.statSync(p).size;
}

/** The three tar/cat baselines; the data directory is archived relative to its parent, like an operator would. */
export function fileBaselines(dataDir: string): Baseline[] {
  const parent = path.dirname(dataDir);
  const name = path.basename(dataDir);
  const rawCommand = `find ${sh(dataDir)} -type f -print0 | xargs -0 cat > /dev/null`;
  return [
    {
      key: 'raw-read',
      label: 'raw read (`cat` every file)',
      command: `find DATA_DIR -type f -print0 | xargs -0 cat > /dev/null`,
      run: async () => {
        const t = await timeShell(rawCommand);
        return { seconds: t.real, cpuSeconds: t.cpu, outputBytes: 0 };
      },
    },
    {
      key: 'tar-gzip',
      label: '`tar | gzip -1`',
      command: 'tar -cf - DATA_DIR | gzip -1 > out.tar.gz',
      run: async (outDir) => {
        const out = path.join(outDir, 'data.tar.gz');
        const t = await timeShell(`tar -C ${sh(parent)} -cf - ${sh(name)} | gzip -1 > ${sh(out)}`);
        const bytes = fileSize(out);
        fs.rmSync(out, { force: true });
        return { seconds: t.real, cpuSeconds: t.cpu, outputBytes: bytes };
      },
    },
    {
      key: 'tar-zstd',
      label: '`tar | zstd -1`',
      command: 'tar -cf - DATA_DIR | zstd -1 > out.tar.zst',
      run: async (outDir) => {
        const out = path.join(outDir, 'data.tar.zst');
        const t = await timeShell(`tar -C ${sh(parent)} -cf - ${sh(name)} | zstd -1 -q > ${sh(out)}`);
        const bytes = fileSize(out);
        fs.rmSync(out, { force: true });
        return { seconds: t.real, cpuSeconds: t.cpu, outputBytes: bytes };
      },
    },
    {
      key: 'tar-zstd-mt',
      label: '`tar | zstd -1 -T0`',
      command: 'tar -cf - DATA_DIR | zstd -1 -T0 > out.tar.zst',
      run: async (outDir) => {
        const out = path.join(outDir, 'data-mt.tar.zst');
        const t = await timeShell(`tar -C ${sh(parent)} -cf - ${sh(name)} | zstd -1 -T0 -q > ${sh(out)}`);
        const bytes = fileSize(out);
        fs.rmSync(out, { force: true });
        return { seconds: t.real, cpuSeconds: t.cpu, outputBytes: bytes };
      },
    },
  ];
}

export const RESTIC_PASSWORD = 'shardvault-bench';

/**
 * restic on PATH, installing Debian's package when it is missing (non-interactive).
 * Answers the binary, or why it is unavailable.
 */
export function ensureRestic(log: (line: string) => void): { binary?: string; note?: string } {
  const found = findBinary('restic');
  if (found) return { binary: found };
  log('restic is not installed: apt-get install -y restic');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (args: string[]) => spawnSync('apt-get', args, { env, encoding: 'utf8', timeout: 300_000 });
  let r = apt(['install', '-y', '-q', '--no-install-recommends', 'restic']);
  if (r.status !== 0) {
    apt(['update', '-q']);
    r = apt(['install', '-y', '-q', '--no-install-recommends', 'restic']);
  }
  const after = findBinary('restic');
  if (after) return { binary: after, note: 'installed by the bench with apt-get' };
  const why = (r.error?.message ?? r.stderr ?? '').trim().split('\n').slice(-2).join(' ');
  return { note: `restic unavailable: apt-get install restic failed (${why || `exit ${r.status}`})` };
}

/** `restic backup DATA_DIR` into a fresh local repository per run (init is not timed). */
export function resticBaseline(dataDir: string, binary: string): Baseline {
  return {
    key: 'restic',
    label: '`restic backup`',
    command: 'restic init && restic backup DATA_DIR (fresh local repository)',
    run: async (outDir) => {
      const repo = resticRepository(dataDir, binary, outDir, 'restic-repo');
      try {
        return await repo.backup();
      } finally {
        repo.remove();
      }
    },
  };
}

/**
 * One restic repository kept across calls: `backup()` runs `restic backup DATA_DIR` into it and
 * answers the time and the bytes the repository grew by — the first call a full backup, the
 * next ones deduplicated against it (the anchor for shardvault's incremental backups).
 */
export function resticRepository(dataDir: string, binary: string, dir: string, name = 'restic-incremental'): { backup(): Promise<BaselineRun>; remove(): void } {
  const repo = path.join(dir, name);
  fs.rmSync(repo, { recursive: true, force: true });
  const env = { ...process.env, RESTIC_PASSWORD, RESTIC_REPOSITORY: repo, RESTIC_CACHE_DIR: path.join(dir, `${name}-cache`) };
  execFileSync(binary, ['init', '-q'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  return {
    async backup() {
      const before = directoryBytes(repo).bytes;
      const t = await timeShell(`${sh(binary)} backup -q ${sh(dataDir)}`, env);
      return { seconds: t.real, cpuSeconds: t.cpu, outputBytes: directoryBytes(repo).bytes - before };
    },
    remove: () => {
      fs.rmSync(repo, { recursive: true, force: true });
      fs.rmSync(env.RESTIC_CACHE_DIR, { recursive: true, force: true });
    },
  };
}

/** First line of `<binary> <args>`, or undefined when it cannot run. */
export function toolVersion(binary: string, args: string[]): string | undefined {
  const r = spawnSync(binary, args, { encoding: 'utf8' });
  if (r.status !== 0 && !r.stdout && !r.stderr) return undefined;
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0];
}
