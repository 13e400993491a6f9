/**
 * How LMDB's copy-on-write pages move between two physical snapshots of a shard, to choose
 * how the snapshot engine cuts shard bytes into chunks (issue 13: "choose by measuring").
 *
 *   node --import tsx bench/chunking.ts [--docs 60000] [--dir /tmp/x]
 *
 * Builds one shard (an LMDB environment opened as shared/store opens shards) of prose-like
 * documents, takes a physical copy (lmdb's backup(), i.e. mdb_env_copy2, under one read
 * transaction), then updates 1 % of the documents, deletes 0.5 % and adds 1 % in batches of
 * 1000, takes a second copy, and reports for fixed page-aligned chunk sizes and for a
 * content-defined chunker (gear hash) the share of the second copy's bytes that lie in chunks
 * the first copy does not have — what an incremental backup would have to store — for a
 * plain copy and a compacting one. Results go to stdout as a Markdown table (docs/chunking.md
 * keeps the figures of a run).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open } from 'lmdb';
import { rng } from './generate.ts';

const argv = process.argv.slice(2);
const arg = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const DOCS = Number(arg('--docs') ?? 60_000);
const DIR = path.resolve(arg('--dir') ?? fs.mkdtempSync(path.join(os.tmpdir(), 'shardvault-chunking-')));

const random = rng(42);
const VOCAB = Array.from({ length: 5000 }, (_, i) => `w${(i * 2654435761) % 100_000}`.slice(0, 3 + (i % 9)));
const prose = (chars: number) => {
  const out: string[] = [];
  let n = 0;
  while (n < chars) {
    const w = VOCAB[Math.floor(random() ** 2 * VOCAB.length)]!;
    out.push(w);
    n += w.length + 1;
  }
  return out.join(' ');
};
const doc = (i: number, version: number) => ({ _id: `doc-${String(i).padStart(8, '0')}`, n: i, version, title: prose(60), body: prose(500 + Math.floor(random() * 3000)) });

async function snapshot(db: ReturnType<typeof open>, name: string, compact: boolean): Promise<string> {
  const file = path.join(DIR, name);
  fs.rmSync(file, { force: true });
  await db.backup(file, compact);
  return file;
}

/** Chunk boundaries of a file: fixed-size, or content-defined (gear hash, mask for the average). */
function* chunks(buf: Buffer, mode: { fixed: number } | { averageBits: number }): Generator<Buffer> {
  if ('fixed' in mode) {
    for (let i = 0; i < buf.length; i += mode.fixed) yield buf.subarray(i, i + mode.fixed);
    return;
  }
  const avg = 1 << mode.averageBits;
  const min = avg / 4;
  const max = avg * 4;
  const mask = avg - 1;
  let start = 0;
  let h = 0;
  for (let i = 0; i < buf.length; i++) {
    h = ((h << 1) + GEAR[buf[i]!]!) >>> 0;
    const len = i - start + 1;
    if ((len >= min && (h & mask) === 0) || len >= max) {
      yield buf.subarray(start, i + 1);
      start = i + 1;
      h = 0;
    }
  }
  if (start < buf.length) yield buf.subarray(start);
}
const GEAR = Array.from({ length: 256 }, (_, i) => createHash('sha256').update(String(i)).digest().readUInt32LE(0));

function newBytes(first: Buffer, second: Buffer, mode: { fixed: number } | { averageBits: number }): { share: number; chunks: number } {
  const seen = new Set<string>();
  for (const c of chunks(first, mode)) seen.add(createHash('sha256').update(c).digest('base64'));
  let fresh = 0;
  let count = 0;
  for (const c of chunks(second, mode)) {
    count++;
    if (!seen.has(createHash('sha256').update(c).digest('base64'))) fresh += c.length;
  }
  return { share: fresh / second.length, chunks: count };
}

const db = open({ path: path.join(DIR, 'shard', 'data.mdb') });
for (let i = 0; i < DOCS; i += 1000) {
  await db.transaction(() => {
    for (let j = i; j < Math.min(DOCS, i + 1000); j++) db.put(doc(j, 1)._id, doc(j, 1));
  });
}
const before = { plain: await snapshot(db, 'before.mdb', false), compact: await snapshot(db, 'before-compact.mdb', true) };

const updates = new Set<number>();
while (updates.size < DOCS * 0.01) updates.add(Math.floor(random() * DOCS));
const deletes = new Set<number>();
while (deletes.size < DOCS * 0.005) {
  const i = Math.floor(random() * DOCS);
  if (!updates.has(i)) deletes.add(i);
}
const batches = (ids: number[]) => Array.from({ length: Math.ceil(ids.length / 1000) }, (_, b) => ids.slice(b * 1000, b * 1000 + 1000));
for (const batch of batches([...updates])) await db.transaction(() => batch.forEach((i) => db.put(doc(i, 2)._id, doc(i, 2))));
for (const batch of batches([...deletes])) await db.transaction(() => batch.forEach((i) => db.remove(doc(i, 1)._id)));
for (const batch of batches(Array.from({ length: DOCS * 0.01 }, (_, k) => DOCS + k))) await db.transaction(() => batch.forEach((i) => db.put(doc(i, 1)._id, doc(i, 1))));
const after = { plain: await snapshot(db, 'after.mdb', false), compact: await snapshot(db, 'after-compact.mdb', true) };
await db.close();

const MODES: [string, { fixed: number } | { averageBits: number }][] = [
  ['fixed 4 KiB (one LMDB page)', { fixed: 4096 }],
  ['fixed 16 KiB', { fixed: 16_384 }],
  ['fixed 64 KiB', { fixed: 65_536 }],
  ['fixed 256 KiB', { fixed: 262_144 }],
  ['fixed 1 MiB', { fixed: 1_048_576 }],
  ['content-defined, average 16 KiB', { averageBits: 14 }],
  ['content-defined, average 64 KiB', { averageBits: 16 }],
];
const mib = (f: string) => (fs.statSync(f).size / 2 ** 20).toFixed(1);
console.log(`${DOCS} documents; copies: plain ${mib(before.plain)} → ${mib(after.plain)} MiB, compacting ${mib(before.compact)} → ${mib(after.compact)} MiB`);
console.log('after 1 % updated, 0.5 % deleted, 1 % added (batches of 1000):\n');
console.log('| chunking | new bytes, plain copy | chunks | new bytes, compacting copy |');
console.log('|---|---|---|---|');
const [bp, ap, bc, ac] = [before.plain, after.plain, before.compact, after.compact].map((f) => fs.readFileSync(f));
for (const [label, mode] of MODES) {
  const plain = newBytes(bp!, ap!, mode);
  const compact = newBytes(bc!, ac!, mode);
  console.log(`| ${label} | ${(plain.share * 100).toFixed(1)} % | ${plain.chunks} | ${(compact.share * 100).toFixed(1)} % |`);
}
if (!arg('--dir')) fs.rmSync(DIR, { recursive: true, force: true });
