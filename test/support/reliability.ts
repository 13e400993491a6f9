/**
 * What the reliability and chaos tests share: a seeded PRNG (so a failing run can be replayed
 * with the seed it prints), the short/long switch, and where each test leaves the figures of
 * its last run (operations, failures injected, outcomes, documents compared) for RELIABILITY.md.
 *
 * - `SHARDVAULT_CHAOS=long` (set by `npm run test:chaos`) runs the long versions;
 *   anything else, the short ones that `npm test` runs.
 * - `SHARDVAULT_SEED=<n>` replays a run; by default every test picks a fresh seed and prints it.
 * - Figures go to `$SHARDVAULT_RELIABILITY_DIR` (default `<tmpdir>/shardvault-reliability/`),
 *   one `<test>.json` per test, and one summary line goes to stdout.
 *   `node --import tsx scripts/reliability-figures.ts` prints them as a table.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Store } from '../../shared/store/store.ts';
import { makeDoc } from './backups.ts';

export type ChaosMode = 'short' | 'long';

export const CHAOS_MODE: ChaosMode = process.env.SHARDVAULT_CHAOS === 'long' ? 'long' : 'short';

/** `short` in `npm test`, `long` under `npm run test:chaos`. */
export function byMode<T>(values: Record<ChaosMode, T>): T {
  return values[CHAOS_MODE];
}

export const FIGURES_DIR = process.env.SHARDVAULT_RELIABILITY_DIR ?? path.join(os.tmpdir(), 'shardvault-reliability');

/** The seed of this run: SHARDVAULT_SEED when given, else a fresh one. */
export function seedFor(test: string): number {
  const given = Number(process.env.SHARDVAULT_SEED);
  const seed = Number.isInteger(given) && given > 0 ? given : Math.floor(Math.random() * 2 ** 31) + 1;
  console.log(`[reliability] ${test}: seed ${seed} (replay with SHARDVAULT_SEED=${seed})`);
  return seed;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same sequence. */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Integer in [min, max]. */
  int(min: number, max: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
  bytes(n: number): Buffer;
}

export function createRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  return {
    next,
    int,
    chance: (p) => next() < p,
    pick: (items) => items[int(0, items.length - 1)]!,
    bytes: (n) => Buffer.from(Array.from({ length: n }, () => int(0, 255))),
  };
}

/** Record the figures of a test's run (merged into `<test>.json`) and print one summary line. */
export function recordFigures(test: string, figures: Record<string, unknown>): void {
  fs.mkdirSync(FIGURES_DIR, { recursive: true });
  const file = path.join(FIGURES_DIR, `${test}.json`);
  let previous: Record<string, unknown> = {};
  try {
    const old = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    // Merge only into a record of the same run mode written by this process's run (same pid).
    if (old.pid === process.pid) previous = old;
  } catch {
    // first record of this run
  }
  const record = { ...previous, test, mode: CHAOS_MODE, pid: process.pid, recordedAt: new Date().toISOString(), ...figures };
  fs.writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
  console.log(`[reliability] ${test} (${CHAOS_MODE}): ${JSON.stringify(figures)}`);
}

/** Resolves once `check` holds, polling every `everyMs`; fails after timeoutMs with `what`. */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** An index to create for a test: `docs` documents (makeDoc plus `words` words of text) over `shards` shards. */
export interface IndexSpec {
  name: string;
  shards: number;
  docs: number;
  /** Words of filler text per document (size, so jobs take a while). Default 0. */
  words?: number;
}

const WORDS = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua'.split(' ');

/** Create and fill indexes directly in a data directory (before the cluster starts), deterministically. */
export async function populate(dataDir: string, nodes: string[], specs: IndexSpec[]): Promise<void> {
  const store = new Store({ dataDir, nodes });
  try {
    for (const spec of specs) {
      await store.createIndex(spec.name, { shards: spec.shards });
      const rng = createRng(spec.docs * 31 + spec.name.length);
      for (let i = 0; i < spec.docs; i += 1000) {
        const docs = Array.from({ length: Math.min(1000, spec.docs - i) }, (_, j) =>
          makeDoc(spec.name, i + j, spec.words ? { text: Array.from({ length: spec.words }, () => rng.pick(WORDS)).join(' ') } : {}),
        );
        const results = await store.putDocuments(spec.name, docs);
        const failed = results.find((r) => !r.ok);
        if (failed) throw new Error(`populating ${spec.name}: ${JSON.stringify(failed)}`);
      }
    }
  } finally {
    await store.close();
  }
}
