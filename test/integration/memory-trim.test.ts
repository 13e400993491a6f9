/**
 * The worker's memory trim (shared/memory-trim.ts) in a real process with the allocator
 * settings every worker runs with: memory the C allocator holds free is given back once the
 * process is over WORKER_MEMORY_TRIM_MB, and kept (for reuse) when the trim is off.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { childEnv, ROOT } from '../support/process.ts';

const run = promisify(execFile);
const MiB = 1 << 20;

async function child<T = { freed: number; after: number }>(mode: number | 'floor'): Promise<T> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--expose-gc', path.join(ROOT, 'test/support/memory-trim-child.ts'), String(mode)], {
    cwd: ROOT,
    env: childEnv({}),
  });
  return JSON.parse(stdout) as T;
}

describe.runIf(process.platform === 'linux')('memory trim', () => {
  it('gives the allocator\'s free memory back once the process is over the limit', async () => {
    const { freed, after } = await child(1);
    expect(freed - after).toBeGreaterThan(64 * MiB);
  }, 30_000);

  it('keeps it when the trim is off (WORKER_MEMORY_TRIM_MB=0)', async () => {
    const { freed, after } = await child(0);
    expect(Math.abs(freed - after)).toBeLessThan(16 * MiB);
    // The 96 MiB freed are still resident: what the test above saw given back was there to give.
    expect(freed).toBeGreaterThan(96 * MiB);
  }, 30_000);

  it('trims again as soon as memory is back over the limit once it was under it, whatever an earlier trim left', async () => {
    // A trim that left 72 MiB live would hold off the next until 16 MiB past that level; once
    // that memory is gone and the process under the limit, 64 MiB kept free (over the limit,
    // under that level + 16) is given back.
    const { base, after } = await child<{ base: number; after: number }>('floor');
    expect(after - base).toBeLessThan(32 * MiB);
  }, 30_000);
});
