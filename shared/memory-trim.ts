/**
 * A worker's own memory held under a soft limit by giving back to the kernel what the C
 * allocator holds free (glibc's `malloc_trim`, called through `koffi`, an FFI package with
 * prebuilt binaries).
 *
 * Why: most of a worker's memory is not JavaScript objects but buffers the C allocator hands
 * out — a span read from a shard, a blob zstd compressed or decoded, LMDB's and V8's own — and
 * the allocator settings every worker runs with (README, "Memory allocator") keep what is freed
 * for reuse, since faulting memory in again is dear on a virtual machine. Freed in the middle
 * of a heap, it stays resident: at the peak of an incremental backup of the bench data (two
 * transfers in a worker), glibc held 36–60 MiB free of the 120–130 MiB it had from the kernel
 * (`mallinfo2`, 2026-12-07), and that, not live data, took a worker over its 200 MB bound now
 * and then (README). A trim returns the free pages of every arena at once (15–50 MiB there).
 *
 * So: the process's anonymous memory (RssAnon) is read every CHECK_MS, and above the limit
 * the allocator is trimmed, at most once every MIN_GAP_MS and, while memory stays over the
 * limit, again only once it has grown REGROWTH_BYTES past what the last trim left. Below the
 * limit nothing changes: the reuse the settings buy is kept wherever the limit is not near.
 * Where glibc or the FFI is missing
 * (musl, macOS, no prebuilt binary), nothing is done and memory is what the allocator makes it.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { Logger } from './logger.ts';

/** How often the process's anonymous memory is read (a read of /proc/self/status: microseconds). */
const CHECK_MS = 100;
/** Least time between two trims: a trim walks every arena, and what it gave back is faulted in again when used. */
const MIN_GAP_MS = 250;

/**
 * How far memory must grow past what the last trim left before the next one: a trim only gives
 * back what was freed since, and each one walks every arena with its lock held (~25 ms at a
 * worker's peak, measured 2026-12-07), stalling the blob pool's threads meanwhile.
 */
const REGROWTH_BYTES = 16 * 1024 * 1024;

/** Log once why the limit is not enforced here; undefined. */
function unavailable(logger: Logger, why: string, err: unknown): undefined {
  logger.info({ err: (err as Error).message }, `memory trim unavailable (${why}): the worker memory limit is not enforced`);
  return undefined;
}

/** `malloc_trim(0)` of this process's C library, or undefined where there is none to call. */
function loadMallocTrim(logger: Logger): (() => number) | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const trim = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)') as (pad: number) => number;
    return () => trim(0);
  } catch (err) {
    return unavailable(logger, 'no glibc malloc_trim', err);
  }
}

/** This process's anonymous resident memory in bytes (RssAnon), read from an open /proc/self/status. */
export function anonymousBytes(fd: number, scratch = Buffer.allocUnsafe(4096)): number {
  const n = fs.readSync(fd, scratch, 0, scratch.length, 0);
  const text = scratch.toString('latin1', 0, n);
  const at = text.indexOf('RssAnon:');
  if (at < 0) throw new Error('/proc/self/status has no RssAnon');
  return Number.parseInt(text.slice(at + 8), 10) * 1024;
}

/** /proc/self/status open, once it has told RssAnon; else undefined (logged). */
function openStatus(scratch: Buffer<ArrayBuffer>, logger: Logger): number | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync('/proc/self/status', 'r');
    anonymousBytes(fd, scratch);
    return fd;
  } catch (err) {
    if (fd !== undefined) fs.closeSync(fd);
    return unavailable(logger, 'no RssAnon in /proc/self/status', err);
  }
}

/**
 * Start keeping this process's anonymous memory under `limitBytes` (0: do nothing); returns
 * the stop function. The timer does not keep the process alive.
 */
export function startMemoryTrim(limitBytes: number, logger: Logger): () => void {
  if (limitBytes <= 0) return () => undefined;
  const trim = loadMallocTrim(logger);
  if (!trim) return () => undefined;
  const scratch = Buffer.allocUnsafe(4096);
  const fd = openStatus(scratch, logger);
  if (fd === undefined) return () => undefined;
  let last = 0;
  // What the last trim left while memory has stayed over the limit since: memory that was live
  // then, which another trim would not give back. Forgotten once memory is under the limit.
  let floor = 0;
  const timer = setInterval(() => {
    const now = Date.now();
    if (now - last < MIN_GAP_MS) return;
    const before = anonymousBytes(fd, scratch);
    if (before <= limitBytes) floor = 0;
    if (before <= Math.max(limitBytes, floor + REGROWTH_BYTES)) return;
    last = now;
    trim();
    floor = anonymousBytes(fd, scratch);
    logger.debug({ anonBefore: before, anonAfter: floor, ms: Date.now() - now }, 'memory trimmed');
  }, CHECK_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    fs.closeSync(fd);
  };
}
