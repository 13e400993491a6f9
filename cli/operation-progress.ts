/**
 * What `shardvault backup … --wait` shows on stderr while it waits: on a terminal, a
 * progress bar redrawn in place (status, shards, documents, bytes, rate, time); otherwise
 * (pipes, logs, CI) one plain line whenever the status changes.
 */
import type { OperationStatus } from '../shared/backups/contract.ts';
import type { OperationKind } from '../shared/jobs/operation.ts';

export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): boolean;
}

/** 1234567 → "1.2 MB" (decimal units, as disks and networks count). */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

const count = (n: number) => n.toLocaleString('en-US');

/** `3/6 shards, 1,200 documents, 1.2 MB` */
export function describeProgress(p: OperationStatus['progress']): string {
  if (!p) return '';
  return `${p.shardsDone}/${p.shardsTotal} shards, ${count(p.docs)} documents, ${formatBytes(p.bytes)}`;
}

export interface BarInput {
  kind: OperationKind;
  id: string;
  status: OperationStatus;
  /** Bytes per second, when known. */
  rate?: number;
  elapsedMs: number;
  width: number;
}

/** One line: `backup b1 TRANSFERRING [#####.....] 3/6 shards  1,200 docs  1.2 MB  400.0 kB/s  2.1 s` */
export function progressBar({ kind, id, status, rate, elapsedMs, width }: BarInput): string {
  const p = status.progress ?? { shardsDone: 0, shardsTotal: 0, docs: 0, bytes: 0 };
  const ratio = p.shardsTotal > 0 ? Math.min(1, p.shardsDone / p.shardsTotal) : 0;
  const head = `${kind} ${id} ${status.status}`;
  const tail =
    `${p.shardsDone}/${p.shardsTotal} shards  ${count(p.docs)} docs  ${formatBytes(p.bytes)}` +
    `${rate !== undefined ? `  ${formatBytes(rate)}/s` : ''}  ${formatDuration(elapsedMs)}`;
  const barWidth = Math.max(10, Math.min(40, width - head.length - tail.length - 6));
  const filled = Math.round(ratio * barWidth);
  return `${head} [${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ${tail}`.slice(0, Math.max(20, width - 1));
}

export interface OperationProgress {
  update(status: OperationStatus): void;
  /** Erase the bar (terminal) before the final line is printed. */
  done(): void;
}

export function createOperationProgress(stream: ProgressStream, kind: OperationKind, id: string, now: () => number = Date.now): OperationProgress {
  const started = now();
  let first: { t: number; bytes: number } | undefined;
  let lastStatus: string | undefined;
  let drawn = false;
  return {
    update(status) {
      const t = now();
      const bytes = status.progress?.bytes ?? 0;
      first ??= { t, bytes };
      const rate = t - first.t >= 1000 ? ((bytes - first.bytes) * 1000) / (t - first.t) : undefined;
      if (stream.isTTY) {
        const width = Math.max(40, Math.min(stream.columns ?? 100, 160));
        stream.write(`\r${progressBar({ kind, id, status, rate, elapsedMs: t - started, width })}\x1b[K`);
        drawn = true;
      } else if (status.status !== lastStatus) {
        stream.write(`${kind} ${id}: ${status.status}${status.progress ? ` (${describeProgress(status.progress)})` : ''}\n`);
      }
      lastStatus = status.status;
    },
    done() {
      if (drawn) stream.write('\r\x1b[K');
      drawn = false;
    },
  };
}
