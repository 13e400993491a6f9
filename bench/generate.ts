/**
 * Benchmark data: documents of realistic shape (keyword, text of varied length, datetime,
 * integer, floating, nested objects, keyword arrays) written into several indexes over the
 * cluster's nodes, through the store itself.
 *
 * Every index is created with `Store.putSchema` (its schema and shard count), and every
 * document goes through `Store.putDocuments` — the same coercion and shard routing as the
 * API — in large batches. Text comes from a seeded pseudo-random Zipf-like vocabulary, so
 * runs are repeatable and compress like prose does (neither random bytes nor one repeated
 * string).
 *
 * As a module: `generate({ dataDir, bytes })`. As a CLI:
 *
 *     node --import tsx bench/generate.ts --data-dir DIR [--size 1GiB | --quick] [--nodes a,b,c]
 *
 * Calling it again on the same data directory appends (ids continue after the existing ones),
 * which the memory benchmark uses to grow one shard between two measurements.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Store } from '../shared/store/store.ts';

/** The default size of a full run, in bytes of documents (JSON). */
export const DEFAULT_BYTES = 1024 ** 3;
/** The size of `--quick`: a smoke run of the whole bench in about a minute. */
export const QUICK_BYTES = 16 * 1024 ** 2;
export const DEFAULT_NODES = ['node-1', 'node-2', 'node-3'];

export type DocShape = 'article' | 'product' | 'event' | 'review';

export interface IndexPlan {
  name: string;
  shape: DocShape;
  shards: number;
  /** Fraction of the total bytes this index receives. */
  share: number;
}

/** Four indexes of different shapes and shard counts: 15 shards over the nodes. */
export const DEFAULT_PLAN: readonly IndexPlan[] = [
  { name: 'Article', shape: 'article', shards: 6, share: 0.5 },
  { name: 'Product', shape: 'product', shards: 3, share: 0.25 },
  { name: 'Event', shape: 'event', shards: 4, share: 0.15 },
  { name: 'Review', shape: 'review', shards: 2, share: 0.1 },
];

export interface GenerateOptions {
  dataDir: string;
  /** Bytes of documents to add, measured as their JSON encoding. */
  bytes: number;
  nodes?: string[];
  plan?: readonly IndexPlan[];
  seed?: number;
  /** Documents per putDocuments call. */
  batch?: number;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface GeneratedIndex {
  name: string;
  shards: number;
  /** Documents in the index after this call (including earlier ones). */
  docs: number;
  /** JSON bytes of the documents this call added. */
  jsonBytes: number;
}

export interface GenerateResult {
  dataDir: string;
  nodes: string[];
  indexes: GeneratedIndex[];
  /** Documents and JSON bytes this call added. */
  docs: number;
  jsonBytes: number;
  seconds: number;
}

// ---- deterministic randomness ------------------------------------------------------------

/** mulberry32: small, fast, seeded; good enough for shaping data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SYLLABLES = [
  'ka', 'lo', 'mi', 'ne', 'ra', 'to', 'shi', 'ven', 'dor', 'al', 'est', 'ion', 'ur', 'pa', 'que', 'tra',
  'bel', 'cor', 'fin', 'gal', 'hum', 'is', 'jor', 'lem', 'mar', 'nor', 'ox', 'pri', 'sol', 'tur', 'vi', 'zen',
];

/** A vocabulary and a table that draws its words with Zipf-like frequencies. */
class Words {
  readonly words: string[];
  private readonly table: Uint16Array;

  constructor(random: () => number, size = 6000) {
    const seen = new Set<string>();
    while (seen.size < size) {
      const n = 1 + Math.floor(random() * 4);
      let w = '';
      for (let i = 0; i < n; i++) w += SYLLABLES[Math.floor(random() * SYLLABLES.length)];
      seen.add(w);
    }
    this.words = [...seen];
    // Frequencies ∝ 1/(rank+1): a table of 2^16 slots filled in proportion.
    const weights = this.words.map((_, r) => 1 / (r + 1));
    const total = weights.reduce((a, b) => a + b, 0);
    this.table = new Uint16Array(65536);
    let slot = 0;
    for (let r = 0; r < this.words.length && slot < this.table.length; r++) {
      const count = Math.max(1, Math.round((weights[r]! / total) * this.table.length));
      for (let i = 0; i < count && slot < this.table.length; i++) this.table[slot++] = r;
    }
    while (slot < this.table.length) this.table[slot++] = Math.floor(random() * this.words.length);
  }

  pick(random: () => number): string {
    return this.words[this.table[Math.floor(random() * 65536)]!]!;
  }

  /** Prose of about `chars` characters: sentences of 6-24 words. */
  text(random: () => number, chars: number): string {
    const parts: string[] = [];
    let length = 0;
    while (length < chars) {
      const n = 6 + Math.floor(random() * 19);
      let s = this.pick(random);
      s = s[0]!.toUpperCase() + s.slice(1);
      for (let i = 1; i < n; i++) s += (random() < 0.06 ? ', ' : ' ') + this.pick(random);
      s += random() < 0.9 ? '.' : '?';
      parts.push(s);
      length += s.length + 1;
    }
    return parts.join(' ');
  }
}

/** Log-normal-ish lengths: most documents short, a long tail of big ones, within [min, max]. */
function length(random: () => number, median: number, min: number, max: number): number {
  const g = (random() + random() + random() + random() - 2) * 1.7; // ≈ N(0, 1)
  return Math.max(min, Math.min(max, Math.round(median * Math.exp(0.8 * g))));
}

const COUNTRIES = ['DE', 'FR', 'ES', 'IT', 'NL', 'SE', 'PL', 'US', 'CA', 'BR', 'JP', 'IN', 'AU', 'ZA'];
const CATEGORIES = ['news', 'sport', 'science', 'culture', 'business', 'travel', 'health', 'tech'];
const EVENT_TYPES = ['login', 'logout', 'purchase', 'view', 'search', 'error', 'signup', 'refund'];
const BASE_TIME = Date.UTC(2018, 0, 1);
const SPAN_MS = 7 * 365 * 24 * 3600 * 1000;

function datetime(random: () => number): string {
  return new Date(BASE_TIME + Math.floor(random() * SPAN_MS)).toISOString().slice(0, 19);
}

function hex(random: () => number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += Math.floor(random() * 16).toString(16);
  return s;
}

function person(words: Words, random: () => number): Record<string, unknown> {
  const first = words.pick(random);
  const last = words.pick(random);
  return {
    name: `${first[0]!.toUpperCase()}${first.slice(1)} ${last[0]!.toUpperCase()}${last.slice(1)}`,
    email: `${first}.${last}@${words.pick(random)}.example`,
    address: {
      city: words.pick(random),
      country: COUNTRIES[Math.floor(random() * COUNTRIES.length)]!,
      zip: String(10000 + Math.floor(random() * 89999)),
    },
  };
}

const SCHEMAS: Record<DocShape, Record<string, unknown>> = {
  article: {
    _id: { _type: 'keyword' },
    title: { _type: 'text' },
    body: { _type: 'text' },
    category: { _type: 'keyword' },
    tags: { _type: 'array/keyword' },
    published: { _type: 'datetime' },
    views: { _type: 'integer' },
    author: { _type: 'object', name: { _type: 'text' }, email: { _type: 'keyword' }, address: { _type: 'object', city: { _type: 'keyword' }, country: { _type: 'keyword' }, zip: { _type: 'keyword' } } },
  },
  product: {
    _id: { _type: 'keyword' },
    sku: { _type: 'keyword' },
    name: { _type: 'text' },
    description: { _type: 'text' },
    price: { _type: 'floating' },
    stock: { _type: 'integer' },
    updated: { _type: 'datetime' },
    dimensions: { _type: 'object', width: { _type: 'integer' }, height: { _type: 'integer' }, depth: { _type: 'integer' }, unit: { _type: 'keyword' } },
  },
  event: {
    _id: { _type: 'keyword' },
    type: { _type: 'keyword' },
    message: { _type: 'text' },
    at: { _type: 'datetime' },
    severity: { _type: 'integer' },
    source: { _type: 'object', host: { _type: 'keyword' }, service: { _type: 'keyword' }, region: { _type: 'keyword' }, pid: { _type: 'integer' } },
  },
  review: {
    _id: { _type: 'keyword' },
    product: { _type: 'keyword' },
    rating: { _type: 'integer' },
    title: { _type: 'text' },
    body: { _type: 'text' },
    created: { _type: 'datetime' },
    reviewer: { _type: 'object', name: { _type: 'text' }, email: { _type: 'keyword' }, address: { _type: 'object', city: { _type: 'keyword' }, country: { _type: 'keyword' }, zip: { _type: 'keyword' } } },
  },
};

function makeDoc(shape: DocShape, id: string, words: Words, random: () => number): Record<string, unknown> {
  switch (shape) {
    case 'article':
      return {
        _id: id,
        title: words.text(random, length(random, 60, 20, 140)).slice(0, 140),
        body: words.text(random, length(random, 4000, 400, 40000)),
        category: CATEGORIES[Math.floor(random() * CATEGORIES.length)]!,
        tags: Array.from({ length: 1 + Math.floor(random() * 5) }, () => words.pick(random)),
        published: datetime(random),
        views: Math.floor(random() * random() * 1_000_000),
        author: person(words, random),
      };
    case 'product':
      return {
        _id: id,
        sku: `SKU-${hex(random, 10).toUpperCase()}`,
        name: words.text(random, length(random, 30, 10, 80)).slice(0, 80),
        description: words.text(random, length(random, 700, 100, 6000)),
        price: Math.round(random() * 100_000) / 100,
        stock: Math.floor(random() * 5000),
        updated: datetime(random),
        dimensions: {
          width: 1 + Math.floor(random() * 200),
          height: 1 + Math.floor(random() * 200),
          depth: 1 + Math.floor(random() * 200),
          unit: random() < 0.8 ? 'cm' : 'in',
        },
      };
    case 'event':
      return {
        _id: id,
        type: EVENT_TYPES[Math.floor(random() * EVENT_TYPES.length)]!,
        message: words.text(random, length(random, 120, 30, 600)),
        at: datetime(random),
        severity: Math.floor(random() * 6),
        source: {
          host: `host-${Math.floor(random() * 400)}`,
          service: words.pick(random),
          region: `${COUNTRIES[Math.floor(random() * COUNTRIES.length)]!.toLowerCase()}-${1 + Math.floor(random() * 3)}`,
          pid: 100 + Math.floor(random() * 60000),
        },
      };
    case 'review':
      return {
        _id: id,
        product: `SKU-${hex(random, 10).toUpperCase()}`,
        rating: 1 + Math.floor(random() * 5),
        title: words.text(random, length(random, 40, 10, 100)).slice(0, 100),
        body: words.text(random, length(random, 500, 60, 4000)),
        created: datetime(random),
        reviewer: person(words, random),
      };
  }
}

/** Bytes of every regular file under `dir` (what tar and cat read). */
export function directoryBytes(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        files++;
        bytes += fs.statSync(p).size;
      }
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return { files, bytes };
}

/** Add `bytes` of documents to the data directory, split over the plan's indexes. */
export async function generate(options: GenerateOptions): Promise<GenerateResult> {
  const nodes = options.nodes ?? DEFAULT_NODES;
  const plan = options.plan ?? DEFAULT_PLAN;
  const batch = options.batch ?? 2000;
  const started = performance.now();
  const store = new Store({ dataDir: options.dataDir, nodes });
  const shareTotal = plan.reduce((a, p) => a + p.share, 0);
  const result: GeneratedIndex[] = [];
  let doneBytes = 0;
  let doneDocs = 0;
  try {
    for (const [i, p] of plan.entries()) {
      const existing = store.getIndex(p.name);
      if (!existing) await store.putSchema(p.name, SCHEMAS[p.shape], { shards: p.shards });
      const before = existing ? store.info(p.name).docs : 0;
      // A different stream per index and per append, so appending never repeats documents.
      const random = rng((options.seed ?? 7) * 1000 + i * 101 + before);
      const words = new Words(rng((options.seed ?? 7) + i));
      const target = (options.bytes * p.share) / shareTotal;
      let bytes = 0;
      let seq = before;
      while (bytes < target) {
        const docs: Record<string, unknown>[] = [];
        let batchBytes = 0;
        while (docs.length < batch && bytes + batchBytes < target) {
          const doc = makeDoc(p.shape, `${p.shape[0]}-${String(seq++).padStart(9, '0')}`, words, random);
          batchBytes += Buffer.byteLength(JSON.stringify(doc));
          docs.push(doc);
        }
        const results = await store.putDocuments(p.name, docs, { create: false });
        const failed = results.find((r) => !r.ok);
        if (failed && !failed.ok) throw failed.error;
        bytes += batchBytes;
        doneBytes += batchBytes;
        doneDocs += docs.length;
        options.onProgress?.(doneBytes, options.bytes);
      }
      result.push({ name: p.name, shards: p.shards, docs: seq, jsonBytes: bytes });
    }
  } finally {
    await store.close();
  }
  return {
    dataDir: path.resolve(options.dataDir),
    nodes,
    indexes: result,
    docs: doneDocs,
    jsonBytes: doneBytes,
    seconds: (performance.now() - started) / 1000,
  };
}

export interface ChangeResult {
  updated: number;
  deleted: number;
  added: number;
}

/** Where changeDocuments writes: the Store directly, or an API (bench/nodes.ts). */
export interface DocumentWriter {
  put(index: string, docs: Record<string, unknown>[]): Promise<void>;
  delete(index: string, ids: string[]): Promise<void>;
}

/**
 * What an incremental backup then has to store: in every index of the plan, 1 % of the
 * documents get new content (same id), 0.5 % are deleted and 1 % are added, in batches as an
 * application would write them, through `writer`.
 */
export async function changeDocuments(writer: DocumentWriter, indexes: readonly GeneratedIndex[], options: { plan?: readonly IndexPlan[]; seed?: number } = {}): Promise<ChangeResult> {
  const plan = options.plan ?? DEFAULT_PLAN;
  const random = rng(options.seed ?? 1234);
  const words = new Words(rng((options.seed ?? 1234) + 1));
  const out: ChangeResult = { updated: 0, deleted: 0, added: 0 };
  for (const index of indexes) {
    const p = plan.find((x) => x.name === index.name);
    if (!p) continue;
    const id = (seq: number) => `${p.shape[0]}-${String(seq).padStart(9, '0')}`;
    const write = async (docs: Record<string, unknown>[]) => {
      for (let i = 0; i < docs.length; i += 1000) await writer.put(index.name, docs.slice(i, i + 1000));
    };
    const updated: Record<string, unknown>[] = [];
    for (let seq = 0; seq < index.docs; seq += 100) updated.push(makeDoc(p.shape, id(seq), words, random));
    await write(updated);
    out.updated += updated.length;
    const deleted: string[] = [];
    for (let seq = 50; seq < index.docs; seq += 200) deleted.push(id(seq));
    await writer.delete(index.name, deleted);
    out.deleted += deleted.length;
    const added = Array.from({ length: Math.ceil(index.docs / 100) }, (_, i) => makeDoc(p.shape, id(index.docs + i), words, random));
    await write(added);
    out.added += added.length;
  }
  return out;
}

/** changeDocuments straight into a data directory; runs beside a cluster that has it open. */
export async function changeData(dataDir: string, indexes: readonly GeneratedIndex[], options: { nodes?: string[]; plan?: readonly IndexPlan[]; seed?: number } = {}): Promise<ChangeResult> {
  const store = new Store({ dataDir, nodes: options.nodes ?? DEFAULT_NODES });
  try {
    return await changeDocuments(
      {
        put: async (index, docs) => {
          const failed = (await store.putDocuments(index, docs, { create: false })).find((r) => !r.ok);
          if (failed && !failed.ok) throw failed.error;
        },
        delete: async (index, ids) => {
          for (const id of ids) await store.deleteDocument(index, id);
        },
      },
      indexes,
      options,
    );
  } finally {
    await store.close();
  }
}

/** "1GiB", "512MiB", "300MB", "123456" → bytes. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$/i.exec(text.trim());
  if (!m) throw new Error(`cannot read size ${JSON.stringify(text)}: use e.g. 1GiB, 256MiB, 300MB`);
  const unit = (m[2] ?? 'b').toLowerCase();
  const mult: Record<string, number> = {
    b: 1, k: 1024, kib: 1024, kb: 1000, m: 1024 ** 2, mib: 1024 ** 2, mb: 1e6, g: 1024 ** 3, gib: 1024 ** 3, gb: 1e9,
  };
  return Math.round(Number(m[1]) * mult[unit]!);
}

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

async function cli(argv: string[]): Promise<void> {
  const arg = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const dataDir = arg('--data-dir') ?? process.env.DATA_DIR;
  if (!dataDir) {
    process.stderr.write('usage: node --import tsx bench/generate.ts --data-dir DIR [--size 1GiB | --quick] [--nodes a,b,c] [--seed N]\n');
    process.exit(2);
  }
  const bytes = argv.includes('--quick') ? QUICK_BYTES : parseSize(arg('--size') ?? String(DEFAULT_BYTES));
  const nodes = (arg('--nodes') ?? process.env.CLUSTER_NODES)?.split(',').map((s) => s.trim()).filter(Boolean);
  let lastReport = 0;
  const r = await generate({
    dataDir,
    bytes,
    nodes,
    seed: arg('--seed') ? Number(arg('--seed')) : undefined,
    onProgress: (done, total) => {
      if (performance.now() - lastReport > 2000) {
        lastReport = performance.now();
        process.stderr.write(`  ${formatBytes(done)} / ${formatBytes(total)}\n`);
      }
    },
  });
  for (const ix of r.indexes) {
    process.stdout.write(`${ix.name}: ${ix.docs} docs in ${ix.shards} shards, +${formatBytes(ix.jsonBytes)} of JSON\n`);
  }
  const disk = directoryBytes(r.dataDir);
  process.stdout.write(
    `added ${r.docs} documents, ${formatBytes(r.jsonBytes)} of JSON, in ${r.seconds.toFixed(1)} s ` +
      `(${(r.jsonBytes / 1e6 / r.seconds).toFixed(1)} MB/s); ${r.dataDir} holds ${formatBytes(disk.bytes)} in ${disk.files} files\n`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await cli(process.argv.slice(2));
}
