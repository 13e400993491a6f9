/**
 * The section of BENCHMARKS.md on nodes as their own processes (bench/nodes.ts): full backups
 * with 1, 2 and 4 workers and an incremental one, their ratios to the 1-worker run, the bytes
 * the nodes sent the workers, CPU by process role and memory peaks; and what bounds the figures
 * on the machine of the run, said from the measured CPU use, not assumed.
 */
import { formatBytes } from './generate.ts';
import type { NodesBackup, NodesRun } from './results.ts';

const MB = 1e6;
const fmt = (n: number | undefined, digits = 2) => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(digits));
const pct = (n: number) => `${(n * 100).toFixed(0)} %`;

const ok = (b: NodesBackup | undefined): b is NodesBackup => b !== undefined && b.seconds.runs.length > 0;
const failed = (b: NodesBackup) => b.seconds.runs.length === 0;
const totalCpu = (b: NodesBackup) => Object.values(b.cpuByRole).reduce((a, v) => a + v, 0);
const busy = (b: NodesBackup) => totalCpu(b) / b.seconds.median;
const label = (b: NodesBackup) => `${b.kind} backup, ${b.workers} worker${b.workers > 1 ? 's' : ''}`;

function row(b: NodesBackup, one: NodesBackup | undefined, run: NodesRun, reps: number): string {
  if (failed(b)) return `| ${label(b)} | failed: ${b.failures[0]?.split('\n')[0]?.slice(0, 200).replace(/\|/g, '\\|') ?? 'no run'} |||||||||||`;
  const s = b.seconds;
  const vsOne =
    b.kind !== 'full' || !ok(one) ? '–' : b === one ? '1.00' : `${fmt(s.median / one.seconds.median)} (${fmt(one.seconds.median / s.median)}× as fast)`;
  const c = b.cpuByRole;
  return (
    `| ${label(b)} | ${fmt(s.median)} s (${fmt(s.min)} – ${fmt(s.max)}) | ${fmt(run.jsonBytes / MB / s.median, 1)} | ${vsOne} | ` +
    `${formatBytes(b.nodeToWorkerBytes)} (${fmt(b.nodeToWorkerBytes / MB / s.median, 0)} MB/s) | ${formatBytes(b.workerToNodeBytes)} | ${formatBytes(b.outputBytes)} | ` +
    `${fmt(c.worker, 1)} / ${fmt(c.node, 1)} / ${fmt((c.api ?? 0) + (c.redis ?? 0), 1)} / ${fmt(c.bench, 1)} s | ${fmt(busy(b))} (${fmt(b.machineBusyCores)}) | ` +
    `${fmt(b.peakRss.worker / MB, 0)} MB (${fmt(b.peakRss.workerAnon / MB, 0)} MB) | ${fmt(b.peakRss.node / MB, 0)} MB (${fmt(b.peakRss.nodeAnon / MB, 0)} MB) | ` +
    `${s.runs.length} of ${b.kind === 'full' ? reps : 1} |`
  );
}

/**
 * What bounds the full backups on this machine, said from the measurements: whether the cores
 * were saturated (/proc/stat), whether the CPU-seconds a backup needs change with the number of
 * workers, how far each run is from its CPU floor (CPU-seconds ÷ cores), and how much of the
 * machine other processes took — on a shared machine that share, not the work, can decide
 * whether more workers finish sooner.
 */
function bounds(run: NodesRun, cores: number): string[] {
  const full = (w: number) => run.backups.find((b) => b.kind === 'full' && b.workers === w);
  const fulls = run.backups.filter((b) => b.kind === 'full' && ok(b));
  if (fulls.length < 2) return ['Too few full backups succeeded to say what bounds them.', ''];
  const others = (b: NodesBackup) => Math.max(0, b.machineBusyCores - busy(b));
  const floor = (b: NodesBackup) => totalCpu(b) / cores;
  const share = (b: NodesBackup, role: string) => (b.cpuByRole[role] ?? 0) / totalCpu(b);
  const workers = (b: NodesBackup) => `${b.workers} worker${b.workers > 1 ? 's' : ''}`;
  const describe = (b: NodesBackup) =>
    `${workers(b)}: ${fmt(totalCpu(b), 1)} CPU-seconds in ${fmt(b.seconds.median)} s (floor ${fmt(floor(b), 1)} s), this section's processes ${fmt(busy(b))} cores busy, ` +
    `the whole machine ${fmt(b.machineBusyCores)} (other processes and the kernel ${fmt(others(b))})`;
  const lines: string[] = [
    `Every process of this section — ${run.nodes.length} nodes, the API, Redis, the workers and the bench process with its proxies — shares the machine's ${cores} cores; the "floor" of a backup is its CPU-seconds ÷ ${cores}, the time it would take if it had every core to itself and never waited. Per full backup: ${fulls.map(describe).join('; ')}.`,
    '',
  ];
  const cpu = fulls.map(totalCpu);
  const [lo, hi] = [Math.min(...cpu), Math.max(...cpu)];
  const allSaturated = fulls.every((b) => b.machineBusyCores >= 0.9 * cores);
  const workerShares = fulls.map((b) => share(b, 'worker'));
  const nodeShares = fulls.map((b) => share(b, 'node'));
  const range = (xs: number[]) => (Math.min(...xs) === Math.max(...xs) ? pct(xs[0]!) : `${pct(Math.min(...xs))}–${pct(Math.max(...xs))}`);
  lines.push(
    (allSaturated
      ? `In every full backup the machine's cores were saturated (${fmt(Math.min(...fulls.map((b) => b.machineBusyCores)))}–${fmt(Math.max(...fulls.map((b) => b.machineBusyCores)))} of ${cores} busy). `
      : `The machine's cores were not saturated in every full backup (${fulls.map((b) => `${workers(b)} ${fmt(b.machineBusyCores)}`).join(', ')} of ${cores} busy): part of the time was spent waiting (a node copies a shard before its stream starts; jobs pass through Redis). `) +
      `The CPU-seconds a full backup needs ${(hi - lo) / lo <= 0.15 ? `hardly change with the number of workers (${fmt(lo, 1)}–${fmt(hi, 1)} s)` : `vary with the number of workers (${fmt(lo, 1)}–${fmt(hi, 1)} s)`}: ` +
      `${range(workerShares)} of them in the workers (reading the streams, hashing, zstd, writing), ${range(nodeShares)} in the nodes (copying each shard, sending it), ` +
      `${range(fulls.map((b) => share(b, 'bench')))} in the bench's counting proxies (a cost of measuring, absent in a deployment). ` +
      (allSaturated ? 'The bound is CPU, the workers\' work above all — not the network or the disk.' : 'CPU is the larger part of the bound, the workers\' work above all.'),
    '',
  );
  const [one, two, four] = [full(1), full(2), full(4)];
  if (ok(one) && ok(two)) {
    lines.push(
      `2 workers against 1: ${fmt(two.seconds.median)} s against ${fmt(one.seconds.median)} s (${fmt(one.seconds.median / two.seconds.median)}× as fast); this section's processes got ${fmt(busy(one))} cores with 1 worker and ${fmt(busy(two))} with 2.`,
      '',
    );
  }
  if (ok(two) && ok(four)) {
    const ratio = two.seconds.median / four.seconds.median;
    const nearFloor = four.seconds.median / floor(four);
    lines.push(
      four.seconds.median >= 0.95 * two.seconds.median
        ? `4 workers cannot beat 2 here: ${fmt(four.seconds.median)} s against ${fmt(two.seconds.median)} s (${fmt(ratio)}× the speed), for ${fmt(totalCpu(four) / totalCpu(two))}× the CPU-seconds — the same work cut among more processes competing for the same ${cores} cores.`
        : `4 workers finished sooner than 2 in this run (${fmt(four.seconds.median)} s against ${fmt(two.seconds.median)} s, ${fmt(ratio)}× as fast), but not by doing the work faster: they needed ${fmt(totalCpu(four) / totalCpu(two))}× the CPU-seconds of 2 workers, and what changed is the share of the machine this section got — ${fmt(busy(two))} cores with 2 workers (other processes ${fmt(others(two))}), ${fmt(busy(four))} with 4 (other processes ${fmt(others(four))}): the kernel shares contended cores among runnable threads, and 4 workers are more of them against the other tenants of this machine. ` +
          `With 4 workers the backup took ${fmt(nearFloor)}× its ${fmt(floor(four), 1)} s floor, so no worker count can do much better on ${cores} cores; on a machine without other tenants 2 and 4 workers face the same floor, and the gap between them here measures the contention, not the workers.`,
      '',
    );
  }
  return lines;
}

export function nodesSection(run: NodesRun | undefined, cores: number, reps: number): string[] {
  if (!run) return ['Not measured in this run (skipped, or see Errors).', ''];
  const one = run.backups.find((b) => b.kind === 'full' && b.workers === 1);
  const lines: string[] = [
    `${run.nodes.length} storage nodes, each its own \`node/main.ts\` process (\`npm run node\`) over its own data directory, holding a copy of the bench data: its own shards (${formatBytes(run.shardBytes)} of shard files in all) and the same copy of the \`_cluster\` metadata. One API process and one Redis stay up for the whole section; the API and the workers open no data directory. A worker streams each shard's snapshot from its node (\`GET /internal/indexes/{index}/shards/{n}/snapshot\`: the node copies the shard, then sends the whole file) and does the hashing, compression (${run.compression}) and writing to the filesystem backend itself. Every full backup starts from an empty backup location with a fresh id, so nothing is deduplicated against an earlier one. The workers reach the nodes through counting TCP proxies in the bench process (the API reaches them directly): "nodes → workers" is every byte the nodes sent the workers, HTTP headers and chunk framing included. Setting up (copying the data, starting the nodes, the API and Redis) took ${fmt(run.setupSeconds, 1)} s.`,
    '',
    '| backup | time (min – max) | MB/s of documents | time ÷ 1 worker | nodes → workers | workers → nodes | written | CPU: workers / nodes / API+Redis / bench | cores busy (whole machine) | peak worker RSS (anonymous) | peak node RSS (anonymous) | runs ok |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...run.backups.map((b) => row(b, one, run, reps)),
    '',
    'CPU-seconds are user + system of each role\'s processes over the backup, from `/proc` (Redis from its `INFO`); "bench" is the bench process itself: the proxies forwarding the streams and the status polls. "Cores busy" is the sum ÷ wall time; in brackets, the cores the whole machine was busy (`/proc/stat`: these processes and any other tenant\'s). RSS is sampled every 20 ms; a node\'s resident set includes the file pages of the shards it maps (LMDB), so its anonymous memory is the figure it holds itself.',
    '',
  ];
  const fullRun = run.backups.find((b) => b.kind === 'full' && b.workers === 2 && ok(b)) ?? run.backups.find((b) => b.kind === 'full' && ok(b));
  const inc = run.backups.find((b) => b.kind === 'incremental');
  if (run.changed) {
    const c = run.changed;
    const requests = c.updated + c.deleted + c.added;
    lines.push(
      `Before the incremental backup, ${c.updated.toLocaleString('en-US')} documents were replaced, ${c.deleted.toLocaleString('en-US')} deleted and ${c.added.toLocaleString('en-US')} added (1 %, 0.5 % and 1 % of each index, as in the snapshot engine's section) through the API (\`PUT\` and \`DELETE /{index}/{id}\`, 8 requests in flight) in ${fmt(c.seconds, 1)} s (${fmt(requests / c.seconds, 0)} requests/s); the document counts the API answers afterwards were checked.`,
      '',
    );
  }
  if (fullRun && ok(inc)) {
    lines.push(
      `Network: a full backup moved ${formatBytes(fullRun.nodeToWorkerBytes)} from the nodes to the workers, ${fmt(fullRun.nodeToWorkerBytes / run.shardBytes)}× the shard files the nodes hold — each shard crosses the network once, whole. ` +
        `The incremental backup moved ${formatBytes(inc.nodeToWorkerBytes)} (${fmt(inc.nodeToWorkerBytes / fullRun.nodeToWorkerBytes)}× the full backup's) while writing ${formatBytes(inc.outputBytes)} (${pct(inc.outputBytes / fullRun.outputBytes)} of the full backup's ${formatBytes(fullRun.outputBytes)}) in ${fmt(inc.seconds.median)} s (${fmt(inc.seconds.median / fullRun.seconds.median)}× the ${fullRun.workers}-worker full backup's time): ` +
        `${inc.nodeToWorkerBytes >= 0.9 * fullRun.nodeToWorkerBytes ? 'the node sends the whole snapshot of every shard and the worker finds what changed by hashing it, so an incremental backup saves storage and upload, not network or node reads' : 'less than a full snapshot crossed the network'}.`,
      '',
    );
  }
  lines.push('What bounds it:', '', ...bounds(run, cores));
  return lines;
}
