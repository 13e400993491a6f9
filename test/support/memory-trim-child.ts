/**
 * A process that frees 96 MiB the C allocator keeps (1 MiB buffers below the mmap threshold of
 * the scripts' allocator settings, the last one kept so the heap's top cannot shrink), then runs
 * the memory trim with the limit of argv[2] (MB) for a moment, and prints its anonymous memory
 * before and after as JSON. Run with --expose-gc.
 */
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { anonymousBytes, startMemoryTrim } from '../../shared/memory-trim.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const fd = fs.openSync('/proc/self/status', 'r');
let buffers = Array.from({ length: 97 }, () => Buffer.allocUnsafeSlow(1 << 20).fill(1));
const kept = buffers.at(-1)!;
buffers = [];
gc();
await sleep(100);
gc();
const freed = anonymousBytes(fd);
const stop = startMemoryTrim(Number(process.argv[2]) * 1_000_000, pino({ level: 'silent' }));
await sleep(600);
const after = anonymousBytes(fd);
stop();
process.stdout.write(JSON.stringify({ freed, after, kept: kept.length }) + '\n');
