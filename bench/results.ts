/**
 * The shapes of a benchmark run's results (`results.json`): what bench/run.ts measures and
 * bench/report.ts turns into BENCHMARKS.md. Their own module, so neither imports the other.
 */
import type { GeneratedIndex } from './generate.ts';
import type { LoadRun } from './load.ts';
import type { Stats } from './measure.ts';
import type { ProfileSummary } from './profile.ts';

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
  machine: { cpuModel: string; cores: number; memoryBytes: number; kernel: string; fs: string; loadavg: number[] };
  versions: Record<string, string>;
  data?: DataSummary;
  rows: Row[];
  memory: MemoryRun[];
  load: LoadRun[];
  profiles: ProfileRun[];
  notes: string[];
  errors: { phase: string; message: string }[];
}
