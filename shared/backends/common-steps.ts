/**
 * The parts of a backend that are the same whatever the SDK under it: the access check's
 * round trip, and collecting a paged listing. Each backend supplies only its SDK calls.
 */
import { Readable } from 'node:stream';
import { IntegrityError } from '../errors.ts';
import type { Backend, CallOptions, ObjectInfo } from './backend.ts';
import { readSmall } from './bodies.ts';
import { sortByKey } from './keys.ts';

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
