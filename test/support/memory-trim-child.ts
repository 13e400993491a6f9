/**
 * A process that runs the memory trim and prints its anonymous memory as JSON. Run with
 * --expose-gc, under the scripts' allocator settings (1 MiB buffers stay in the C allocator's
 * heap when freed; 8 MiB ones are mapped on their own and unmapped when freed).
 *
 * - `<limit MB>`: frees 96 MiB the allocator keeps (the last buffer kept, so the heap's top
 *   cannot shrink), then runs the trim with that limit for a moment: { freed, after }.
 * - `floor`: with a limit 40 MiB above its own memory, holds 72 MiB live (a trim then leaves
 *   it: the level the next trim must grow 16 MiB past), lets it go (under the limit again), then
 *   frees 64 MiB the allocator keeps — over the limit, but under that old level + 16 MiB:
 *   { base, after }.
 */
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { anonymousBytes, startMemoryTrim } from '../../shared/memory-trim.ts';

const MiB = 1 << 20;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const fd = fs.openSync('/proc/self/status', 'r');
const logger = pino({ level: 'silent' });

/** `count` buffers of 1 MiB allocated, all but the last let go and collected: that last one. */
async function freeInHeap(count: number): Promise<Buffer> {
  let buffers = Array.from({ length: count + 1 }, () => Buffer.allocUnsafeSlow(MiB).fill(1));
  const kept = buffers.at(-1)!;
  buffers = [];
  gc!();
  await sleep(100);
  gc!();
  return kept;
}

if (process.argv[2] === 'floor') {
  gc();
  const base = anonymousBytes(fd);
  const stop = startMemoryTrim(base + 40 * MiB, logger);
  let live: Buffer[] = Array.from({ length: 9 }, () => Buffer.allocUnsafeSlow(8 * MiB).fill(1));
  await sleep(1000);
  live = [];
  gc();
  await sleep(100);
  gc();
  await sleep(600);
  const kept = await freeInHeap(64);
  await sleep(1500);
  const after = anonymousBytes(fd);
  stop();
  process.stdout.write(JSON.stringify({ base, after, live: live.length, kept: kept.length }) + '\n');
} else {
  const kept = await freeInHeap(96);
  const freed = anonymousBytes(fd);
  const stop = startMemoryTrim(Number(process.argv[2]) * 1_000_000, logger);
  await sleep(600);
  const after = anonymousBytes(fd);
  stop();
  process.stdout.write(JSON.stringify({ freed, after, kept: kept.length }) + '\n');
}
