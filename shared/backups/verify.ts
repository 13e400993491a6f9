/**
 * Checking a backup without restoring it (`GET /v1/backups/{backend}/{id}/verify`, CLI
 * `shardvault backup verify`): every object the manifests name is streamed once and its
 * sha256 and size compared with what the manifests recorded, and the manifests are checked
 * against each other (docs/formats.md §1):
 *
 * - `backup_config.json` must be valid JSON of the manifest's shape, for this id, SUCCESS;
 * - every node manifest it lists must exist, have the recorded sha256 and size, and parse;
 * - every shard that a node manifest's indexes place on that node must have exactly one
 *   object entry, and every listed class must be described by a node manifest;
 * - every shard object must exist under `<id>/<node>/`, with the sha256 (and, format 1, the
 *   size) recorded; a format-2 snapshot is replayed from the repository, every chunk checked
 *   against its SHA-256 and the rebuilt file against the snapshot's size and SHA-256;
 * - the totals of backup_config.json must be the sums of the shard entries, and its
 *   preCompressionSizeBytes (when recorded) the sum of their files' sizes.
 *
 * Damage is reported, not thrown: the answer lists each problem with the object key it
 * concerns (relative to the backend's root), and `status` is CORRUPT when there is any. Only
 * what prevents checking at all is thrown: an unknown backup (NotFoundError), one that is not
 * SUCCESS (ValidationError), or a backend that is away (UnavailableError) or unusable
 * (PermanentBackendError).
 */
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Backend, BackendName, CallOptions } from '../backends/backend.ts';
import { readSmall } from '../backends/bodies.ts';
import { describeError, withRetry } from '../backends/retry.ts';
import { IntegrityError, NotFoundError, ShardvaultError, UnavailableError, ValidationError } from '../errors.ts';
import { createMeter } from '../formats/hashing.ts';
import { describeShard } from '../jobs/operation.ts';
import { repositoryOf } from '../repository/repository.ts';
import type { VerifyReport } from './contract.ts';
import { globalManifestKey, globalManifestSchema, nodeManifestKey, nodeManifestSchema, type GlobalManifest, type NodeManifest } from './manifest.ts';
import type { z } from 'zod';

type VerifyProblem = VerifyReport['problems'][number];

/** Largest manifest read into memory (as in manifest.ts: schemas and shard lists only). */
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

/**
 * Runs a whole read again when it fails part-way for a transient reason (a connection reset
 * mid-body: the backend's own retries only cover starting a read). A failure that outlasts the
 * retries is UnavailableError (503), never an unnamed error.
 */
async function retried<T>(backend: Backend, key: string, options: CallOptions, read: () => Promise<T>): Promise<T> {
  try {
    return await withRetry(read, { attempts: 3, signal: options.signal, label: `verify ${key}` });
  } catch (err) {
    if (err instanceof ShardvaultError) throw err;
    throw new UnavailableError(`reading ${backend.locate(key)} failed: ${describeError(err)}`, { cause: err });
  }
}

/** The bytes of an object, or undefined when it does not exist. */
function readBytes(backend: Backend, key: string, options: CallOptions): Promise<Buffer | undefined> {
  return retried(backend, key, options, () => readAll(backend, key, options));
}

/** The object's stream, or undefined when it does not exist. */
async function openIfExists(backend: Backend, key: string, options: CallOptions) {
  try {
    return await backend.read(key, options);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

async function readAll(backend: Backend, key: string, options: CallOptions): Promise<Buffer | undefined> {
  const stream = await openIfExists(backend, key, options);
  return stream && readSmall(stream, MAX_MANIFEST_BYTES, `${key} (not a manifest)`);
}

/** sha256 and size of an object, streamed; undefined when it does not exist. */
function measure(backend: Backend, key: string, options: CallOptions): Promise<{ sha256: string; bytes: number } | undefined> {
  return retried(backend, key, options, () => measureOnce(backend, key, options));
}

async function measureOnce(backend: Backend, key: string, options: CallOptions): Promise<{ sha256: string; bytes: number } | undefined> {
  const stream = await openIfExists(backend, key, options);
  if (!stream) return undefined;
  const meter = createMeter();
  // The meter hashes the bytes as they pass; the sink keeps none of them.
  await pipeline(stream, meter, new Writable({ write: (_chunk, _encoding, done) => done() }));
  return { sha256: meter.digest(), bytes: meter.bytes };
}

/** A format-2 snapshot checked to the last chunk (each blob read once); answers the damage found, if any. */
async function replaySnapshot(backend: Backend, key: string, where: string, options: CallOptions): Promise<string | undefined> {
  try {
    await repositoryOf(backend).rebuild(key, where, options);
    return undefined;
  } catch (err) {
    if (err instanceof NotFoundError) return 'missing';
    if (err instanceof IntegrityError) return err.message;
    throw err;
  }
}

const sha256 = (body: Buffer): string => createHash('sha256').update(body).digest('hex');

function parse<T>(body: Buffer, schema: z.ZodType<T>): { value?: T; problem?: string } {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (err) {
    return { problem: `not valid JSON: ${(err as Error).message}` };
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    return { problem: `not a valid manifest: ${issue.path.join('.') || 'body'}: ${issue.message}` };
  }
  return { value: result.data };
}

/**
 * Verify backup `id` in `backend`; see the module comment for what is checked.
 *
 * @param name  the backend's name as the caller asked for it, echoed in the answer.
 */
export async function verifyBackup(backend: Backend, name: BackendName, id: string, options: CallOptions = {}): Promise<VerifyReport> {
  const problems: VerifyProblem[] = [];
  let objects = 0;
  let bytesRead = 0;
  const report = (): VerifyReport => ({ id, backend: name, status: problems.length ? 'CORRUPT' : 'OK', objects, bytes: bytesRead, problems });

  const configKey = globalManifestKey(id);
  const configBody = await readBytes(backend, configKey, options);
  if (!configBody) throw new NotFoundError(`backup ${JSON.stringify(id)} not found in backend ${name} (${backend.locate(id)})`);
  objects++;
  bytesRead += configBody.length;
  const parsedConfig = parse(configBody, globalManifestSchema);
  if (!parsedConfig.value) {
    problems.push({ key: configKey, problem: parsedConfig.problem! });
    return report();
  }
  const config: GlobalManifest = parsedConfig.value;
  if (config.id !== id) problems.push({ key: configKey, problem: `names backup ${JSON.stringify(config.id)}, not ${JSON.stringify(id)}` });
  if (config.status !== 'SUCCESS') {
    throw new ValidationError(`backup ${JSON.stringify(id)} has status ${config.status}; only a SUCCESS backup can be verified`);
  }

  // The node manifests, each checked against the sha256 and size backup_config.json recorded.
  const manifests = new Map<string, NodeManifest>();
  for (const node of config.nodes) {
    const entry = config.nodeManifests[node];
    const expectedKey = nodeManifestKey(id, node);
    if (!entry) {
      problems.push({ key: expectedKey, problem: `backup_config.json lists no manifest for node ${node}` });
      continue;
    }
    if (entry.key !== expectedKey) {
      problems.push({ key: configKey, problem: `the manifest of node ${node} is recorded as ${JSON.stringify(entry.key)}, not ${expectedKey}` });
      continue;
    }
    const body = await readBytes(backend, entry.key, options);
    if (!body) {
      problems.push({ key: entry.key, problem: 'missing' });
      continue;
    }
    objects++;
    bytesRead += body.length;
    const actual = sha256(body);
    if (actual !== entry.sha256) {
      problems.push({ key: entry.key, problem: `checksum mismatch: expected sha256 ${entry.sha256}, got ${actual}` });
    } else if (body.length !== entry.bytes) {
      problems.push({ key: entry.key, problem: `size mismatch: expected ${entry.bytes} bytes, got ${body.length}` });
    }
    const parsed = parse(body, nodeManifestSchema);
    if (!parsed.value) {
      problems.push({ key: entry.key, problem: parsed.problem! });
      continue;
    }
    if (parsed.value.node !== node || parsed.value.id !== id) {
      problems.push({ key: entry.key, problem: `describes node ${parsed.value.node} of backup ${parsed.value.id}, not node ${node} of ${id}` });
    }
    manifests.set(node, parsed.value);
  }
  for (const node of Object.keys(config.nodeManifests)) {
    if (!config.nodes.includes(node)) problems.push({ key: configKey, problem: `lists a manifest for ${node}, which is not one of its nodes` });
  }

  // Structure: every listed class is described, every placed shard has exactly one object.
  const described = new Set([...manifests.values()].flatMap((m) => m.indexes.map((i) => i.name)));
  for (const cls of config.classes) {
    if (manifests.size === config.nodes.length && !described.has(cls)) {
      problems.push({ key: configKey, problem: `class ${cls} is described by no node manifest` });
    }
  }
  const totals = { shards: 0, docs: 0, bytes: 0 };
  let fileBytes = 0;
  for (const [node, m] of manifests) {
    const manifestKey = nodeManifestKey(id, node);
    for (const index of m.indexes) {
      index.placement.forEach((placed, shard) => {
        if (placed !== node) return;
        const entries = m.shards.filter((s) => s.index === index.name && s.shard === shard);
        if (entries.length === 0) problems.push({ key: manifestKey, problem: `lists no object for shard ${index.name}/${shard}` });
        if (entries.length > 1) problems.push({ key: manifestKey, problem: `lists shard ${index.name}/${shard} ${entries.length} times` });
      });
    }
    for (const s of m.shards) {
      totals.shards++;
      totals.docs += s.docs;
      totals.bytes += s.bytes;
      fileBytes += s.file?.size ?? 0;
      if (!s.key.startsWith(`${id}/${node}/`)) {
        problems.push({ key: manifestKey, problem: `shard ${s.index}/${s.shard} points outside ${id}/${node}/: ${JSON.stringify(s.key)}` });
        continue;
      }
      const got = await measure(backend, s.key, options);
      if (!got) {
        problems.push({ key: s.key, problem: `missing (listed in ${manifestKey})` });
        continue;
      }
      objects++;
      bytesRead += got.bytes;
      if (got.sha256 !== s.sha256) {
        problems.push({ key: s.key, problem: `checksum mismatch: expected sha256 ${s.sha256}, got ${got.sha256}` });
      } else if (s.file) {
        // Format 2: the object is a snapshot; rebuild the file it names from the repository.
        const problem = await replaySnapshot(backend, s.key, `${describeShard({ node, index: s.index, shard: s.shard })} in backup ${id}`, options);
        bytesRead += s.file.size;
        if (problem) problems.push({ key: s.key, problem });
      } else if (got.bytes !== s.bytes) {
        problems.push({ key: s.key, problem: `size mismatch: expected ${s.bytes} bytes, got ${got.bytes}` });
      }
    }
  }
  if (manifests.size === config.nodes.length) {
    for (const field of ['shards', 'docs', 'bytes'] as const) {
      if (totals[field] !== config.totals[field]) {
        problems.push({ key: configKey, problem: `totals.${field} is ${config.totals[field]}; the node manifests add up to ${totals[field]}` });
      }
    }
    if (config.preCompressionSizeBytes !== undefined && config.preCompressionSizeBytes !== fileBytes) {
      problems.push({ key: configKey, problem: `preCompressionSizeBytes is ${config.preCompressionSizeBytes}; the node manifests' shard files add up to ${fileBytes}` });
    }
  }
  return report();
}
