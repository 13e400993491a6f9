/**
 * The shapes of a benchmark run's results (`results.json`): what bench/run.ts measures and
 * bench/report.ts turns into BENCHMARKS.md. Their own module, so neither imports the other.
 */
import type { ChangeResult, GeneratedIndex } from './generate.ts';
import type { LoadRun } from './load.ts';
import type { Stats } from './measure.ts';
import type { ProfileSummary } from './profile.ts';
import type { IngestRun, ListRun } from './request-path.ts';

export interface Row {
  key: string;
  kind: 'baseline' | 'backup' | 'restore';
  label: string;
  command?: string;
  workers?: number;
  compression?: string;
  seconds: Stats;
  cpuSeconds: Stats;
  /** Median CPU seconds per role (worker, api, redis) for shardvault runs. */
  cpuByRole?: Record<string, number>;
  outputBytes?: number;
  /** Highest VmRSS sampled in any worker during the runs. */
  peakWorkerRss?: number;
  /** Highest RssAnon (the worker's own memory, without mapped LMDB file pages) sampled. */
  peakWorkerAnon?: number;
  failures: string[];
}

export interface MemoryRun {
  op: 'backup' | 'restore';
  docs: number;
  jsonBytes: number;
  shardDiskBytes: number;
  seconds: number;
  idleRss: number;
  idleAnon: number;
  peakRss: number;
  peakAnon: number;
  peakFile: number;
  hwm: number;
  status: string;
  /** Peak anonymous memory of every run of this measurement, in order (this one is the median's). */
  peakAnonRuns?: number[];
}

export interface ProfileRun {
  name: string;
  process: 'worker' | 'api';
  seconds: number;
  /** CPU seconds per thread name of the worker during the operation. */
  threads: Record<string, number>;
  summary?: ProfileSummary;
  error?: string;
}

export interface DataSummary {
  docs: number;
  jsonBytes: number;
  diskBytes: number;
  files: number;
  generatedSeconds: number;
  reused: boolean;
  indexes: GeneratedIndex[];
  largestShard: { path: string; bytes: number };
}

/** One measured step of the incremental comparison (bench/run.ts incrementalRuns). */
export interface Step {
  key: 'raw-read' | 'tar-zstd-mt' | 'restic-1' | 'restic-2' | 'full' | 'incremental' | 'restore' | 'restore-again';
  label: string;
  seconds: number;
  /** Bytes written (archive, repository growth, backup location growth); absent for reads and the restores. */
  outputBytes?: number;
  /** Highest RssAnon of any worker during a shardvault step. */
  peakWorkerAnon?: number;
}

/** Full backup, a change of 1 % / 0.5 % / 1 %, an incremental backup and its restore, against baselines, in one run. */
export interface IncrementalComparison {
  workers: number;
  compression: string;
  changed: { updated: number; deleted: number; added: number };
  steps: Step[];
  /** The chart written beside the report. */
  chart?: string;
}

/** One kind of backup with nodes on their own hosts (bench/nodes.ts); medians over its runs. */
export interface NodesBackup {
  kind: 'full' | 'incremental';
  workers: number;
  seconds: Stats;
  /** Bytes the backup added to its location. */
  outputBytes: number;
  /** Bytes the nodes sent the workers through the counting proxies (snapshot streams, metadata reads). */
  nodeToWorkerBytes: number;
  /** Bytes the workers sent the nodes (requests). */
  workerToNodeBytes: number;
  /** CPU-seconds by role: worker (all workers), node (all nodes), api, redis, bench (the proxies, polling). */
  cpuByRole: Record<string, number>;
  /** Cores the whole machine kept busy during the backup (every process, other tenants' too). */
  machineBusyCores: number;
  /** Highest VmRSS and RssAnon sampled in any worker and any node. */
  peakRss: { worker: number; workerAnon: number; node: number; nodeAnon: number };
  failures: string[];
}

/** Backups when every node is its own process (`npm run node`) and workers stream shards over HTTP. */
export interface NodesRun {
  nodes: string[];
  /** Bytes of the shard files the nodes hold (what every full backup reads). */
  shardBytes: number;
  /** JSON bytes of the documents (the basis of MB/s). */
  jsonBytes: number;
  /** Copying the data into the nodes' directories and starting the processes. */
  setupSeconds: number;
  compression: string;
  /** The change made through the API before the incremental backup. */
  changed?: ChangeResult & { seconds: number };
  backups: NodesBackup[];
}

export interface BenchResults {
  label: string;
  startedAt: string;
  finishedAt: string;
  totalSeconds: number;
  options: {
    bytes: number;
    reps: number;
    memBytes: number[];
    workers: number[];
    levels: string[];
    concurrency?: number;
    loadRate: number;
    loadAmount: number;
  };
  machine: {
    cpuModel: string;
    cores: number;
    memoryBytes: number;
    kernel: string;
    fs: string;
    loadavg: number[];
    /** Memory written to once and let go before anything was measured (measure.ts warmMemory). */
    warmed?: { bytes: number; seconds: number };
  };
  versions: Record<string, string>;
  data?: DataSummary;
  rows: Row[];
  memory: MemoryRun[];
  load: LoadRun[];
  profiles: ProfileRun[];
  incremental?: IncrementalComparison;
  /** Nodes on their own hosts (bench/nodes.ts). */
  nodes?: NodesRun;
  /** Bulk import and the backup list at scale (bench/request-path.ts). */
  requestPath?: { ingest?: IngestRun; list?: ListRun };
  notes: string[];
  errors: { phase: string; message: string }[];
}
