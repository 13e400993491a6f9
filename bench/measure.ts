/**
 * Measuring tools for the bench: repeated timings with median and spread, CPU time of
 * processes and of their threads from /proc, memory sampling (VmRSS, VmHWM), and shell
 * pipelines timed by bash itself (wall, user and system time of every process in them).
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';

export interface Stats {
  runs: number[];
  median: number;
  min: number;
  max: number;
  /** (max - min) / median: how far apart the runs were. */
  spread: number;
}

export function stats(runs: number[]): Stats {
  const sorted = [...runs].sort((a, b) => a - b);
  const n = sorted.length;
  const median = n === 0 ? Number.NaN : n % 2 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  const min = sorted[0] ?? Number.NaN;
  const max = sorted[n - 1] ?? Number.NaN;
  return { runs, median, min, max, spread: median > 0 ? (max - min) / median : 0 };
}

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** user+system CPU seconds from a /proc/<pid>[/task/<tid>]/stat line; undefined once gone. */
function statCpu(file: string): number | undefined {
  try {
    const text = fs.readFileSync(file, 'utf8');
    // The command name (field 2) may hold spaces: fields are counted after its closing ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process has used so far. */
export function processCpu(pid: number): number {
  return statCpu(`/proc/${pid}/stat`) ?? 0;
}

/** What node 20 calls its threads is not telling (all are `node`): group them by role. */
export const MAIN_THREAD = 'main thread';
export const OTHER_THREADS = 'other threads (blob pool: reading, hashing; libuv pool: zstd, fs; V8 GC and compiler helpers)';

/**
 * CPU seconds per thread group of a process: the main thread (JavaScript), the other threads
 * (on node 20 all named `node`: libuv's pool running zlib, file I/O and crypto, and V8's
 * helpers), and any thread with its own name (e.g. the profiler's `v8:ProfEvntProc`).
 */
export function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    let name = '?';
    try {
      name = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    if (tid === String(pid)) name = MAIN_THREAD;
    else if (name === 'node' || name.startsWith('libuv-worker') || name.startsWith('V8 ')) name = OTHER_THREADS;
    const cpu = statCpu(`/proc/${pid}/task/${tid}/stat`);
    if (cpu !== undefined) out.set(name, (out.get(name) ?? 0) + cpu);
  }
  return out;
}

/**
 * CPU seconds the whole machine has spent busy (every core, every process: /proc/stat's first
 * line less idle and iowait): beside the CPU of the processes measured, it tells whether the
 * cores were saturated, by them or by other tenants.
 */
export function machineBusyCpu(): number {
  try {
    const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = fields;
    return (user! + nice! + system! + irq! + softirq! + steal!) / ticksPerSecond();
  } catch {
    return Number.NaN;
  }
}

/** The difference of two threadCpu() snapshots. */
export function threadCpuDelta(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) out.set(k, v - (before.get(k) ?? 0));
  return out;
}

export interface MemoryFigures {
  /** VmRSS: resident pages, including file pages mapped in (LMDB maps its files). */
  rss: number;
  /** VmHWM: the kernel's peak of VmRSS over the process's life. */
  hwm: number;
  /** RssAnon: resident anonymous memory — heap, buffers: what the process itself holds. */
  anon: number;
  /** RssFile: resident file-backed pages (page cache shared with every reader of the file). */
  file: number;
}

/** Memory figures of a process from /proc/<pid>/status, in bytes. */
export function memory(pid: number): MemoryFigures | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM'), anon: kb('RssAnon'), file: kb('RssFile') };
  } catch {
    return undefined;
  }
}

export interface MemoryPeaks {
  /** Highest VmRSS sampled. */
  peakRss: number;
  /** Highest RssAnon sampled. */
  peakAnon: number;
  /** Highest RssFile sampled. */
  peakFile: number;
  /** VmHWM when sampling stopped. */
  hwm: number;
}

/** Samples the memory of some processes every `everyMs` until stopped; answers the peaks seen. */
export class MemorySampler {
  private readonly peaks = new Map<number, MemoryPeaks>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pids: number[], everyMs = 20) {
    this.timer = setInterval(() => this.sample(), everyMs);
    this.sample();
  }

  private sample(): void {
    for (const pid of this.pids) {
      const m = memory(pid);
      if (!m) continue;
      const p = this.peaks.get(pid) ?? { peakRss: 0, peakAnon: 0, peakFile: 0, hwm: 0 };
      this.peaks.set(pid, {
        peakRss: Math.max(p.peakRss, m.rss),
        peakAnon: Math.max(p.peakAnon, m.anon),
        peakFile: Math.max(p.peakFile, m.file),
        hwm: m.hwm,
      });
    }
  }

  stop(): Map<number, MemoryPeaks> {
    clearInterval(this.timer);
    this.sample();
    return new Map(this.peaks);
  }
}

/** CLOCK_MONOTONIC in microseconds: the clock V8 stamps .cpuprofile samples with, in every process. */
export function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export interface ShellTiming {
  /** Wall-clock seconds. */
  real: number;
  /** CPU seconds of every process of the pipeline (user + system). */
  cpu: number;
  stderr: string;
}

/**
 * Run a bash pipeline (with pipefail) and time it with bash's own `time`: wall, user and
 * system seconds of all its processes. Throws with the pipeline's stderr when it fails.
 */
export function timeShell(pipeline: string, env: NodeJS.ProcessEnv = process.env): Promise<ShellTiming> {
  const script = `TIMEFORMAT='@@time %3R %3U %3S'; time ( set -o pipefail; ${pipeline} )`;
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      const m = /@@time ([\d.]+) ([\d.]+) ([\d.]+)\s*$/.exec(stderr);
      const rest = stderr.replace(/@@time [\d. ]+\s*$/, '').trim();
      if (code !== 0 || !m) return reject(new Error(`\`${pipeline}\` failed (exit ${code}): ${rest.slice(-1000)}`));
      resolve({ real: Number(m[1]), cpu: Number(m[2]) + Number(m[3]), stderr: rest });
    });
  });
}

/** Single-quote a string for bash. */
export function sh(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Write to `bytes` of memory in a child process, which then exits and lets it go: a virtual
 * machine may back a page of its memory only when the page is first used, at a cost the first
 * user of each page pays (the page cache of whatever the bench writes included). Done once
 * before anything is measured. It wears off where the machine reports free memory back to its
 * host (virtio-balloon free page reporting): a page free for a few seconds is then paid for
 * again by its next user, so each step still pays for the memory it writes (the report says
 * how much). Answers the seconds.
 */
export function warmMemory(bytes: number): number {
  const started = performance.now();
  const gib = Math.floor(bytes / 2 ** 30);
  const script = `const k = [];for (let i = 0; i < ${gib}; i++) k.push(Buffer.allocUnsafeSlow(2 ** 30).fill(1));`;
  execFileSync(process.execPath, ['-e', script], { stdio: 'ignore' });
  return (performance.now() - started) / 1000;
}

