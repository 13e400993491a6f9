/**
 * The parts of a bucket backend that are the same whatever the SDK under it: the access
 * check's round trip, collecting a paged listing, deleting what a listing found, and turning
 * an SDK's error into a named error. Each backend supplies only its SDK calls, and recognises
 * its SDK's error codes.
 */
import { Readable } from 'node:stream';
import { CancelledError, IntegrityError, NotFoundError, PermanentBackendError, ShardvaultError, UnavailableError } from '../errors.ts';
import type { Backend, CallOptions, ObjectInfo } from './backend.ts';
import { readSmall } from './bodies.ts';
import { sortByKey, validateDeletePrefix } from './keys.ts';
import { fallbackBackendError, isAbortError } from './retry.ts';
import { mapBounded } from '../concurrency.ts';

/**
 * Writes a marker object at key, reads it back and compares: what checkAccess proves beyond
 * "the bucket answers". Deleting the marker is the caller's (each backend deletes its own way).
 */
export async function markerRoundTrip(backend: Backend, key: string, options: CallOptions): Promise<void> {
  const payload = Buffer.from(`shardvault access check ${new Date().toISOString()}\n`);
  await backend.write(key, Readable.from([payload]), options);
  const back = await readSmall(await backend.read(key, options));
  if (!back.equals(payload)) {
    throw new IntegrityError(`${backend.name} access check read back ${back.length} bytes that differ from the marker written to ${backend.locate(key)}`);
  }
}

/** One page of a listing: the objects (full names under the bucket) and the next page's token. */
export interface ListPage {
  objects: { name: string | undefined; size: number }[];
  next: string | undefined;
}

/**
 * Every directory name of a paged delimiter listing (S3 CommonPrefixes, GCS prefixes: full
 * names under the bucket ending in `/`), relative to base + prefix, sorted.
 */
export async function collectDirectoryPages(
  base: string,
  prefix: string,
  page: (token: string | undefined) => Promise<{ prefixes: (string | undefined)[]; next: string | undefined }>,
): Promise<string[]> {
  const found = new Set<string>();
  let token: string | undefined;
  do {
    const { prefixes, next } = await page(token);
    for (const p of prefixes) {
      const name = p?.slice(base.length + prefix.length).replace(/\/$/, '');
      if (name) found.add(name);
    }
    token = next;
  } while (token);
  return [...found].sort();
}

/**
 * Every object of a paged listing whose names start with base, as keys relative to base in
 * the order S3 and GCS list in. "Folder" placeholders (`a/`), which consoles create, are not
 * objects of ours and are skipped.
 */
export async function collectPages(base: string, page: (token: string | undefined) => Promise<ListPage>): Promise<ObjectInfo[]> {
  const found: ObjectInfo[] = [];
  let token: string | undefined;
  do {
    const { objects, next } = await page(token);
    for (const { name, size } of objects) {
      const key = name?.slice(base.length);
      if (key && !key.endsWith('/')) found.push({ key, size });
    }
    token = next;
  } while (token);
  return sortByKey(found);
}

/**
 * deletePrefix over a bucket: list, then remove the keys in batches of `batch`, `concurrency`
 * batches at a time (S3 deletes up to 1000 keys a call; GCS one, so many calls in flight).
 * `remove` retries its own call; any failure is mapped by the backend and ends the deletion.
 */
export async function deleteListed(
  backend: Backend,
  prefix: string,
  options: CallOptions,
  how: { batch: number; concurrency: number; remove: (keys: string[]) => Promise<void>; mapError: (err: unknown) => ShardvaultError },
): Promise<number> {
  validateDeletePrefix(prefix);
  const keys = (await backend.list(prefix, options)).map((o) => o.key);
  const batches = Array.from({ length: Math.ceil(keys.length / how.batch) }, (_, b) => keys.slice(b * how.batch, (b + 1) * how.batch));
  try {
    await mapBounded(batches, how.concurrency, (batch) => how.remove(batch));
  } catch (err) {
    throw how.mapError(err);
  }
  return keys.length;
}

/** What a bucket backend's SDK error means, as the backend recognises it from its codes. */
export type BucketFault =
  | { fault: 'no-bucket' | 'not-found' }
  /** Credentials or policy refused the call; detail names the code or HTTP status. */
  | { fault: 'refused'; detail: string }
  /** The bucket is elsewhere (S3's region); detail says where it is not. */
  | { fault: 'misplaced'; detail: string }
  /** The server found the bytes' checksum wrong; detail says which. */
  | { fault: 'checksum'; detail: string }
  /** The request was abandoned because nothing moved on it for the request timeout; detail says how long and which setting. */
  | { fault: 'silent'; detail: string };

export interface BucketDescription {
  name: Backend['name'];
  bucket: string;
  /** Where the bucket is served from (`AWS region …`, `emulator …`), for messages. */
  endpoint: string;
  /** What an operator should check when a call is refused. */
  refusedHint: string;
  locate(key: string): string;
}

/**
 * An SDK error as a named error: shardvault's own pass, an abort is a cancel, a fault the
 * backend recognised gets its message, anything else is transient (retried) or permanent.
 */
export function bucketError(
  b: BucketDescription,
  err: unknown,
  what: string,
  ctx: { key?: string; prefix?: string; signal?: AbortSignal | undefined },
  recognise: (err: unknown) => BucketFault | undefined,
): ShardvaultError {
  if (err instanceof ShardvaultError) return err;
  if (ctx.signal?.aborted || isAbortError(err)) return new CancelledError(`${b.name} ${what} was cancelled`, { cause: err });
  const found = recognise(err);
  switch (found?.fault) {
    case 'no-bucket':
      return new PermanentBackendError(`${b.name} bucket "${b.bucket}" does not exist (${b.endpoint})`, { cause: err });
    case 'not-found':
      return new NotFoundError(`object not found: ${b.locate(ctx.key ?? '')}`);
    case 'refused':
      return new PermanentBackendError(`${b.name} ${what} was refused for bucket "${b.bucket}" (${found.detail}, ${b.endpoint}): ${b.refusedHint}`, { cause: err });
    case 'misplaced':
      return new PermanentBackendError(`${b.name} bucket "${b.bucket}" ${found.detail}`, { cause: err });
    case 'checksum':
      return new IntegrityError(`${b.name} ${what}${ctx.key ? ` (${b.locate(ctx.key)})` : ''}: ${found.detail}`, { cause: err });
    case 'silent':
      return new UnavailableError(`${b.name} ${what} (${b.locate(ctx.key ?? ctx.prefix ?? '')}) was abandoned: ${found.detail}`, { cause: err });
    default:
      return fallbackBackendError(err, `${b.name} ${what} (${b.locate(ctx.key ?? ctx.prefix ?? '')})`, ctx.signal);
  }
}
