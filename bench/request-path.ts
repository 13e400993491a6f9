/**
 * The request path under load (issue 14): bulk import through `/v1/batch/objects` against the
 * store's own `putDocuments` on the same documents, and the backup list of a bucket holding a
 * thousand backups (s3rver behind a counting proxy, so S3 calls per request are known).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createBackend } from '../shared/backends/index.ts';
import { loadConfig } from '../shared/config.ts';
import { Store } from '../shared/store/store.ts';
import { startFaultProxy } from '../test/support/fault-proxy.ts';
import { startS3Server } from '../test/support/s3-server.ts';
import { BenchCluster } from './cluster.ts';
import { getRepeatedly, RawConnection, type LoadRun } from './load.ts';

const NODES = ['node-1', 'node-2', 'node-3'];

export interface IngestRun {
  objects: number;
  batchSize: number;
  clients: number;
  /** Bytes of one object's JSON, about. */
  objectBytes: number;
  /** One run per API_PROCESSES value asked for, each into a fresh cluster. */
  api: { processes: number; seconds: number; objectsPerSecond: number }[];
  store: { seconds: number; objectsPerSecond: number };
}

export interface ListRun extends LoadRun {
  backups: number;
  /** Objects in the bucket besides the backups' own (the repository's packs and index files). */
  repositoryObjects: number;
  /** HTTP requests the API made to S3, per list request answered. */
  s3RequestsPerRequest: number;
  /** Median milliseconds of the one S3 call alone (the delimited listing, from the bench process): the server's share. */
  s3ListingMs: number;
}

const CLASS = { class: 'Ingest', properties: [{ name: 'title', dataType: ['text'] }, { name: 'body', dataType: ['text'] }, { name: 'n', dataType: ['int'] }] };

/** Batch `b` of the ingest: `size` objects of about 1 KB, the same for both runs. */
function batch(b: number, size: number): { id: string; title: string; body: string; n: number }[] {
  return Array.from({ length: size }, (_, i) => {
    const n = b * size + i;
    return { id: `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`, title: `object ${n}`, body: `${n} `.repeat(300).slice(0, 900), n };
  });
}

/** Run `clients` loops that take batch numbers from one counter until `batches` are done. */
async function inParallel(clients: number, batches: number, send: (b: number, client: number) => Promise<void>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let b = next++; b < batches; b = next++) await send(b, client);
    }),
  );
  return (performance.now() - started) / 1000;
}

/**
 * `/v1/batch/objects` with `clients` concurrent clients against an API over three nodes, once
 * for each number of API processes (API_PROCESSES), then `Store.putDocuments` in this process
 * on the same documents, in the same batches, as concurrently, into a fresh data directory.
 */
export async function ingestRun(workDir: string, options: { batches: number; batchSize: number; clients: number; apiProcesses: number[] }): Promise<IngestRun> {
  const { batches, batchSize, clients } = options;
  // Bodies are encoded before the clock starts, sent over one keep-alive connection per client
  // of the bench's own lean HTTP (load.ts; fetch took 40 % of a core here, on the two the API
  // needs), and answers only searched for an error: the bench process, a client on the same
  // two cores, spends as little CPU as it can.
  const bodies = Array.from({ length: batches }, (_, b) =>
    Buffer.from(JSON.stringify({ objects: batch(b, batchSize).map(({ id, ...properties }) => ({ class: 'Ingest', id, properties })) })),
  );
  const api: IngestRun['api'] = [];
  for (const processes of options.apiProcesses) {
    const seconds = await apiIngest(workDir, processes, bodies, clients);
    api.push({ processes, seconds, objectsPerSecond: (batches * batchSize) / seconds });
  }
  const storeData = path.join(workDir, 'ingest-store');
  fs.rmSync(storeData, { recursive: true, force: true });
  const store = new Store({ dataDir: storeData, nodes: NODES });
  try {
    await store.createIndex('Ingest', { schema: { _id: { _type: 'uuid' }, title: { _type: 'text' }, body: { _type: 'text' }, n: { _type: 'integer' } } });
    const documents = Array.from({ length: batches }, (_, b) => batch(b, batchSize).map(({ id, ...properties }) => ({ ...properties, _id: id })));
    const storeSeconds = await inParallel(clients, batches, async (b) => {
      const results = await store.putDocuments('Ingest', documents[b]!, { create: false });
      if (results.some((r) => !r.ok)) throw new Error(`putDocuments of batch ${b} refused a document`);
    });
    const objects = batches * batchSize;
    return {
      objects,
      batchSize,
      clients,
      objectBytes: Buffer.byteLength(JSON.stringify(batch(0, 1)[0])),
      api,
      store: { seconds: storeSeconds, objectsPerSecond: objects / storeSeconds },
    };
  } finally {
    await store.close();
    fs.rmSync(storeData, { recursive: true, force: true });
  }
}

/** Seconds to send every body through `/v1/batch/objects` of an API of `processes` processes over a fresh data directory. */
async function apiIngest(workDir: string, processes: number, bodies: Buffer[], clients: number): Promise<number> {
  const apiData = path.join(workDir, 'ingest-api');
  fs.rmSync(apiData, { recursive: true, force: true });
  const cluster = new BenchCluster({
    workDir: path.join(workDir, 'cluster-ingest'),
    dataDir: apiData,
    backupDir: path.join(workDir, 'backups-ingest'),
    nodes: NODES,
    workers: 0,
    // At info, for the primary's line that every API process listens: ready answers from the first.
    logLevel: 'info',
    env: { API_PROCESSES: String(processes) },
  });
  try {
    await cluster.start();
    if (processes > 1) await cluster.api!.waitFor(/every API process listens/, 60_000);
    const created = await fetch(`${cluster.baseUrl}/v1/schema`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(CLASS) });
    if (!created.ok) throw new Error(`POST /v1/schema answered ${created.status}: ${await created.text()}`);
    const connections = Array.from({ length: clients }, () => new RawConnection(new URL(cluster.baseUrl)));
    return await inParallel(clients, bodies.length, async (b, client) => {
      const answer = await connections[client]!.send('POST', '/v1/batch/objects', bodies[b]);
      if (!answer) throw new Error(`batch ${b}: the connection failed`);
      const text = answer.body?.toString() ?? '(an answer without Content-Length)';
      if (answer.status !== 200 || !answer.body || text.includes('"errors"')) throw new Error(`batch ${b} answered ${answer.status} with errors: ${text.slice(0, 500)}`);
    }).finally(() => connections.forEach((c) => c.close()));
  } finally {
    await cluster.stop().catch(() => undefined);
    fs.rmSync(apiData, { recursive: true, force: true });
  }
}

/**
 * `GET /v1/backups/s3` with `backups` backups in the bucket (global and node manifests, as a
 * finished backup leaves them) beside a repository of `repositoryObjects` objects.
 */
export async function listRun(workDir: string, options: { backups: number; repositoryObjects: number; requests: number }): Promise<ListRun> {
  const server = await startS3Server();
  const proxy = await startFaultProxy({ target: server.endpoint, seed: 1 });
  const env = {
    BACKUP_S3_BUCKET: server.bucket,
    BACKUP_S3_PATH: 'bench',
    BACKUP_S3_ENDPOINT: proxy.host,
    BACKUP_S3_USE_SSL: 'false',
    AWS_REGION: server.region,
    AWS_ACCESS_KEY_ID: server.accessKeyId,
    AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
  };
  const dataDir = path.join(workDir, 'data-list');
  const cluster = new BenchCluster({ workDir: path.join(workDir, 'cluster-list'), dataDir, backupDir: path.join(workDir, 'backups-list'), nodes: NODES, workers: 0, env });
  try {
    // Seeded straight into the bucket (not through the proxy): only the API's calls are counted.
    const backend = createBackend('s3', loadConfig({ ...env, BACKUP_S3_ENDPOINT: new URL(server.endpoint).host }).backends);
    const writes: Promise<unknown>[] = [];
    const flush = async () => void (await Promise.all(writes.splice(0)));
    for (let i = 0; i < options.backups; i++) {
      const id = `nightly-${String(i).padStart(5, '0')}`;
      const manifest = {
        version: 1, id, backend: 's3', nodes: NODES, classes: ['Article'], startedAt: new Date(Date.UTC(2026, 0, 1) + i * 3_600_000).toISOString(),
        formatVersion: 2, compression: 'BestSpeed', status: 'SUCCESS', completedAt: new Date(Date.UTC(2026, 0, 1) + i * 3_600_000 + 60_000).toISOString(),
        totals: { shards: 3, docs: 1000, bytes: 100_000 },
        nodeManifests: Object.fromEntries(NODES.map((n) => [n, { key: `${id}/${n}/backup.json`, sha256: '0'.repeat(64), bytes: 2 }])),
      };
      writes.push(backend.write(`${id}/backup_config.json`, Readable.from([JSON.stringify(manifest)])));
      for (const n of NODES) writes.push(backend.write(`${id}/${n}/backup.json`, Readable.from(['{}'])));
      if (writes.length >= 64) await flush();
    }
    for (let i = 0; i < options.repositoryObjects; i++) {
      writes.push(backend.write(`.repository/index/${i.toString(16).padStart(8, '0')}`, Readable.from(['x'])));
      if (writes.length >= 64) await flush();
    }
    await flush();
    await cluster.start();
    const warm = await fetch(`${cluster.baseUrl}/v1/backups/s3`);
    const listed = ((await warm.json()) as unknown[]).length;
    if (listed !== options.backups) throw new Error(`GET /v1/backups/s3 listed ${listed} backups of ${options.backups}`);
    const alone: number[] = [];
    for (let i = 0; i < 9; i++) {
      const t = performance.now();
      await backend.listDirectories('');
      alone.push(performance.now() - t);
    }
    const before = proxy.counts.requests;
    const run = await getRepeatedly(cluster, { path: '/v1/backups/s3', name: `/v1/backups/s3 (${options.backups} backups)`, amount: options.requests });
    return { ...run, backups: options.backups, repositoryObjects: options.repositoryObjects, s3RequestsPerRequest: (proxy.counts.requests - before) / Math.max(1, run.requests), s3ListingMs: alone.sort((a, b) => a - b)[4]! };
  } finally {
    await cluster.stop().catch(() => undefined);
    await proxy.close();
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
