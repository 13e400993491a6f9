/**
 * `npm run bench`: how fast shardvault backs up and restores, against what an operator would
 * use instead, on the same data in the same run; writes BENCHMARKS.md. It reports and never
 * asserts: a missed target or a phase that cannot run becomes a line in the report.
 *
 *     npm run bench                      about 1 GiB of documents, 3 runs of everything
 *     npm run bench -- --quick           a smoke run on 16 MiB
 *     npm run bench -- --size 256MiB --reps 5 --mem-size 512MiB --work-dir /big/disk --keep
 *
 * Flags: --quick, --size S, --reps N, --mem-size S (largest shard of the memory test; the
 * smaller one is a quarter of it), --workers 1,2, --levels BestSpeed,DefaultCompression,
 * --work-dir DIR, --out FILE, --keep (leave the work directory), --reuse (reuse data generated
 * by an earlier run with the same size), --skip phase,… (baselines, restic, shardvault,
 * profile, nodes, incremental, memory, load, requests), --concurrency N (WORKER_CONCURRENCY of each worker), --worker-entry
 * FILE (start workers from another entry point than the build's dist/worker/main.js, which
 * `npm run bench` builds first, as every process of the bench runs the build).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureRestic, fileBaselines, resticBaseline, resticRepository, toolVersion, type Baseline } from './baselines.ts';
import { BenchCluster, WORKER_ENTRY } from './cluster.ts';
import {
  DEFAULT_BYTES, DEFAULT_NODES, QUICK_BYTES, changeData, directoryBytes, formatBytes, generate, parseSize,
  type IndexPlan,
} from './generate.ts';
import { getRepeatedly, postBackups } from './load.ts';
import {
  MemorySampler, memory, monotonicMicros, processCpu, stats, threadCpu, threadCpuDelta, timeShell, warmMemory,
} from './measure.ts';
import { nodesRun } from './nodes.ts';
import { newestProfile, summarizeProfile } from './profile.ts';
import { ingestRun, listRun } from './request-path.ts';
import { writeReport } from './report.ts';
import { childEnv, sourceFiles, WORKER_NODE_FLAGS } from '../test/support/process.ts';
import type { BenchResults, DataSummary, IncrementalComparison, MemoryRun, ProfileRun, Row, Step } from './results.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// ---- arguments ---------------------------------------------------------------------------

function parseArgs(argv: string[]) {
  const value = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const quick = argv.includes('--quick');
  const bytes = value('--size') ? parseSize(value('--size')!) : quick ? QUICK_BYTES : DEFAULT_BYTES;
  const memLarge = value('--mem-size') ? parseSize(value('--mem-size')!) : quick ? 2 * QUICK_BYTES : DEFAULT_BYTES;
  return {
    quick,
    label: quick && !value('--size') ? 'quick' : bytes === DEFAULT_BYTES ? 'full' : 'custom',
    bytes,
    reps: Number(value('--reps') ?? 3),
    memBytes: [Math.round(memLarge / 4), memLarge],
    workers: (value('--workers') ?? '1,2').split(',').map(Number),
    levels: (value('--levels') ?? 'BestSpeed,DefaultCompression').split(','),
    workDir: path.resolve(value('--work-dir') ?? path.join(os.tmpdir(), 'shardvault-bench')),
    out: path.resolve(value('--out') ?? path.join(ROOT, 'BENCHMARKS.md')),
    keep: argv.includes('--keep'),
    reuse: argv.includes('--reuse'),
    skip: new Set((value('--skip') ?? '').split(',').filter(Boolean)),
    concurrency: value('--concurrency') ? Number(value('--concurrency')) : undefined,
    workerEntry: value('--worker-entry') ?? WORKER_ENTRY,
    loadRate: 200,
    loadAmount: quick ? 600 : 2000,
  };
}

type Args = ReturnType<typeof parseArgs>;

const log = (line: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

// ---- machine and versions ----------------------------------------------------------------

function machine(workDir: string): BenchResults['machine'] {
  let fsType = '';
  try {
    fsType = execFileSync('df', ['-T', '-h', workDir], { encoding: 'utf8' }).trim().split('\n')[1]?.split(/\s+/).slice(0, 3).join(' ') ?? '';
  } catch {
    // unknown
  }
  return {
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryBytes: os.totalmem(),
    kernel: `${os.type()} ${os.release()}`,
    fs: fsType,
    loadavg: os.loadavg(),
  };
}

function packageVersion(name: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'not installed';
  }
}

function versions(resticBinary?: string): Record<string, string> {
  const v: Record<string, string> = { node: process.version };
  for (const p of ['lmdb', 'msgpackr', 'bullmq', 'ioredis', 'hono', 'autocannon']) v[p] = packageVersion(p);
  v['redis-server'] = toolVersion('redis-server', ['--version'])?.replace(/^Redis server /, '') ?? 'missing';
  v.gzip = toolVersion('gzip', ['--version']) ?? 'missing';
  v.zstd = toolVersion('zstd', ['--version']) ?? 'missing';
  v.tar = toolVersion('tar', ['--version']) ?? 'missing';
  v.restic = resticBinary ? (toolVersion(resticBinary, ['version']) ?? 'unknown') : 'missing';
  // What every shardvault process of the bench runs with (test/support/process.ts childEnv).
  v['GLIBC_TUNABLES of shardvault processes'] = childEnv({}).GLIBC_TUNABLES ?? 'none';
  v['node flags of workers (`npm run worker`)'] = WORKER_NODE_FLAGS.join(' ') || 'none';
  return v;
}

// ---- data --------------------------------------------------------------------------------

function largestShard(dataDir: string): { path: string; bytes: number } {
  let best = { path: '', bytes: 0 };
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === 'data.mdb' && !p.includes(`${path.sep}_cluster${path.sep}`)) {
        const bytes = fs.statSync(p).size;
        if (bytes > best.bytes) best = { path: path.relative(dataDir, path.dirname(p)), bytes };
      }
    }
  };
  walk(dataDir);
  return best;
}

async function prepareData(
  dir: string,
  bytes: number,
  reuse: boolean,
  plan?: IndexPlan[],
): Promise<DataSummary> {
  const marker = path.join(dir, '..', `${path.basename(dir)}.json`);
  if (reuse && fs.existsSync(marker) && fs.existsSync(dir)) {
    const saved = JSON.parse(fs.readFileSync(marker, 'utf8')) as DataSummary & { requested: number };
    if (saved.requested === bytes) {
      log(`reusing ${formatBytes(saved.jsonBytes)} of documents in ${dir}`);
      return { ...saved, reused: true };
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  log(`generating ${formatBytes(bytes)} of documents in ${dir}`);
  let lastReport = 0;
  const g = await generate({
    dataDir: dir,
    bytes,
    plan,
    onProgress: (done, total) => {
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        log(`  ${formatBytes(done)} / ${formatBytes(total)}`);
      }
    },
  });
  const disk = directoryBytes(dir);
  const summary: DataSummary = {
    docs: g.docs,
    jsonBytes: g.jsonBytes,
    diskBytes: disk.bytes,
    files: disk.files,
    generatedSeconds: g.seconds,
    reused: false,
    indexes: g.indexes,
    largestShard: largestShard(dir),
  };
  fs.writeFileSync(marker, JSON.stringify({ ...summary, requested: bytes }, null, 2));
  log(`generated ${g.docs} documents (${formatBytes(g.jsonBytes)} JSON, ${formatBytes(disk.bytes)} on disk) in ${g.seconds.toFixed(1)} s`);
  return summary;
}

// ---- baselines ---------------------------------------------------------------------------

async function runBaseline(b: Baseline, reps: number, outDir: string, label?: string): Promise<Row> {
  const seconds: number[] = [];
  const cpu: number[] = [];
  const failures: string[] = [];
  let outputBytes = 0;
  for (let i = 0; i < reps; i++) {
    try {
      const r = await b.run(outDir);
      seconds.push(r.seconds);
      cpu.push(r.cpuSeconds);
      outputBytes = r.outputBytes;
      log(`  ${b.key} run ${i + 1}: ${r.seconds.toFixed(2)} s, CPU ${r.cpuSeconds.toFixed(2)} s${r.outputBytes ? `, ${formatBytes(r.outputBytes)}` : ''}`);
    } catch (err) {
      failures.push((err as Error).message);
      log(`  ${b.key} run ${i + 1} failed: ${(err as Error).message}`);
    }
  }
  return {
    key: b.key,
    kind: 'baseline',
    label: label ?? b.label,
    command: b.command,
    seconds: stats(seconds),
    cpuSeconds: stats(cpu),
    outputBytes: outputBytes || undefined,
    failures,
  };
}

// ---- shardvault --------------------------------------------------------------------------

interface Snapshot {
  api: number;
  workers: number;
  redis: number;
}

async function cpuSnapshot(c: BenchCluster): Promise<Snapshot> {
  const p = c.pids();
  return {
    api: p.api ? processCpu(p.api) : 0,
    workers: p.workers.reduce((a, pid) => a + processCpu(pid), 0),
    redis: await c.redisCpu().catch(() => 0),
  };
}

function medianRoles(samples: Snapshot[]): Record<string, number> {
  return {
    worker: stats(samples.map((s) => s.workers)).median,
    api: stats(samples.map((s) => s.api)).median,
    redis: stats(samples.map((s) => s.redis)).median,
  };
}

/** A source cluster on the bench data and a target cluster with a fresh data directory. */
async function shardvaultRuns(args: Args, data: DataSummary, dataDir: string, results: BenchResults): Promise<void> {
  const classes = data.indexes.map((i) => i.name);
  for (const workers of args.workers) {
    const tag = `w${workers}`;
    const backupDir = path.join(args.workDir, 'backups');
    const targetDir = path.join(args.workDir, `target-${tag}`);
    fs.rmSync(targetDir, { recursive: true, force: true });
    const source = new BenchCluster({
      workDir: path.join(args.workDir, `cluster-source-${tag}`), dataDir, backupDir, nodes: DEFAULT_NODES, workers,
      workerConcurrency: args.concurrency, workerEntry: args.workerEntry,
    });
    const target = new BenchCluster({
      workDir: path.join(args.workDir, `cluster-target-${tag}`), dataDir: targetDir, backupDir, nodes: DEFAULT_NODES, workers,
      workerConcurrency: args.concurrency, workerEntry: args.workerEntry,
    });
    try {
      log(`starting clusters with ${workers} worker(s)`);
      await Promise.all([source.start(), target.start()]);
      for (const level of args.levels) {
        const backupRow = await measureOps(args, 'backup', source, workers, level, async (i) => {
          // Every run is a full backup: an empty location, so its repository reuses nothing
          // (the incremental phase measures what a repository saves).
          fs.rmSync(backupDir, { recursive: true, force: true });
          const id = `bench-${tag}-${level.toLowerCase()}-${i}-${Date.now().toString(36)}`;
          const r = await source.backup(id, { include: classes, compression: level });
          const size = directoryBytes(backupDir).bytes;
          return { r, id, size };
        });
        results.rows.push(backupRow.row);
        const keep = backupRow.lastOk;
        if (!keep) {
          results.errors.push({ phase: `restore ${tag} ${level}`, message: 'no successful backup to restore' });
          continue;
        }
        const restoreRow = await measureOps(args, 'restore', target, workers, level, async () => {
          const r = await target.restore(keep);
          if (r.status === 'SUCCESS') {
            for (const ix of data.indexes) {
              const docs = await target.docCount(ix.name);
              if (docs !== ix.docs) throw new Error(`restored ${ix.name} holds ${docs} documents, expected ${ix.docs}`);
            }
          }
          for (const name of classes) await target.deleteClass(name);
          return { r, id: keep, size: 0 };
        });
        results.rows.push(restoreRow.row);
        fs.rmSync(backupDir, { recursive: true, force: true });
      }
    } catch (err) {
      results.errors.push({ phase: `shardvault with ${workers} worker(s)`, message: (err as Error).message });
      log(`shardvault with ${workers} worker(s) failed: ${(err as Error).message}`);
    } finally {
      await source.stop().catch(() => undefined);
      await target.stop().catch(() => undefined);
      fs.rmSync(targetDir, { recursive: true, force: true });
    }
  }
}

async function measureOps(
  args: Args,
  kind: 'backup' | 'restore',
  cluster: BenchCluster,
  workers: number,
  level: string,
  op: (i: number) => Promise<{ r: { status: string; seconds: number; body: Record<string, unknown> }; id: string; size: number }>,
): Promise<{ row: Row; lastOk?: string }> {
  const seconds: number[] = [];
  const cpu: number[] = [];
  const roles: Snapshot[] = [];
  const failures: string[] = [];
  let lastOk: string | undefined;
  let outputBytes = 0;
  let peakWorkerRss = 0;
  let peakWorkerAnon = 0;
  for (let i = 0; i < args.reps; i++) {
    const before = await cpuSnapshot(cluster);
    const sampler = new MemorySampler(cluster.pids().workers);
    try {
      const { r, id, size } = await op(i);
      const peaks = sampler.stop();
      const after = await cpuSnapshot(cluster);
      if (r.status !== 'SUCCESS') {
        failures.push(`${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`);
        log(`  ${kind} ${workers}w ${level} run ${i + 1}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
        continue;
      }
      const d = { api: after.api - before.api, workers: after.workers - before.workers, redis: after.redis - before.redis };
      roles.push(d);
      seconds.push(r.seconds);
      cpu.push(d.api + d.workers + d.redis);
      if (size) outputBytes = size;
      lastOk = id;
      for (const p of peaks.values()) {
        peakWorkerRss = Math.max(peakWorkerRss, p.peakRss);
        peakWorkerAnon = Math.max(peakWorkerAnon, p.peakAnon);
      }
      log(
        `  ${kind} ${workers}w ${level} run ${i + 1}: ${r.seconds.toFixed(2)} s, CPU worker ${d.workers.toFixed(2)} s api ${d.api.toFixed(2)} s redis ${d.redis.toFixed(2)} s${size ? `, ${formatBytes(size)}` : ''}`,
      );
    } catch (err) {
      sampler.stop();
      failures.push((err as Error).message);
      log(`  ${kind} ${workers}w ${level} run ${i + 1} failed: ${(err as Error).message}`);
    }
  }
  return {
    row: {
      key: `sv-${kind}-w${workers}-${level}`,
      kind,
      label: `shardvault ${kind}, ${workers} worker${workers > 1 ? 's' : ''}, ${level}`,
      workers,
      compression: level,
      seconds: stats(seconds),
      cpuSeconds: stats(cpu),
      cpuByRole: roles.length ? medianRoles(roles) : undefined,
      outputBytes: outputBytes || undefined,
      peakWorkerRss: peakWorkerRss || undefined,
      peakWorkerAnon: peakWorkerAnon || undefined,
      failures,
    },
    lastOk,
  };
}

// ---- incremental ---------------------------------------------------------------------------

/**
 * The snapshot engine against the tools an operator compares it with, on the same data in one
 * run: a raw read and `tar | zstd -1 -T0` of the data directory; restic's first backup and
 * shardvault's full backup into an empty repository; then 1 % of the documents changed, 0.5 %
 * deleted and 1 % added (changeData); restic's second backup and shardvault's incremental one;
 * and a restore of the incremental backup into another cluster, checked document for document
 * by count. Once each (the data changes between steps). Changes the bench data: the marker
 * that lets --reuse keep it is removed.
 */
async function incrementalRuns(args: Args, data: DataSummary, dataDir: string, results: BenchResults, resticBinary: string | undefined): Promise<void> {
  const workers = Math.max(...args.workers);
  // Weaviate's default level, what a backup gets unless it asks otherwise.
  const compression = 'DefaultCompression';
  const classes = data.indexes.map((i) => i.name);
  const outDir = path.join(args.workDir, 'incremental-out');
  const backupDir = path.join(args.workDir, 'backups-incremental');
  const targetDir = path.join(args.workDir, 'target-incremental');
  for (const d of [outDir, backupDir, targetDir]) fs.rmSync(d, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });
  const comparison: IncrementalComparison = { workers, compression, changed: { updated: 0, deleted: 0, added: 0 }, steps: [] };
  results.incremental = comparison;
  const step = (s: Step) => {
    comparison.steps.push(s);
    log(`  ${s.key}: ${s.seconds.toFixed(2)} s${s.outputBytes !== undefined ? `, ${formatBytes(s.outputBytes)}` : ''}${s.peakWorkerAnon ? `, worker anon ${formatBytes(s.peakWorkerAnon)}` : ''}`);
  };
  // Every step starts with nothing of an earlier step's left to write back to the disk.
  const settle = () => execFileSync('sync');
  const baselines = fileBaselines(dataDir);
  for (const key of ['raw-read', 'tar-zstd-mt'] as const) {
    const b = baselines.find((x) => x.key === key)!;
    settle();
    const r = await b.run(outDir);
    step({ key, label: b.label, seconds: r.seconds, ...(key === 'raw-read' ? {} : { outputBytes: r.outputBytes }) });
  }
  const restic = resticBinary ? resticRepository(dataDir, resticBinary, outDir) : undefined;
  if (!restic) results.notes.push('incremental: restic is not installed, its two backups are missing');
  const cluster = (name: string, dir: string) =>
    new BenchCluster({ workDir: path.join(args.workDir, `cluster-${name}`), dataDir: dir, backupDir, nodes: DEFAULT_NODES, workers, workerConcurrency: args.concurrency, workerEntry: args.workerEntry });
  const source = cluster('incremental-source', dataDir);
  const target = cluster('incremental-target', targetDir);
  const shardvaultBackup = async (key: 'full' | 'incremental', id: string, label: string, extra: { incrementalBase?: string } = {}) => {
    const before = directoryBytes(backupDir).bytes;
    settle();
    const sampler = new MemorySampler(source.pids().workers);
    const r = await source.backup(id, { include: classes, compression, ...extra });
    const peaks = sampler.stop();
    if (r.status !== 'SUCCESS') throw new Error(`${key} backup ended ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`);
    step({ key, label, seconds: r.seconds, outputBytes: directoryBytes(backupDir).bytes - before, peakWorkerAnon: Math.max(0, ...[...peaks.values()].map((p) => p.peakAnon)) });
  };
  try {
    await Promise.all([source.start(), target.start()]);
    settle();
    if (restic) step({ key: 'restic-1', label: "restic's first `backup`", ...(await restic.backup()) });
    await shardvaultBackup('full', 'inc-full', 'shardvault full backup');
    fs.rmSync(path.join(dataDir, '..', `${path.basename(dataDir)}.json`), { force: true });
    comparison.changed = await changeData(dataDir, data.indexes);
    log(`  changed: ${JSON.stringify(comparison.changed)}`);
    settle();
    if (restic) step({ key: 'restic-2', label: "restic's second `backup`", ...(await restic.backup()) });
    await shardvaultBackup('incremental', 'inc-next', 'shardvault incremental backup', { incrementalBase: 'inc-full' });
    // Twice: in workers that start it fresh (the target), then again in the same workers once its
    // classes are deleted — what a long-running worker, whose memory is grown already, takes.
    for (const key of ['restore', 'restore-again'] as const) {
      if (key === 'restore-again') for (const ix of data.indexes) await target.deleteClass(ix.name);
      settle();
      const restored = await target.restore('inc-next');
      if (restored.status !== 'SUCCESS') throw new Error(`restore ended ${restored.status}: ${JSON.stringify(restored.body).slice(0, 300)}`);
      for (const ix of data.indexes) {
        const expected = ix.docs + Math.ceil(ix.docs / 100) - Math.ceil(Math.max(0, ix.docs - 50) / 200);
        const docs = await target.docCount(ix.name);
        if (docs !== expected) throw new Error(`the restored ${ix.name} holds ${docs} documents, expected ${expected}`);
      }
      const label = key === 'restore' ? 'shardvault restore of the incremental backup' : 'the same restore again, in the same workers';
      step({ key, label, seconds: restored.seconds });
    }
  } finally {
    await source.stop().catch(() => undefined);
    await target.stop().catch(() => undefined);
    restic?.remove();
    for (const d of [outDir, backupDir, targetDir]) fs.rmSync(d, { recursive: true, force: true });
  }
}

// ---- CPU profile -------------------------------------------------------------------------

async function profiledOp(
  name: string,
  cluster: BenchCluster,
  profDir: string,
  op: () => Promise<{ status: string; seconds: number; body: Record<string, unknown> }>,
): Promise<ProfileRun> {
  fs.rmSync(profDir, { recursive: true, force: true });
  fs.mkdirSync(profDir, { recursive: true });
  const worker = cluster.workers[0]!;
  const pid = worker.child.pid!;
  const before = threadCpu(pid);
  const startUs = monotonicMicros();
  const r = await op();
  const endUs = monotonicMicros();
  const threads = Object.fromEntries(threadCpuDelta(before, threadCpu(pid)));
  await cluster.stopWorker(worker);
  const base = { name, process: 'worker' as const, seconds: r.seconds, threads };
  if (r.status !== 'SUCCESS') return { ...base, error: `${r.status}: ${JSON.stringify(r.body).slice(0, 300)}` };
  const file = newestProfile(profDir);
  if (!file) return { ...base, error: 'the worker wrote no .cpuprofile on exit' };
  return { ...base, summary: summarizeProfile(file, ROOT, 15, { startUs, endUs }) };
}

async function profileRuns(args: Args, data: DataSummary, dataDir: string, results: BenchResults): Promise<void> {
  const classes = data.indexes.map((i) => i.name);
  const backupDir = path.join(args.workDir, 'backups-profile');
  const targetDir = path.join(args.workDir, 'target-profile');
  fs.rmSync(targetDir, { recursive: true, force: true });
  const profRoot = path.join(args.workDir, 'cpuprofiles');
  const profFlags = (dir: string) => ['--cpu-prof', `--cpu-prof-dir=${dir}`];
  const source = new BenchCluster({ workDir: path.join(args.workDir, 'cluster-prof-source'), dataDir, backupDir, nodes: DEFAULT_NODES, workers: 0, workerConcurrency: args.concurrency, workerEntry: args.workerEntry });
  const target = new BenchCluster({ workDir: path.join(args.workDir, 'cluster-prof-target'), dataDir: targetDir, backupDir, nodes: DEFAULT_NODES, workers: 0, workerConcurrency: args.concurrency, workerEntry: args.workerEntry });
  try {
    await Promise.all([source.start(), target.start()]);
    let restorable: string | undefined;
    for (const level of args.levels) {
      const dir = path.join(profRoot, `backup-${level}`);
      source.options.workerNodeFlags = profFlags(dir);
      await source.addWorker();
      const id = `profile-${level.toLowerCase()}-${Date.now().toString(36)}`;
      log(`profiling a backup at ${level} (1 worker, --cpu-prof)`);
      const run = await profiledOp(`backup, 1 worker, ${level}`, source, dir, () => source.backup(id, { include: classes, compression: level }));
      results.profiles.push(run);
      if (!run.error && level === args.levels[0]) restorable = id;
    }
    if (restorable) {
      const dir = path.join(profRoot, 'restore');
      target.options.workerNodeFlags = profFlags(dir);
      await target.addWorker();
      log(`profiling a restore of the ${args.levels[0]} backup (1 worker, --cpu-prof)`);
      results.profiles.push(await profiledOp(`restore, 1 worker, ${args.levels[0]}`, target, dir, () => target.restore(restorable)));
    }
  } finally {
    await source.stop().catch(() => undefined);
    await target.stop().catch(() => undefined);
    fs.rmSync(targetDir, { recursive: true, force: true });
    fs.rmSync(backupDir, { recursive: true, force: true });
  }
}

// ---- memory ------------------------------------------------------------------------------

/** Runs of each memory measurement: at least three, whatever --reps says (one with --quick). */
function memoryReps(args: Args): number {
  return args.quick ? 1 : Math.max(3, args.reps);
}

/** The run of median peak anonymous memory (a failed one if any failed), with every run's peak beside it. */
function medianRun(runs: MemoryRun[]): MemoryRun {
  const failed = runs.find((r) => r.status !== 'SUCCESS');
  if (failed) return failed;
  const sorted = [...runs].sort((a, b) => a.peakAnon - b.peakAnon);
  return { ...sorted[Math.floor((sorted.length - 1) / 2)]!, peakAnonRuns: runs.map((r) => r.peakAnon) };
}

/** One index of one shard grown from the small size to the large one, fresh workers measured at each (memoryReps). */
async function memoryRuns(args: Args, results: BenchResults): Promise<void> {
  const dataDir = path.join(args.workDir, 'data-memory');
  const backupDir = path.join(args.workDir, 'backups-memory');
  const targetDir = path.join(args.workDir, 'target-memory');
  fs.rmSync(dataDir, { recursive: true, force: true });
  const plan: IndexPlan[] = [{ name: 'Memory', shape: 'article', shards: 1, share: 1 }];
  let docs = 0;
  let jsonBytes = 0;
  try {
    for (const size of args.memBytes) {
      log(`memory: growing one shard to ${formatBytes(size)} of documents`);
      const g = await generate({ dataDir, bytes: size - jsonBytes, plan });
      jsonBytes += g.jsonBytes;
      docs = g.indexes[0]!.docs;
      const shardDiskBytes = largestShard(dataDir).bytes;
      for (const op of ['backup', 'restore'] as const) {
        // Several runs, each in a fresh worker: one run's peak moves by ±20 MB (when the garbage
        // collector runs, what the allocator keeps), more than what a worker may hold in
        // proportion to the shard. The run of median peak stands for them; the others give the spread.
        const runs: MemoryRun[] = [];
        for (let rep = 0; rep < memoryReps(args); rep++) {
          fs.rmSync(targetDir, { recursive: true, force: true });
          // Every backup into an empty location (a second one would be incremental); the
          // restores then read the last.
          if (op === 'backup') fs.rmSync(backupDir, { recursive: true, force: true });
          const cluster = new BenchCluster({
            workDir: path.join(args.workDir, `cluster-memory-${op}`), dataDir: op === 'backup' ? dataDir : targetDir, backupDir,
            nodes: DEFAULT_NODES, workers: 1, workerConcurrency: args.concurrency, workerEntry: args.workerEntry,
          });
          try {
            await cluster.start();
            const pid = cluster.pids().workers[0]!;
            const idle = memory(pid);
            const sampler = new MemorySampler([pid], 10);
            const r = op === 'backup'
              ? await cluster.backup(`memory-${docs}`, { include: ['Memory'], compression: 'DefaultCompression' })
              : await cluster.restore(`memory-${docs}`);
            const peak = sampler.stop().get(pid)!;
            runs.push({
              op, docs, jsonBytes, shardDiskBytes, seconds: r.seconds, idleRss: idle?.rss ?? 0, idleAnon: idle?.anon ?? 0,
              peakRss: peak.peakRss, peakAnon: peak.peakAnon, peakFile: peak.peakFile, hwm: peak.hwm, status: r.status,
            });
            log(
              `  ${op} of ${formatBytes(jsonBytes)} (run ${rep + 1}): ${r.status} in ${r.seconds.toFixed(2)} s, worker RSS idle ${formatBytes(idle?.rss ?? 0)}, ` +
                `peak ${formatBytes(peak.peakRss)} (anonymous ${formatBytes(peak.peakAnon)}, file-backed ${formatBytes(peak.peakFile)}), VmHWM ${formatBytes(peak.hwm)}`,
            );
            if (r.status !== 'SUCCESS') break;
          } finally {
            await cluster.stop().catch(() => undefined);
          }
        }
        results.memory.push(medianRun(runs));
        if (runs.some((r) => r.status !== 'SUCCESS')) break;
      }
      // The whole location, repository included: the next size is backed up from scratch.
      fs.rmSync(backupDir, { recursive: true, force: true });
    }
  } finally {
    fs.rmSync(targetDir, { recursive: true, force: true });
    fs.rmSync(backupDir, { recursive: true, force: true });
    if (!args.keep) fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

// ---- API load ----------------------------------------------------------------------------

async function loadRuns(args: Args, results: BenchResults): Promise<void> {
  const dataDir = path.join(args.workDir, 'data-load');
  const backupDir = path.join(args.workDir, 'backups-load');
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.rmSync(backupDir, { recursive: true, force: true });
  await generate({ dataDir, bytes: 64 * 1024, plan: [{ name: 'Small', shape: 'event', shards: 3, share: 1 }] });
  const profDir = path.join(args.workDir, 'cpuprofiles', 'api-load');
  fs.rmSync(profDir, { recursive: true, force: true });
  const cluster = new BenchCluster({
    workDir: path.join(args.workDir, 'cluster-load'), dataDir, backupDir, nodes: DEFAULT_NODES, workers: 1, workerEntry: args.workerEntry,
  });
  try {
    await cluster.start();
    const done = await cluster.backup('load-status', { include: ['Small'], compression: 'BestSpeed' });
    if (done.status !== 'SUCCESS') throw new Error(`the backup whose status is read under load ended ${done.status}`);
    // The API alone with its Redis: workers would compete with it for this machine's cores.
    await cluster.stopWorker(cluster.workers[0]!);
    const tag = Date.now().toString(36);
    log(`load: POST at ${args.loadRate} req/s`);
    results.load.push(await postBackups(cluster, { index: 'Small', amount: args.loadAmount, rate: args.loadRate, tag: `${tag}-r` }));
    log('load: POST flat out');
    results.load.push(await postBackups(cluster, { index: 'Small', amount: args.loadAmount, tag: `${tag}-f` }));
    log('load: GET status flat out, then at 1000 req/s beside the liveness floor');
    const status = { path: '/v1/backups/filesystem/load-status', name: '/v1/backups/filesystem/{id}' };
    results.load.push(await getRepeatedly(cluster, { ...status, amount: args.loadAmount * 2 }));
    results.load.push(await getRepeatedly(cluster, { ...status, amount: args.loadAmount * 2, rate: 1000 }));
    results.load.push(await getRepeatedly(cluster, { path: '/v1/.well-known/live', name: '/v1/.well-known/live', amount: args.loadAmount * 2, rate: 1000 }));
    for (const l of results.load) {
      log(`  ${l.name}: ${l.rps.toFixed(0)} req/s, p50 ${l.p50.toFixed(1)} ms, p99 ${l.p99.toFixed(1)} ms, non-2xx ${l.non2xx}, errors ${l.errors}`);
    }
    if (!args.skip.has('profile')) {
      // Profiled apart from the measured runs: the profiler's sampling would be in their latencies.
      log(`load: POST at ${args.loadRate} req/s again, the API under --cpu-prof`);
      await cluster.restartApi(['--cpu-prof', `--cpu-prof-dir=${profDir}`]);
      const apiPid = cluster.pids().api!;
      // Counted from the end of the warm-up, as the latencies are.
      let before = threadCpu(apiPid);
      let startUs = monotonicMicros();
      const onMeasure = () => {
        before = threadCpu(apiPid);
        startUs = monotonicMicros();
      };
      await postBackups(cluster, { index: 'Small', amount: args.loadAmount, rate: args.loadRate, tag: `${tag}-p`, onMeasure });
      const window = { startUs, endUs: monotonicMicros() };
      const threads = Object.fromEntries(threadCpuDelta(before, threadCpu(apiPid)));
      await cluster.stopApi();
      const file = newestProfile(profDir);
      results.profiles.push({
        name: `API during POST /v1/backups/filesystem at ${args.loadRate} req/s`,
        process: 'api',
        seconds: (window.endUs - window.startUs) / 1e6,
        threads,
        ...(file ? { summary: summarizeProfile(file, ROOT, 15, window) } : { error: 'the API wrote no .cpuprofile on exit' }),
      });
    }
  } finally {
    await cluster.stop().catch(() => undefined);
    fs.rmSync(backupDir, { recursive: true, force: true });
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

// ---- main --------------------------------------------------------------------------------

/** A source file of the processes the bench starts that changed after `built` was written, if any. */
function newerSource(built: string): string | undefined {
  const since = fs.statSync(built).mtimeMs;
  const newer = sourceFiles(['shared', 'api', 'worker', 'node']).find((f) => fs.statSync(f).mtimeMs > since);
  return newer && path.relative(ROOT, newer);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = performance.now();
  fs.mkdirSync(args.workDir, { recursive: true });
  const results: BenchResults = {
    label: args.label,
    startedAt: new Date().toISOString(),
    finishedAt: '',
    totalSeconds: 0,
    options: {
      bytes: args.bytes, reps: args.reps, memBytes: args.memBytes, workers: args.workers, levels: args.levels,
      concurrency: args.concurrency, loadRate: args.loadRate, loadAmount: args.loadAmount,
    },
    machine: machine(args.workDir),
    versions: {},
    rows: [],
    memory: [],
    load: [],
    profiles: [],
    notes: [],
    errors: [],
  };
  const phase = async (name: string, fn: () => Promise<void>) => {
    if (args.skip.has(name)) {
      results.notes.push(`${name}: skipped (--skip ${name})`);
      return;
    }
    const t = performance.now();
    try {
      await fn();
    } catch (err) {
      results.errors.push({ phase: name, message: (err as Error).message });
      log(`${name} failed: ${(err as Error).message}`);
    }
    log(`${name}: ${((performance.now() - t) / 1000).toFixed(1)} s`);
    // A checkpoint after every phase: a run stopped halfway still leaves what it measured.
    results.finishedAt = new Date().toISOString();
    results.totalSeconds = (performance.now() - started) / 1000;
    fs.writeFileSync(path.join(args.workDir, 'results.json'), JSON.stringify(results, null, 2));
    writeReport(results, args.out);
  };

  let restic: { binary?: string; note?: string } = {};
  if (!args.skip.has('restic') && !args.skip.has('baselines')) {
    restic = ensureRestic(log);
    if (restic.note) results.notes.push(`restic: ${restic.note}`);
  }
  results.versions = versions(restic.binary);
  if (!args.quick) {
    const bytes = Math.min(6 * 2 ** 30, Math.floor((0.4 * os.freemem()) / 2 ** 30) * 2 ** 30);
    log(`writing to ${formatBytes(bytes)} of memory once, before anything is measured`);
    results.machine.warmed = { bytes, seconds: warmMemory(bytes) };
  }
  const haveWorker = fs.existsSync(path.resolve(ROOT, args.workerEntry));
  if (!haveWorker) {
    results.notes.push(`${args.workerEntry} does not exist (run \`npm run build\`, which \`npm run bench\` runs first): every shardvault figure is missing from this run`);
  }
  if (args.workerEntry !== WORKER_ENTRY) results.notes.push(`workers started from ${args.workerEntry} (--worker-entry), not ${WORKER_ENTRY}`);
  const newer = haveWorker && args.workerEntry.endsWith('.js') ? newerSource(path.resolve(ROOT, args.workerEntry)) : undefined;
  if (newer) {
    const note = `${newer} is newer than ${args.workerEntry}: this run measures an older build than the sources (run \`npm run build\`, which \`npm run bench\` runs first)`;
    log(note);
    results.notes.push(note);
  }

  const dataDir = path.join(args.workDir, 'data');
  let data: DataSummary | undefined;
  await phase('generate', async () => {
    data = await prepareData(dataDir, args.bytes, args.reuse);
    results.data = data;
  });

  if (data) {
    const d = data;
    // Every run reads from the page cache: read everything once, untimed.
    await timeShell(`find '${dataDir}' -type f -print0 | xargs -0 cat > /dev/null`).catch(() => undefined);
    await phase('baselines', async () => {
      const outDir = path.join(args.workDir, 'baseline-out');
      fs.mkdirSync(outDir, { recursive: true });
      for (const b of fileBaselines(dataDir)) {
        log(`baseline ${b.key}`);
        results.rows.push(await runBaseline(b, args.reps, outDir));
      }
      if (restic.binary && !args.skip.has('restic')) {
        log('baseline restic');
        results.rows.push(await runBaseline(resticBaseline(dataDir, restic.binary), args.reps, outDir));
      }
      fs.rmSync(outDir, { recursive: true, force: true });
    });
    if (haveWorker) {
      await phase('shardvault', () => shardvaultRuns(args, d, dataDir, results));
      await phase('profile', () => profileRuns(args, d, dataDir, results));
      // Before incremental, which changes the bench data: the nodes get copies of it as generated.
      await phase('nodes', () =>
        nodesRun({ workDir: args.workDir, dataDir, data: d, reps: args.reps, workerConcurrency: args.concurrency, workerEntry: args.workerEntry, log }, results),
      );
      // Last of the phases on the bench data: it changes it.
      await phase('incremental', () => incrementalRuns(args, d, dataDir, results, restic.binary));
    }
  }
  if (haveWorker) {
    await phase('memory', () => memoryRuns(args, results));
    await phase('load', () => loadRuns(args, results));
    await phase('requests', async () => {
      log('requests: bulk import through /v1/batch/objects and Store.putDocuments');
      const ingest = await ingestRun(args.workDir, { batches: args.quick ? 10 : 60, batchSize: 1000, clients: 2, apiProcesses: [1, 2] });
      results.requestPath = { ingest };
      const api = ingest.api.map((a) => `${a.objectsPerSecond.toFixed(0)}/s with ${a.processes}`).join(', ');
      log(`  objects through the API (by API processes): ${api}; ${ingest.store.objectsPerSecond.toFixed(0)}/s through putDocuments`);
      log('requests: GET /v1/backups/s3 with 1000 backups');
      const list = await listRun(args.workDir, { backups: 1000, repositoryObjects: args.quick ? 500 : 5000, requests: args.quick ? 100 : 400 });
      results.requestPath.list = list;
      log(`  p99 ${list.p99} ms, ${list.s3RequestsPerRequest.toFixed(2)} S3 requests and ${list.redisCommandsPerRequest?.toFixed(1)} Redis commands per request`);
    });
  }

  results.finishedAt = new Date().toISOString();
  results.totalSeconds = (performance.now() - started) / 1000;
  fs.writeFileSync(path.join(args.workDir, 'results.json'), JSON.stringify(results, null, 2));
  writeReport(results, args.out);
  log(`wrote ${args.out} (raw results: ${path.join(args.workDir, 'results.json')}) in ${results.totalSeconds.toFixed(0)} s`);
  if (!args.keep) {
    for (const e of fs.readdirSync(args.workDir)) {
      if (e === 'results.json' || e === 'cpuprofiles') continue;
      if (args.reuse && (e === 'data' || e === 'data.json')) continue;
      fs.rmSync(path.join(args.workDir, e), { recursive: true, force: true });
    }
  }
}

await main();
