/**
 * A one-line progress bar on stderr, drawn only when stderr is a terminal (never in pipes,
 * logs or tests), redrawn at most ten times a second and erased when done.
 */
export interface Progress {
  /** Set the amount done so far (and the total, once known). */
  update(done: number, total?: number): void;
  /** Change the label (e.g. from "verifying" to "restoring"). */
  label(text: string): void;
  /** Erase the bar. */
  done(): void;
}

export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): boolean;
}

const NOOP: Progress = { update() {}, label() {}, done() {} };

function human(n: number, unit: 'bytes' | 'docs'): string {
  if (unit === 'docs') return n.toLocaleString('en-US');
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

export function createProgress(
  stream: ProgressStream,
  options: { label: string; unit: 'bytes' | 'docs'; total?: number; enabled?: boolean },
): Progress {
  if (!stream.isTTY || options.enabled === false) return NOOP;
  const started = Date.now();
  let label = options.label;
  let total = options.total;
  let current = 0;
  let last = 0;
  let drawn = false;

  const draw = (): void => {
    const width = Math.max(40, Math.min(stream.columns ?? 80, 120));
    const elapsed = `${((Date.now() - started) / 1000).toFixed(1)}s`;
    let line: string;
    if (total && total > 0) {
      const ratio = Math.min(1, current / total);
      const text = `${Math.floor(ratio * 100)}% ${human(current, options.unit)}/${human(total, options.unit)} ${elapsed}`;
      const barWidth = Math.max(10, width - label.length - text.length - 6);
      const filled = Math.round(ratio * barWidth);
      line = `${label} [${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ${text}`;
    } else {
      line = `${label} ${human(current, options.unit)} ${elapsed}`;
    }
    stream.write(`\r${line.slice(0, width - 1)}\x1b[K`);
    drawn = true;
  };

  return {
    update(done, newTotal) {
      current = done;
      if (newTotal !== undefined) total = newTotal;
      const now = Date.now();
      if (now - last >= 100) {
        last = now;
        draw();
      }
    },
    label(text) {
      label = text;
      last = 0;
    },
    done() {
      if (drawn) stream.write('\r\x1b[K');
    },
  };
}
