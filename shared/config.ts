import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from './errors.ts';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const csv = z
  .string()
  .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean));

const NODE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const NODE_ENTRY = /^[a-z0-9][a-z0-9_-]{0,62}(=https?:\/\/[^\s,]+)?$/;

/**
 * Every environment variable shardvault reads, with its default.
 * Weaviate's names are used where Weaviate has one.
 */
const envSchema = z.object({
  /** HTTP port of the API. */
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** Port of the gRPC health service (grpc.health.v1.Health) Weaviate's clients check; 0 turns it off. */
  GRPC_PORT: z.coerce.number().int().min(0).max(65535).default(50051),
  /**
   * Processes `npm run api` answers with, sharing its ports (node:cluster): each parses bodies,
   * checks and writes on its own core. 1 is one process, as `npm start` always is.
   */
  API_PROCESSES: z.coerce.number().int().min(1).max(64).default(1),
  /** Address the API binds to. */
  HOST: z.string().min(1).default('127.0.0.1'),
  /** Redis to use; unset means 127.0.0.1:6379 or, for `npm start`, a private redis-server. */
  REDIS_URL: z.string().url().optional(),
  /** Where the cluster metadata and every node's shards live. */
  DATA_DIR: z.string().min(1).default('./data'),
  /**
   * The cluster's nodes, in order; shard i lives on node i mod N. Plain names (`node-1,node-2`):
   * every node's shards are directories of this host's DATA_DIR. `name=URL` pairs
   * (`node-1=http://h1:7001,…`): each node is a `npm run node` process that owns its data, and
   * the API and workers reach it over HTTP (CLUSTER_SECRET is then required).
   */
  CLUSTER_NODES: csv
    .default(['node-1', 'node-2', 'node-3'])
    .pipe(
      z
        .array(
          z
            .string()
            .regex(NODE_ENTRY, 'each entry is a node name (lowercase letters, digits, _ and -), or name=http(s)://host:port')
            .transform((entry) => {
              const at = entry.indexOf('=');
              return at < 0 ? { name: entry } : { name: entry.slice(0, at), url: entry.slice(at + 1).replace(/\/+$/, '') };
            }),
        )
        .min(1, 'at least one node')
        .refine((a) => new Set(a.map((n) => n.name)).size === a.length, 'node names must be unique')
        .refine((a) => a.every((n) => n.url) || a.every((n) => !n.url), 'give a URL for every node or for none'),
    ),
  /**
   * The shared secret of a cluster's internal traffic (API and workers to nodes): required when
   * CLUSTER_NODES gives URLs; never logged.
   */
  CLUSTER_SECRET: z.string().min(16, 'at least 16 characters').optional(),
  /** `npm run node`: which node of CLUSTER_NODES this process is. */
  NODE_NAME: z.string().regex(NODE_NAME, 'node names are lowercase letters, digits, _ and -').optional(),
  /** Nodes whose queues this worker serves; default all of CLUSTER_NODES. */
  WORKER_NODES: csv.optional(),
  /** Jobs one worker runs at once per queue. */
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(2),
  /** Seconds a worker waits for running jobs on SIGTERM before aborting them. */
  WORKER_SHUTDOWN_SECONDS: z.coerce.number().int().min(1).max(3600).default(30),
  /**
   * Most bytes per second one running shard job moves to or from a backend (stored bytes);
   * 0 means unlimited. Elasticsearch's max_snapshot_bytes_per_sec / max_restore_bytes_per_sec.
   */
  WORKER_MAX_BYTES_PER_SECOND: z.coerce.number().int().min(0).default(0),
  /**
   * A worker's own (anonymous) memory, in MB, above which it gives the C allocator's free
   * memory back to the kernel (shared/memory-trim.ts); 0: never.
   */
  WORKER_MEMORY_TRIM_MB: z.coerce.number().int().min(0).default(180),
  /** Largest request body the API accepts, in bytes (streamed restores are exempt). */
  MAX_BODY_BYTES: z.coerce.number().int().min(1024).default(10 * 1024 * 1024),
  BACKUP_FILESYSTEM_PATH: z.string().min(1).default('./backups'),
  BACKUP_S3_BUCKET: z.string().min(1).optional(),
  BACKUP_S3_PATH: z.string().default(''),
  BACKUP_S3_ENDPOINT: z.string().min(1).optional(),
  BACKUP_S3_USE_SSL: bool.default(true),
  /** Longest an S3 request may go without a byte moving before it is abandoned and retried. */
  BACKUP_S3_REQUEST_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(3600).default(120),
  AWS_REGION: z.string().min(1).default('us-east-1'),
  AWS_ACCESS_KEY_ID: z.string().min(1).optional(),
  AWS_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  BACKUP_GCS_BUCKET: z.string().min(1).optional(),
  BACKUP_GCS_PATH: z.string().default(''),
  GOOGLE_CLOUD_PROJECT: z.string().min(1).optional(),
  STORAGE_EMULATOR_HOST: z.string().min(1).optional(),
  /** Longest a GCS request may go without a byte moving before it is abandoned and retried. */
  BACKUP_GCS_REQUEST_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(3600).default(120),
  AUTHENTICATION_APIKEY_ENABLED: bool.default(false),
  AUTHENTICATION_APIKEY_ALLOWED_KEYS: csv.default([]),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Env = z.infer<typeof envSchema>;

export interface Config {
  port: number;
  /** 0: no gRPC server. */
  grpcPort: number;
  /** Processes of `npm run api` (API_PROCESSES). */
  apiProcesses: number;
  host: string;
  redisUrl: string | undefined;
  dataDir: string;
  /** The node names of CLUSTER_NODES, in order. */
  nodes: string[];
  /** Each node's URL when CLUSTER_NODES gives them (nodes on their own hosts); else undefined. */
  nodeUrls: Record<string, string> | undefined;
  /** CLUSTER_SECRET. */
  clusterSecret: string | undefined;
  /** NODE_NAME (`npm run node`). */
  nodeName: string | undefined;
  workerNodes: string[];
  workerConcurrency: number;
  workerShutdownMs: number;
  /** WORKER_MAX_BYTES_PER_SECOND; 0: unlimited. */
  workerMaxBytesPerSecond: number;
  /** WORKER_MEMORY_TRIM_MB in bytes; 0: never. */
  workerMemoryTrimBytes: number;
  maxBodyBytes: number;
  logLevel: Env['LOG_LEVEL'];
  auth: { enabled: boolean; keys: string[] };
  backends: {
    filesystem: { path: string };
    s3?: {
      bucket: string;
      path: string;
      endpoint?: string;
      useSSL: boolean;
      region: string;
      /** BACKUP_S3_REQUEST_TIMEOUT_SECONDS in ms (default 120 000). */
      requestTimeoutMs?: number;
      accessKeyId?: string;
      secretAccessKey?: string;
    };
    gcs?: {
      bucket: string;
      path: string;
      projectId?: string;
      emulatorHost?: string;
      /** BACKUP_GCS_REQUEST_TIMEOUT_SECONDS in ms (default 120 000). */
      requestTimeoutMs?: number;
    };
  };
}

/** The variable names shardvault reads; docker-compose and tests check against this list. */
export const CONFIG_VARIABLES = Object.keys(envSchema.shape);

/**
 * Parse the environment once. A bad value throws a ConfigError whose message names the
 * variable and what is wrong with it.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const relevant = Object.fromEntries(
    CONFIG_VARIABLES.filter((k) => env[k] !== undefined && env[k] !== '').map((k) => [k, env[k]]),
  );
  const parsed = envSchema.safeParse(relevant);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || 'environment'}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${issues.join('; ')}`);
  }
  const e = parsed.data;
  const nodes = e.CLUSTER_NODES.map((n) => n.name);
  const nodeUrls = e.CLUSTER_NODES[0]!.url ? Object.fromEntries(e.CLUSTER_NODES.map((n) => [n.name, n.url!])) : undefined;
  if (nodeUrls && !e.CLUSTER_SECRET) {
    throw new ConfigError('invalid configuration: CLUSTER_SECRET: required when CLUSTER_NODES gives node URLs');
  }
  if (e.NODE_NAME !== undefined && !nodes.includes(e.NODE_NAME)) {
    throw new ConfigError(`invalid configuration: NODE_NAME: ${e.NODE_NAME} is not in CLUSTER_NODES`);
  }
  const workerNodes = e.WORKER_NODES ?? nodes;
  const unknown = workerNodes.filter((n) => !nodes.includes(n));
  if (unknown.length > 0) {
    throw new ConfigError(`invalid configuration: WORKER_NODES: ${unknown.join(', ')} not in CLUSTER_NODES`);
  }
  if (e.AUTHENTICATION_APIKEY_ENABLED && e.AUTHENTICATION_APIKEY_ALLOWED_KEYS.length === 0) {
    throw new ConfigError(
      'invalid configuration: AUTHENTICATION_APIKEY_ALLOWED_KEYS: must list at least one key when AUTHENTICATION_APIKEY_ENABLED=true',
    );
  }
  return {
    port: e.PORT,
    grpcPort: e.GRPC_PORT,
    apiProcesses: e.API_PROCESSES,
    host: e.HOST,
    redisUrl: e.REDIS_URL,
    dataDir: path.resolve(e.DATA_DIR),
    nodes,
    nodeUrls,
    clusterSecret: e.CLUSTER_SECRET,
    nodeName: e.NODE_NAME,
    workerNodes,
    workerConcurrency: e.WORKER_CONCURRENCY,
    workerShutdownMs: e.WORKER_SHUTDOWN_SECONDS * 1000,
    workerMaxBytesPerSecond: e.WORKER_MAX_BYTES_PER_SECOND,
    workerMemoryTrimBytes: e.WORKER_MEMORY_TRIM_MB * 1_000_000,
    maxBodyBytes: e.MAX_BODY_BYTES,
    logLevel: e.LOG_LEVEL,
    auth: { enabled: e.AUTHENTICATION_APIKEY_ENABLED, keys: e.AUTHENTICATION_APIKEY_ALLOWED_KEYS },
    backends: {
      filesystem: { path: path.resolve(e.BACKUP_FILESYSTEM_PATH) },
      ...(e.BACKUP_S3_BUCKET
        ? {
            s3: {
              bucket: e.BACKUP_S3_BUCKET,
              path: e.BACKUP_S3_PATH,
              endpoint: e.BACKUP_S3_ENDPOINT,
              useSSL: e.BACKUP_S3_USE_SSL,
              region: e.AWS_REGION,
              requestTimeoutMs: e.BACKUP_S3_REQUEST_TIMEOUT_SECONDS * 1000,
              accessKeyId: e.AWS_ACCESS_KEY_ID,
              secretAccessKey: e.AWS_SECRET_ACCESS_KEY,
            },
          }
        : {}),
      ...(e.BACKUP_GCS_BUCKET
        ? {
            gcs: {
              bucket: e.BACKUP_GCS_BUCKET,
              path: e.BACKUP_GCS_PATH,
              projectId: e.GOOGLE_CLOUD_PROJECT,
              emulatorHost: e.STORAGE_EMULATOR_HOST,
              requestTimeoutMs: e.BACKUP_GCS_REQUEST_TIMEOUT_SECONDS * 1000,
            },
          }
        : {}),
    },
  };
}

/**
 * The configuration, parsed once and passed through `check` (an entry point's own demands);
 * a bad one ends the process with one clear line and exit code 2.
 */
export function configOrExit(): Config;
export function configOrExit<T>(check: (config: Config) => T): T;
export function configOrExit(check: (config: Config) => unknown = (config) => config): unknown {
  try {
    return check(loadConfig());
  } catch (err) {
    return exitOnConfigError(err);
  }
}

/** A ConfigError ends the process with exit 2 and its one line on stderr; anything else is thrown on. */
export function exitOnConfigError(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`shardvault: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}
