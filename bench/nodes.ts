/**
 * The `nodes` section of `npm run bench`: backups when every node is its own process
 * (`node/main.ts`) over its own data directory, and the API and the workers open none. Three
 * node processes are given the bench's data (each its own shards and a copy of `_cluster`),
 * one API and one Redis stay up throughout, and full backups are taken with 1, 2 and 4 worker
 * processes, then an incremental one with 2 after a change made through the API.
 *
 * The workers reach the nodes through counting TCP proxies (the API reaches them directly),
 * so the bytes counted are exactly what the nodes sent the workers — the snapshot streams and
 * the workers' metadata reads — and what the workers sent the nodes.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startNodeHosts, type NodeHosts } from '../test/support/node-processes.ts';
import { BenchCluster, NODE_ENTRY } from './cluster.ts';
import { DEFAULT_NODES, changeDocuments, directoryBytes, formatBytes, type DocumentWriter } from './generate.ts';
import { MemorySampler, machineBusyCpu, processCpu, stats } from './measure.ts';
import type { BenchResults, DataSummary, NodesBackup, NodesRun } from './results.ts';

// ---- a byte-counting TCP proxy -----------------------------------------------------------

export interface CountingProxy {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** Bytes the target sent back through the proxy so far. */
  fromTarget(): number;
  /** Bytes sent to the target through the proxy so far. */
  toTarget(): number;
  close(): Promise<void>;
}

/**
 * Forwards every connection to `target` byte for byte and counts both directions. TCP, not
 * HTTP (test/support/fault-proxy.ts parses and counts requests): the count is what crossed the
 * wire, headers and chunk framing included, and forwarding costs the bench process little CPU.
 */
export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const t = new URL(target);
  let fromTarget = 0;
  let toTarget = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(t.port), t.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      // Either side failing ends both, as a broken connection would.
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    upstream.on('data', (d: Buffer) => (fromTarget += d.length));
    client.on('data', (d: Buffer) => (toTarget += d.length));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    fromTarget: () => fromTarget,
    toTarget: () => toTarget,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---- the section -------------------------------------------------------------------------

export interface NodesOptions {
  workDir: string;
  /** The bench data (bench/generate.ts over DEFAULT_NODES); read, never changed. */
  dataDir: string;
  data: DataSummary;
  /** Full backups per worker count. */
  reps: number;
  workerCounts?: number[];
  incrementalWorkers?: number;
  workerConcurrency?: number;
  workerEntry?: string;
  log: (line: string) => void;
}

/** Weaviate's default level, what a backup gets unless it asks otherwise (as in the incremental section). */
const COMPRESSION = 'DefaultCompression';
/** PUTs and DELETEs in flight while the data is changed through the API: an application's few clients. */
const WRITERS = 8;

/**
 * Each node's directory as `npm run node` expects it: `_cluster` (the metadata copy; the
 * generated one has version 0 on every node, so all copies agree) and its own node's shards.
 * Copied, not linked: LMDB writes its files in place, and the change must not reach the bench
 * data other sections read. LMDB lock files are left out: they describe the readers of a
 * process that no longer has the file open, and LMDB makes a new one.
 */
function populateNodeDirs(dataDir: string, root: string, nodes: string[]): void {
  fs.rmSync(root, { recursive: true, force: true });
  const filter = (src: string) => !src.endsWith('-lock');
  for (const node of nodes) {
    const dir = path.join(root, node);
    fs.mkdirSync(dir, { recursive: true });
    fs.cpSync(path.join(dataDir, '_cluster'), path.join(dir, '_cluster'), { recursive: true, filter });
    fs.cpSync(path.join(dataDir, node), path.join(dir, node), { recursive: true, filter });
  }
}

/** Writes documents through the API's Xapiand routes (the bench's `_id`s are keywords, not Weaviate's uuids). */
function apiWriter(cluster: BenchCluster): DocumentWriter {
  const docPath = (index: string, id: string) => `/${encodeURIComponent(index)}/${encodeURIComponent(id)}`;
  const call = async (method: string, urlPath: string, body?: unknown) => {
    const r = await cluster.request(method, urlPath, body);
    if (r.status >= 300) throw new Error(`${method} ${urlPath} answered ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`);
  };
  /** WRITERS requests in flight until every item is done. */
  const inParallel = async <T>(items: T[], each: (item: T) => Promise<void>) => {
    let next = 0;
    const writer = async () => {
      while (next < items.length) await each(items[next++]!);
    };
    await Promise.all(Array.from({ length: WRITERS }, writer));
  };
  return {
    put: (index, docs) => inParallel(docs, (doc) => call('PUT', docPath(index, String(doc._id)), doc)),
    delete: (index, ids) => inParallel(ids, (id) => call('DELETE', docPath(index, id))),
  };
}

async function totalDocs(cluster: BenchCluster, indexes: string[]): Promise<number> {
  let n = 0;
  for (const ix of indexes) n += (await cluster.docCount(ix)) ?? Number.NaN;
  return n;
}

/** Fills `results.nodes` as it goes: a run that fails halfway keeps what it measured. */
export async function nodesRun(o: NodesOptions, results: BenchResults): Promise<void> {
  const nodes = DEFAULT_NODES;
  const workerCounts = o.workerCounts ?? [1, 2, 4];
  const incrementalWorkers = o.incrementalWorkers ?? 2;
  const classes = o.data.indexes.map((i) => i.name);
  const hostsDir = path.join(o.workDir, 'nodes-hosts');
  const backupDir = path.join(o.workDir, 'backups-nodes');
  // The API's and workers' DATA_DIR: with nodes on their own hosts they never write to it.
  const emptyDir = path.join(o.workDir, 'nodes-coordinators');
  fs.rmSync(backupDir, { recursive: true, force: true });
  fs.rmSync(emptyDir, { recursive: true, force: true });
  fs.mkdirSync(emptyDir, { recursive: true });

  const run: NodesRun = { nodes, shardBytes: 0, jsonBytes: o.data.jsonBytes, setupSeconds: 0, compression: COMPRESSION, backups: [] };
  results.nodes = run;

  const setupStarted = performance.now();
  let hosts: NodeHosts | undefined;
  let proxies: CountingProxy[] = [];
  let cluster: BenchCluster | undefined;
  try {
    populateNodeDirs(o.dataDir, hostsDir, nodes);
    const shardBytes = nodes.reduce((a, n) => a + directoryBytes(path.join(hostsDir, n, n)).bytes, 0);
    run.shardBytes = shardBytes;
    hosts = await startNodeHosts(hostsDir, nodes, NODE_ENTRY);
    proxies = await Promise.all(hosts.hosts.map((h) => startCountingProxy(h.url)));
    cluster = new BenchCluster({
      workDir: path.join(o.workDir, 'cluster-nodes'),
      dataDir: emptyDir,
      backupDir,
      nodes,
      workers: 0,
      workerConcurrency: o.workerConcurrency,
      workerEntry: o.workerEntry,
      env: hosts.env,
      workerEnv: { CLUSTER_NODES: hosts.hosts.map((h, i) => `${h.name}=${proxies[i]!.url}`).join(',') },
    });
    await cluster.start();
    run.setupSeconds = (performance.now() - setupStarted) / 1000;
    o.log(`nodes: ${nodes.length} node processes over copies of the bench data (${formatBytes(shardBytes)} of shards) in ${run.setupSeconds.toFixed(1)} s`);

    const c = cluster;
    const h = hosts;
    const nodePids = h.hosts.map((x) => x.proc.child.pid!);
    /** One backup, with what crossed the proxies, CPU by role and memory peaks around it. */
    const measured = async (id: string, incrementalBase?: string) => {
      const workerPids = c.pids().workers;
      const apiPid = c.pids().api!;
      const cpu = async () => {
        const bench = process.cpuUsage();
        return {
          worker: workerPids.reduce((a, p) => a + processCpu(p), 0),
          node: nodePids.reduce((a, p) => a + processCpu(p), 0),
          api: processCpu(apiPid),
          redis: await c.redisCpu().catch(() => 0),
          // The bench process: the proxies' forwarding and the status polls.
          bench: (bench.user + bench.system) / 1e6,
        };
      };
      const bytes = () => ({ down: proxies.reduce((a, p) => a + p.fromTarget(), 0), up: proxies.reduce((a, p) => a + p.toTarget(), 0) });
      const beforeCpu = await cpu();
      const beforeMachine = machineBusyCpu();
      const beforeBytes = bytes();
      const beforeOutput = directoryBytes(backupDir).bytes;
      const sampler = new MemorySampler([...workerPids, ...nodePids]);
      const r = await c.backup(id, { include: classes, compression: COMPRESSION, incrementalBase });
      const peaks = sampler.stop();
      const machineBusyCores = (machineBusyCpu() - beforeMachine) / r.seconds;
      const afterCpu = await cpu();
      const afterBytes = bytes();
      const peakOf = (pids: number[], k: 'peakRss' | 'peakAnon') => Math.max(0, ...pids.map((p) => peaks.get(p)?.[k] ?? 0));
      return {
        r,
        nodeToWorker: afterBytes.down - beforeBytes.down,
        workerToNode: afterBytes.up - beforeBytes.up,
        output: directoryBytes(backupDir).bytes - beforeOutput,
        machineBusyCores,
        cpu: Object.fromEntries(Object.entries(afterCpu).map(([k, v]) => [k, v - beforeCpu[k as keyof typeof beforeCpu]])),
        peaks: {
          worker: peakOf(workerPids, 'peakRss'),
          workerAnon: peakOf(workerPids, 'peakAnon'),
          node: peakOf(nodePids, 'peakRss'),
          nodeAnon: peakOf(nodePids, 'peakAnon'),
        },
      };
    };
    type Measured = Awaited<ReturnType<typeof measured>>;
    const summarize = (kind: NodesBackup['kind'], workers: number, ok: Measured[], failures: string[]): NodesBackup => {
      const median = (f: (m: Measured) => number) => stats(ok.map(f)).median;
      return {
        kind,
        workers,
        seconds: stats(ok.map((m) => m.r.seconds)),
        outputBytes: median((m) => m.output),
        nodeToWorkerBytes: median((m) => m.nodeToWorker),
        workerToNodeBytes: median((m) => m.workerToNode),
        cpuByRole: Object.fromEntries(Object.keys(ok[0]?.cpu ?? {}).map((k) => [k, median((m) => m.cpu[k]!)])),
        machineBusyCores: median((m) => m.machineBusyCores),
        peakRss: {
          worker: Math.max(0, ...ok.map((m) => m.peaks.worker)),
          workerAnon: Math.max(0, ...ok.map((m) => m.peaks.workerAnon)),
          node: Math.max(0, ...ok.map((m) => m.peaks.node)),
          nodeAnon: Math.max(0, ...ok.map((m) => m.peaks.nodeAnon)),
        },
        failures,
      };
    };
    const logRun = (label: string, m: Measured) =>
      o.log(
        `  ${label}: ${m.r.status} in ${m.r.seconds.toFixed(2)} s, nodes → workers ${formatBytes(m.nodeToWorker)}, written ${formatBytes(m.output)}, ` +
          `CPU ${Object.entries(m.cpu).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(' ')} s, machine ${m.machineBusyCores.toFixed(2)} cores busy`,
      );

    let base: string | undefined;
    for (const workers of workerCounts) {
      while (c.workers.length < workers) await c.addWorker();
      while (c.workers.length > workers) await c.stopWorker(c.workers.at(-1)!);
      const ok: Measured[] = [];
      const failures: string[] = [];
      for (let i = 0; i < o.reps; i++) {
        // A full backup: an empty location, so the repository has nothing to dedupe against.
        fs.rmSync(backupDir, { recursive: true, force: true });
        fs.mkdirSync(backupDir, { recursive: true });
        const id = `nodes-w${workers}-${i}-${Date.now().toString(36)}`;
        const m = await measured(id);
        logRun(`full backup, ${workers} worker(s), run ${i + 1}`, m);
        if (m.r.status === 'SUCCESS') {
          ok.push(m);
          base = id;
        } else failures.push(`${m.r.status}: ${JSON.stringify(m.r.body).slice(0, 300)}`);
      }
      run.backups.push(summarize('full', workers, ok, failures));
    }

    if (!base) throw new Error('no full backup succeeded: no base for the incremental one');
    // The last full backup is still in the location: the incremental one builds on it.
    while (c.workers.length > incrementalWorkers) await c.stopWorker(c.workers.at(-1)!);
    while (c.workers.length < incrementalWorkers) await c.addWorker();
    const before = await totalDocs(c, classes);
    const changeStarted = performance.now();
    const changed = await changeDocuments(apiWriter(c), o.data.indexes);
    run.changed = { ...changed, seconds: (performance.now() - changeStarted) / 1000 };
    const after = await totalDocs(c, classes);
    o.log(`  changed through the API in ${run.changed.seconds.toFixed(1)} s: ${JSON.stringify(changed)}`);
    if (after !== before + changed.added - changed.deleted) {
      throw new Error(`after the change the API counts ${after} documents, expected ${before + changed.added - changed.deleted}`);
    }
    const m = await measured(`nodes-incremental-${Date.now().toString(36)}`, base);
    logRun(`incremental backup, ${incrementalWorkers} workers`, m);
    const failures = m.r.status === 'SUCCESS' ? [] : [`${m.r.status}: ${JSON.stringify(m.r.body).slice(0, 300)}`];
    run.backups.push(summarize('incremental', incrementalWorkers, m.r.status === 'SUCCESS' ? [m] : [], failures));
  } finally {
    await cluster?.stop().catch(() => undefined);
    await Promise.all(proxies.map((p) => p.close().catch(() => undefined)));
    await hosts?.stop().catch(() => undefined);
    for (const d of [hostsDir, backupDir, emptyDir]) fs.rmSync(d, { recursive: true, force: true });
  }
}
