/**
 * The snapshot engine's section of BENCHMARKS.md (issue 13) and its chart: the steps of
 * bench/run.ts incrementalRuns as a table, each target of the issue as a ratio measured in the
 * same run with whether it is met, and an SVG (time and stored bytes per method) written
 * beside the report.
 */
import fs from 'node:fs';
import path from 'node:path';
import { formatBytes } from './generate.ts';
import type { IncrementalComparison, Step } from './results.ts';

const fmt = (n: number | undefined, digits = 2) => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(digits));

interface Target {
  target: string;
  /** The measured ratio, or why it could not be measured. */
  ratio: number | string;
  limit: number;
  /** Why this design misses it, when it does (the costs measured with `--cpu-prof` and by step). */
  why?: string;
}

const WHY_FULL =
  '**A full backup compresses every byte at zstd 3 and names every page, and on two cores the compressor alone takes about as long as `tar | zstd -1 -T0` does in all.** Measured by hand on this data (1.35 GiB of shard files, one process writing two shards at a time, DefaultCompression, 2026-12-05): a full pass takes 10.5–11 CPU-seconds in ~6 s. Sampled with `perf record -e cpu-clock` (call stacks through the JIT), 42 % of that CPU is zstd\'s compressor, 9 % SHA-256 (every 4 KiB page is named: the chunk size that keeps an incremental backup small, docs/chunking.md), 15 % the kernel (reading, writing packs, and this virtual machine\'s cost of page faults and thread wake-ups), and the rest V8: the JavaScript thread\'s chunk table lookups, messages to the threads, and garbage collection. zstd at level 3 on its own — these files compressed 1 MiB at a time through the same binding, one after another — takes 5.9 CPU-seconds (level 1: 5.1; the zstd command itself: 5.7 user-seconds at -3, 4.4 at -1): at least 2.95 s on two cores, more than `tar | zstd -1 -T0` took here in all, and restic\'s first backup, which also compresses at zstd\'s default level and hashes every byte, spent 9.85 CPU-seconds. So 1.0 × `tar | zstd -1 -T0` is out of reach at DefaultCompression on this machine, and 0.7 × restic would need the rest of the work to cost nothing. (An earlier version of this text said the compressor was a small part, from a pass with NoCompression taking nearly as much CPU: that pass writes four times the bytes instead, and the kernel\'s copying of them took the compressor\'s place.) What is not compression or hashing — ~3 CPU-seconds — is what this version keeps reducing: a span of new pages is now compressed by the thread that read and named it, so its bytes never travel to the JavaScript thread and back (about one CPU-second less per pass). The snapshot itself is nearly free (read in place from the shard\'s file under one read transaction). Sampled again on 2026-12-07 (`perf record -a -g`, one fresh worker running the whole full backup, its threads told apart by their stacks), a pass took 14–16 CPU-seconds on a slower day of this machine: zstd\'s compressor 6.3; the binding\'s own handling of each blob 1.8 more — `@mongodb-js/zstd` 1.2.x streams every blob through a new compression context into a new, growing vector, so each call zero-fills tables, copies the blob in and the frame out, and faults in fresh memory for all of it (no package that installs from the registry with prebuilt binaries offers a reused context or a caller\'s buffer: `@toondepauw/node-zstd` does the same, `zstd-napi` downloads or builds its binary at install); the blob pool threads\' reading and naming 2.6 (SHA-256 1.1 of it); the JavaScript thread 3.0 (garbage collection 1.1 of it, 0.4 of that the collections the blob pool asks for to bound the worker\'s memory); and V8 compiling the worker\'s code on its helper threads 1.4 — a worker\'s first backup, as the bench\'s full backup is, pays for that once. A pass with NoCompression took 9.8 CPU-seconds.';

function targets(c: IncrementalComparison): Target[] {
  const s = (key: Step['key']) => c.steps.find((x) => x.key === key);
  const ratio = (a: number | undefined, b: number | undefined, what: string): number | string =>
    a === undefined || b === undefined || b === 0 ? `not measured (${what})` : a / b;
  const full = s('full');
  const inc = s('incremental');
  return [
    { target: 'full backup time ≤ 1.0 × `tar | zstd -1 -T0`', ratio: ratio(full?.seconds, s('tar-zstd-mt')?.seconds, 'tar | zstd or the full backup missing'), limit: 1.0, why: WHY_FULL },
    { target: "full backup time ≤ 0.7 × restic's first backup", ratio: ratio(full?.seconds, s('restic-1')?.seconds, 'restic or the full backup missing'), limit: 0.7, why: WHY_FULL },
    {
      target: "restore time ≤ 0.6 × the full backup's",
      ratio: ratio(s('restore')?.seconds, full?.seconds, 'restore or full backup missing'),
      limit: 0.6,
      why: "**A restore checks every chunk and writes every byte, and the first one in fresh worker processes pays for growing their memory.** It also writes four times the bytes a backup writes (every shard whole, against the backup's packs), and on this virtual machine new memory — the page cache of those files included — costs a fault in its host unless it was freed a moment before (\"Data\", above: 1.5 GB written into the page cache in 0.5 s on memory just freed, 3–4.5 s on memory idle for 10–30 s); the same restore again (the row below it) writes into memory the first one's deleted files had just freed. Each blob is read once (by a blob pool thread straight from a pack on this host's disk; from S3 or GCS, adjacent blobs in one ranged read), decompressed, every chunk checked against its SHA-256 and written at its offset in the staged file, which is then synced to the device and opened by LMDB to count its documents; the commit publishes it on every node. Timed per shard by hand (2026-12-05, these 15 shards, 2 workers): the rebuilds are the time; the syncs take ~100 ms a shard, the counts ~10 ms and the commit 50–70 ms. The same restore again in the same workers (the row below the restore) is faster: a worker that has not restored before grows its memory as it goes, each page of it faulted in once (dear on this virtual machine). Until 2026-12-06 that was 30,000–35,000 more page faults per worker (~1.5 CPU-seconds, 1–1.5 s of the restore), because the zstd binding answers every decompressed blob in new memory, freed only when the thread's garbage collector ran, so each blob pool thread's heap first grew by some 64 MiB. A thread now collects once 16 MiB of such blobs have been let go; measured by hand after that change (2026-12-06, these 15 shards, 2 fresh workers, three restores in a row): 3.1 s and about 108,000 page faults per worker for the first, 2.7–2.8 s and 87,000–92,000 for the next. The allocator settings every process runs with (README, \"Memory allocator\") keep the memory a thread has grown for reuse: before them every restore paid for it again (measured by hand: a second restore in the same workers took 4.2–4.5 s without them, 2.8–3.1 s with them). Those collections are now the largest cost of a restore that is neither zstd nor SHA-256: about fifty full collections of each blob pool thread's small heap per restore of this data (a hundred in a worker with two threads), 9–12 ms each, 1–1.2 of a restore's 5–6 CPU-seconds (`--trace-gc` of one worker restoring the incremental backup, 2026-12-06). Collecting after every 64 MiB instead, or collecting only the young generation (which does not free the binding's buffers), made one worker's restores after its first 8–15 % faster (two workers' restores no faster) and left the worker 30–60 MB more at its peak, up to 210 MB (measured by hand, 2026-12-06), so the threads still collect after every 16 MiB. A restore of the incremental backup also costs 15–30 % more than one of the full backup (by hand, 2026-12-06, 2 fresh workers: 3.6–4.3 s against 3.2–3.3 s): its runs alternate between the base's blobs and the new ones, so a blob's chunks are written in more, smaller pieces, and a base blob is decoded whole for the chunks of it that are still used. Writing the staged files past the page cache (`O_DIRECT`, each piece copied into an aligned buffer) does not help: `dd` writes 1.4 GB in 1.25–1.34 s that way against 2.8–3.0 s written and synced through the cache, but only in large writes (4 KiB ones: 77 MB/s), and the pieces of an incremental backup's restore are small; tried on 2026-12-07, the restore of the incremental backup took 11.5–15.9 s with every piece written directly and 7.6 s with pieces of 128 KiB and more, against 5.3 s through the cache.",
    },
    {
      target: "incremental writes ≤ 5 % of the full backup's bytes",
      ratio: ratio(inc?.outputBytes, full?.outputBytes, 'a backup missing'),
      limit: 0.05,
      why: "**LMDB changes more pages than documents.** 2.5 % of the documents changed make ~5 % of the pages new: a leaf page holds a few documents and LMDB writes it whole, at another place, when one of them changes (leaf pages are three quarters of the new bytes), and branch pages and the free-page database change too (docs/chunking.md). Free pages, whose leftover bytes changed between backups without a document changing, are zeros in a snapshot now (6.2 % → 5.75 % here); no chunk smaller than a page can help with the rest.",
    },
    {
      target: "incremental time ≤ 20 % of the full backup's",
      ratio: ratio(inc?.seconds, full?.seconds, 'a backup missing'),
      limit: 0.2,
      why: "**An incremental backup has costs that do not shrink with the change.** It no longer names the pages that did not change: LMDB stamps every page it writes with its transaction, so the pages of a shard older than its last snapshot take that snapshot's names without being hashed (about 95 % of them here; docs/formats.md §3.6), and only the rest are named, compressed and stored. What is left is reading every page header and the file once, the base snapshot and its index files, and the jobs around it — a flow of one job per shard through Redis, the repository lock, the lineage object, the manifests and the status poll — on two cores shared by the API, Redis and two workers. Timed by hand per shard (in one process, 2026-12-05, these 15 shards one after another, ~1.9 s in all): lock 2 ms; lineage object and base snapshot 3–22 ms; the page-header walk 8–33 ms; the file's spans 30–80 ms, bound by the JavaScript thread (per span: the base's names and places, a message to a thread and back, garbage; ~0.7 CPU-seconds in all, about a quarter of it the garbage collector), not by the threads that read and name (~0.3 CPU-seconds); the last pack and its index file 7–18 ms; the snapshot 2–11 ms. Larger spans, more spans in flight and sending the named bytes back with their names were each tried and changed nothing measurable. A CPU profile of both workers' JavaScript threads during an incremental backup (2026-12-05; busy 2.0 and 2.5 s of its 3.6 s): messages to the blob pool threads 300–345 ms, the garbage collector 250–400 ms, and 200–250 ms learning the chunks of the packs the other worker wrote (a process reads the index files of the location it has not seen once: 340,000 chunks here). Since then the page-header walk makes no BigInt per page, and learning takes ~50 ms (2026-12-06: the chunk table makes room for every unseen index file at once instead of doubling step by step, each step new memory faulted in page by page, and a run's table of queued chunks starts small instead of at 5 MB: ~5,000 fewer page faults for a backup with nothing changed). Since 2026-12-06 workers collect their garbage on the thread that made it (`--single-threaded-gc`, README, \"Memory and cores\"): V8 had run a full collection of each worker's JavaScript thread every 150–200 ms of an incremental backup, marking on helper threads that took the cores from the blob pool (about a sixth of the workers' CPU); by hand, five interleaved runs of each, the incremental backup took a median of 1.85 s instead of 2.41 s.",
    },
    { target: "incremental time < restic's second backup", ratio: ratio(inc?.seconds, s('restic-2')?.seconds, 'restic or the incremental missing'), limit: 1.0 },
    { target: 'stored size of a full backup ≤ `tar | zstd -1`', ratio: ratio(full?.outputBytes, s('tar-zstd-mt')?.outputBytes, 'a size missing'), limit: 1.0 },
  ];
}

/** The section's Markdown lines; `chart` is the SVG's file name relative to the report. */
export function incrementalSection(c: IncrementalComparison | undefined): string[] {
  if (!c) return ['Not measured in this run (see Errors).', ''];
  const lines = [
    `The same data in one run, each step once: a raw read and \`tar | zstd -1 -T0\` of the data directory; restic's first \`backup\` and shardvault's full backup (${c.workers} workers, ${c.compression}) into empty repositories; then **${c.changed.updated.toLocaleString('en-US')} documents updated (1 %), ${c.changed.deleted.toLocaleString('en-US')} deleted (0.5 %) and ${c.changed.added.toLocaleString('en-US')} added (1 %)**; restic's second \`backup\` and shardvault's incremental backup; and a restore of the incremental backup into an empty cluster, its document counts checked, then the same restore again in the same worker processes once the restored classes are deleted (the target is judged on the first). Before each step the bench runs \`sync\`, so that no step pays for writing back what an earlier one wrote. "Written" is what the archive, the restic repository or the backup location grew by. Worker memory is the highest RssAnon (the worker's own memory) of any worker during the step.`,
    '',
    '| step | time | written | worker memory (anonymous) |',
    '|---|---:|---:|---:|',
    ...c.steps.map((s) => `| ${s.label} | ${fmt(s.seconds)} s | ${s.outputBytes !== undefined ? formatBytes(s.outputBytes) : '–'} | ${s.peakWorkerAnon ? formatBytes(s.peakWorkerAnon) : '–'} |`),
    '',
    '| target (issue 13) | measured | met |',
    '|---|---:|---|',
    ...targets(c).map((t) => (typeof t.ratio === 'string' ? `| ${t.target} | – | ${t.ratio} |` : `| ${t.target} | ${fmt(t.ratio, 3)} | ${t.ratio <= t.limit ? 'yes' : '**no**'} |`)),
    '',
  ];
  const why = [...new Set(targets(c).flatMap((t) => (typeof t.ratio === 'number' && t.ratio > t.limit && t.why ? [t.why] : [])))];
  if (why.length > 0) lines.push('Why the targets that are missed are missed (the costs of this design, measured with `--cpu-prof` and by step):', '', ...why.map((w) => `- ${w}`), '');
  if (c.chart) lines.push(`![time and bytes written per method](${c.chart})`, '');
  return lines;
}

/** Two bar charts side by side: seconds and bytes written per step. */
export function incrementalChart(c: IncrementalComparison): string {
  const rowH = 26;
  const labelW = 300;
  const barW = 260;
  const top = 40;
  const height = top + c.steps.length * rowH + 20;
  const width = labelW + 2 * (barW + 90);
  const maxS = Math.max(...c.steps.map((s) => s.seconds), 1e-9);
  const maxB = Math.max(...c.steps.map((s) => s.outputBytes ?? 0), 1);
  const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/`/g, '');
  const shardvault = (s: Step) => s.key === 'full' || s.key === 'incremental' || s.key === 'restore' || s.key === 'restore-again';
  const rows = c.steps.map((s, i) => {
    const y = top + i * rowH;
    const color = shardvault(s) ? '#2a6fdb' : '#999';
    const w1 = (s.seconds / maxS) * barW;
    const w2 = ((s.outputBytes ?? 0) / maxB) * barW;
    const x2 = labelW + barW + 90;
    return [
      `<text x="${labelW - 8}" y="${y + 17}" text-anchor="end">${esc(s.label)}</text>`,
      `<rect x="${labelW}" y="${y + 4}" width="${w1.toFixed(1)}" height="18" fill="${color}"/>`,
      `<text x="${labelW + w1 + 4}" y="${y + 17}">${fmt(s.seconds)} s</text>`,
      s.outputBytes !== undefined
        ? `<rect x="${x2}" y="${y + 4}" width="${w2.toFixed(1)}" height="18" fill="${color}"/><text x="${x2 + w2 + 4}" y="${y + 17}">${esc(formatBytes(s.outputBytes))}</text>`
        : '',
    ].join('');
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${labelW}" y="22" font-weight="bold">time (s)</text>`,
    `<text x="${labelW + barW + 90}" y="22" font-weight="bold">bytes written</text>`,
    ...rows,
    '</svg>',
    '',
  ].join('\n');
}

/** Write the chart beside the report and record its name. */
export function writeIncrementalChart(c: IncrementalComparison | undefined, report: string): void {
  if (!c || c.steps.length === 0) return;
  const name = `${path.basename(report, '.md')}-incremental.svg`;
  fs.writeFileSync(path.join(path.dirname(report), name), incrementalChart(c));
  c.chart = name;
}
