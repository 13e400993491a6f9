/**
 * Reading V8 `.cpuprofile` files (written by `node --cpu-prof`): self time per function,
 * summed over every sample, heaviest first. The profile covers JavaScript on the main thread
 * (plus `(garbage collector)` and `(program)`); work on libuv's pool threads, such as zlib
 * compression, is not in it — the bench measures that from /proc per thread instead.
 */
import fs from 'node:fs';
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface HotFunction {
  name: string;
  /** Where it lives: a project-relative path or a package name and file, with line. */
  where: string;
  selfMs: number;
  /** Share of all sampled time that was not idle. */
  share: number;
}

export interface ProfileSummary {
  file: string;
  /** Sampled milliseconds, idle excluded. */
  busyMs: number;
  idleMs: number;
  top: HotFunction[];
  /** Self time grouped by where the code comes from (the project, each package, node internals). */
  byOrigin: { origin: string; selfMs: number; share: number }[];
  /** True when only the samples inside the operation's time window were counted. */
  windowed: boolean;
}

/** A time window on CLOCK_MONOTONIC, in microseconds (see measure.ts monotonicMicros). */
export interface Window {
  startUs: number;
  endUs: number;
}

function shortUrl(url: string, root: string): string {
  if (!url) return '';
  let p = url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url;
  const nm = p.lastIndexOf('/node_modules/');
  if (nm >= 0) return p.slice(nm + '/node_modules/'.length);
  if (p.startsWith(root + '/')) p = p.slice(root.length + 1);
  // The build (`dist/…`, what the scripts run) is named by its source file.
  const built = /^dist\/(.*)\.js$/.exec(p);
  return built ? `${built[1]}.ts` : p;
}

function originOf(url: string, root: string): string {
  if (!url) return '(native / VM)';
  if (url.startsWith('node:')) return 'node core';
  const short = shortUrl(url, root);
  const p = url.startsWith('file://') ? decodeURIComponent(url.slice(7)) : url;
  if (p.includes('/node_modules/')) {
    const parts = short.split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  if (p.startsWith(root + '/')) return `shardvault ${short.split('/')[0]}/`;
  return short;
}

/**
 * Self time per function. With a window, only samples taken inside it count (V8 stamps samples
 * with CLOCK_MONOTONIC, the same clock in every process), so process start-up — module loading
 * and transpiling — is left out; if no sample falls inside, the whole profile is used.
 */
export function summarizeProfile(file: string, root: string, topN = 15, window?: Window): ProfileSummary {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  let inWindow: (i: number) => boolean = () => true;
  let windowed = false;
  if (window) {
    const stamps: number[] = [];
    let t = profile.startTime;
    for (let i = 0; i < profile.samples.length; i++) stamps.push((t += profile.timeDeltas[i] ?? 0));
    const inside = (i: number) => stamps[i]! >= window.startUs && stamps[i]! <= window.endUs;
    if (stamps.some((_, i) => inside(i))) {
      inWindow = inside;
      windowed = true;
    }
  }
  const self = new Map<string, { name: string; where: string; url: string; ms: number }>();
  let idleMs = 0;
  let busyMs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    if (!inWindow(i)) continue;
    const node = byId.get(profile.samples[i]!);
    // timeDeltas[i] is the time before sample i; charge it to that sample.
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    if (!node) continue;
    const f = node.callFrame;
    if (f.functionName === '(idle)') {
      idleMs += ms;
      continue;
    }
    busyMs += ms;
    // A source file is named without a line: the build's lines are not the source's.
    const file = shortUrl(f.url, root);
    const where = !f.url ? '' : /\.[cm]?ts$/.test(file) ? file : `${file}:${f.lineNumber + 1}`;
    const key = `${f.functionName}|${where}`;
    const entry = self.get(key) ?? { name: f.functionName || '(anonymous)', where, url: f.url, ms: 0 };
    entry.ms += ms;
    self.set(key, entry);
  }
  const top = [...self.values()]
    .sort((a, b) => b.ms - a.ms)
    .slice(0, topN)
    .map((e) => ({ name: e.name, where: e.where, selfMs: e.ms, share: busyMs > 0 ? e.ms / busyMs : 0 }));
  const origins = new Map<string, number>();
  for (const e of self.values()) {
    const o = e.name.startsWith('(') && !e.url ? e.name : originOf(e.url, root);
    origins.set(o, (origins.get(o) ?? 0) + e.ms);
  }
  const byOrigin = [...origins.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([origin, ms]) => ({ origin, selfMs: ms, share: busyMs > 0 ? ms / busyMs : 0 }));
  return { file, busyMs, idleMs, top, byOrigin, windowed };
}

/**
 * The newest main-thread `.cpuprofile` in a directory, or undefined. Node writes one profile
 * per thread, named `CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile`: thread 0 is the main
 * thread; others are worker threads, such as the one running tsx's module hooks.
 */
export function newestProfile(dir: string): string | undefined {
  if (!fs.existsSync(dir)) return undefined;
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => path.join(dir, f))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  return files.find((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f)) ?? files[0];
}
