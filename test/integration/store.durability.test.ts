/**
 * A restored shard survives a crash of the machine once its restore has answered: the staged
 * file is on the device before it is published, and the directories that name it are synced
 * after the move. A crash cannot be staged here, so the system calls of a real process doing it
 * are watched with strace, in the order the kernel saw them.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/process.ts';
import { literally } from '../support/regexp.ts';
import { tempDir } from '../support/temp.ts';

describe('restore staging: what a restore publishes is durable', () => {
  it('fsyncs the staged shard file before the move, and the directories of both ends after it', () => {
    const temp = tempDir();
    try {
      const source = path.join(temp.dir, 'source.mdb');
      const staged = path.join(temp.dir, 'data', 'node-1', '.staging', 'r1', 'Durable', '0');
      const to = path.join(temp.dir, 'data', 'node-1', 'Durable', '0');
      const log = path.join(temp.dir, 'syscalls.log');
      const run = spawnSync(
        'strace',
        ['-f', '-y', '-e', 'trace=fsync,fdatasync,rename,renameat,renameat2', '-o', log, process.execPath, '--import', 'tsx', path.join(ROOT, 'test/support/shard-stager.ts'), source, staged, to, '250'],
        { cwd: ROOT, encoding: 'utf8', timeout: 60_000 },
      );
      expect(run.status, `strace: ${run.error?.message ?? ''}\n${run.stderr}`).toBe(0);
      expect(run.stdout.trim()).toBe('250');
      expect(fs.existsSync(path.join(to, 'data.mdb'))).toBe(true);
      const calls = fs.readFileSync(log, 'utf8').split('\n');
      const first = (pattern: RegExp, after = -1) => calls.findIndex((line, i) => i > after && pattern.test(line));
      const fileSynced = first(new RegExp(`f(data)?sync\\(\\d+<${literally(path.join(staged, 'data.mdb'))}>\\) = 0`));
      const moved = first(new RegExp(`rename(at2?)?\\(.*"${literally(staged)}".*"${literally(to)}".*= 0`));
      expect(fileSynced, 'the staged file is synced').toBeGreaterThanOrEqual(0);
      expect(moved, 'the staged directory is moved after its file is synced').toBeGreaterThan(fileSynced);
      expect(first(new RegExp(`fsync\\(\\d+<${literally(path.dirname(to))}>\\) = 0`), moved), 'the new parent is synced after the move').toBeGreaterThan(moved);
      expect(first(new RegExp(`fsync\\(\\d+<${literally(path.dirname(staged))}>\\) = 0`), moved), 'the old parent is synced after the move').toBeGreaterThan(moved);
    } finally {
      temp.cleanup();
    }
  });
});
