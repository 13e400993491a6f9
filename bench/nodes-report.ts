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
 * were saturated (the section's processes from /proc/<pid>/stat, the whole machine from
 * /proc/stat — the two disagree by about 0.1 core on this VM, so the larger is taken), how
 * far each run is from its CPU floor (CPU-seconds ÷ cores), and, between worker counts, how
 * the CPU-seconds and the share of the machine other processes took changed: on a shared
 * machine that share, not the work, can decide whether more workers finish sooner.
 */
function bounds(run: NodesRun, cores: number): string[] {
  const fulls = run.backups.filter((b) => b.kind === 'full' && ok(b));
  if (fulls.length < 2) return ['Too few full backups succeeded to say what bounds them.', ''];
  const others = (b: NodesBackup) => Math.max(0, b.machineBusyCores - busy(b));
  const used = (b: NodesBackup) => Math.max(busy(b), b.machineBusyCores);
  const saturated = (b: NodesBackup) => used(b) >= 0.85 * cores;
  const floor = (b: NodesBackup) => totalCpu(b) / cores;
  const share = (b: NodesBackup, role: string) => (b.cpuByRole[role] ?? 0) / totalCpu(b);
  const workers = (b: NodesBackup) => `${b.workers} worker${b.workers > 1 ? 's' : ''}`;
  const range = (xs: number[], f: (x: number) => string) => (Math.min(...xs) === Math.max(...xs) ? f(xs[0]!) : `${f(Math.min(...xs))}–${f(Math.max(...xs))}`);
  const describe = (b: NodesBackup) =>
    `${workers(b)}: ${fmt(totalCpu(b), 1)} CPU-seconds in ${fmt(b.seconds.median)} s (floor ${fmt(floor(b), 1)} s), this section's processes ${fmt(busy(b))} cores busy, ` +
    `the whole machine ${fmt(b.machineBusyCores)}${others(b) >= 0.1 ? ` (other processes ${fmt(others(b))})` : ''}`;
  const lines: string[] = [
    `Every process of this section — ${run.nodes.length} nodes, the API, Redis, the workers and the bench process with its proxies — shares the machine's ${cores} cores; the "floor" of a backup is its CPU-seconds ÷ ${cores}, the time it would take with every core to itself and no waiting. Per full backup: ${fulls.map(describe).join('; ')}.`,
    '',
  ];
  const roles =
    `${range(fulls.map((b) => share(b, 'worker')), pct)} of the CPU-seconds in the workers (reading the streams, hashing, zstd, writing), ` +
    `${range(fulls.map((b) => share(b, 'node')), pct)} in the nodes (reading each shard, sending it), ` +
    `${range(fulls.map((b) => share(b, 'bench')), pct)} in the bench's counting proxies (a cost of measuring, absent in a deployment)`;
  const fastest = fulls.reduce((a, b) => (b.seconds.median < a.seconds.median ? b : a));
  const leanest = fulls.reduce((a, b) => (totalCpu(b) < totalCpu(a) ? b : a));
  lines.push(
    fulls.every(saturated)
      ? `In every full backup the cores were saturated or nearly (${range(fulls.map(used), (x) => fmt(x))} of ${cores} busy) and each took ${range(fulls.map((b) => b.seconds.median / floor(b)), (x) => `${fmt(x)}×`)} its floor: the bound is CPU — the workers' work above all, ${roles} — not the network or the disk.` +
          (fastest === leanest && fulls.length > 1 ? ` Time follows CPU-seconds: the run that needed the fewest (${workers(leanest)}, ${fmt(totalCpu(leanest), 1)} s) finished first.` : '')
      : `The cores were not saturated in every full backup (${fulls.map((b) => `${workers(b)} ${fmt(used(b))}`).join(', ')} of ${cores} busy): besides CPU (${roles}), part of the time was spent waiting — a node's snapshot starts after any write transaction running then, a worker's transfers wait for a free slot, and jobs pass through Redis.`,
    '',
  );
  for (const [a, b] of fulls.slice(1).map((b, i) => [fulls[i]!, b] as const)) {
    const speed = a.seconds.median / b.seconds.median;
    const cpuRatio = totalCpu(b) / totalCpu(a);
    const head = `${workers(b)} against ${a.workers}: ${fmt(b.seconds.median)} s against ${fmt(a.seconds.median)} s (${fmt(speed)}× as fast), for ${fmt(cpuRatio)}× the CPU-seconds`;
    if (speed < 1.05) {
      lines.push(
        `${head}. ${b.workers} workers cannot beat ${a.workers} here: ${saturated(a) ? `with ${workers(a)} the cores were already busy (${fmt(used(a))} of ${cores}), so more workers add no core, only more processes competing for the same ${cores}` : 'the extra workers found no idle core to use'}.`,
        '',
      );
    } else if (others(a) - others(b) >= 0.1 && busy(b) > busy(a)) {
      lines.push(
        `${head}: not by doing the work faster, but by getting more of a machine other processes were using too — this section's processes had ${fmt(busy(a))} cores with ${workers(a)} (other processes ${fmt(others(a))}) and ${fmt(busy(b))} with ${b.workers} (other processes ${fmt(others(b))}): the kernel shares contended cores among runnable threads, and more workers are more of them. ` +
          `With ${workers(b)} the backup took ${fmt(b.seconds.median / floor(b))}× its ${fmt(floor(b), 1)} s floor; on a machine without other tenants both face the same floor, and the gap here measures the contention, not the workers.`,
        '',
      );
    } else {
      lines.push(
        `${head}${saturated(a) ? '' : `: with ${workers(a)} the cores were ${fmt(cores - used(a))} of ${cores} idle, and the extra workers used them`}.`,
        '',
      );
    }
  }
  return lines;
}

export function nodesSection(run: NodesRun | undefined, cores: number, reps: number): string[] {
  if (!run) return ['Not measured in this run (skipped, or see Errors).', ''];
  const one = run.backups.find((b) => b.kind === 'full' && b.workers === 1);
  const lines: string[] = [
    `${run.nodes.length} storage nodes, each its own \`node/main.ts\` process (\`npm run node\`) over its own data directory, holding a copy of the bench data: its own shards (${formatBytes(run.shardBytes)} of shard files in all) and the same copy of the \`_cluster\` metadata. One API process and one Redis stay up for the whole section; the API and the workers open no data directory. A worker streams each shard's snapshot from its node (\`GET /internal/indexes/{index}/shards/{n}/snapshot\`: the node reads the snapshot from the shard's file under one read transaction and sends it whole or, asked against the latest snapshot of that file in the backup location, only the pages LMDB wrote since and one in 32 of the others, to check that account by) and does the hashing, compression (${run.compression}) and writing to the filesystem backend itself. Every full backup starts from an empty backup location with a fresh id, so nothing is deduplicated against an earlier one. The workers reach the nodes through counting TCP proxies in the bench process (the API reaches them directly): "nodes → workers" is every byte the nodes sent the workers, HTTP headers and chunk framing included. Setting up (copying the data, starting the nodes, the API and Redis) took ${fmt(run.setupSeconds, 1)} s.`,
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
        `${inc.nodeToWorkerBytes >= 0.9 * fullRun.nodeToWorkerBytes ? 'the nodes sent whole snapshots (no earlier snapshot of their shard files was found in the location) and the worker found what changed by hashing them, so that backup saved storage and upload, not network or node reads' : 'each node sent the pages LMDB wrote since the location\'s latest snapshot of its shard file, one in 32 of the others (the sample that checks that account) and the account itself; the worker named only those pages'}.`,
      '',
    );
  }
  lines.push('What bounds it:', '', ...bounds(run, cores));
  return lines;
}
