import type { Readable } from 'node:stream';

/** The names a request may use; `gcp` is accepted as an alias of `gcs`. */
export const BACKEND_NAMES = ['filesystem', 's3', 'gcs'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface ObjectInfo {
  /** Key relative to the backend's root (bucket + path), `/`-separated. */
  key: string;
  size: number;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface ReadOptions extends CallOptions {
  /** Only these bytes of the object (`length` bytes from `start`); the whole object without. */
  range?: { start: number; length: number };
}

/**
 * Where backups live. Keys are `/`-separated and relative to the backend's root
 * (`<bucket or root>/<path>`). Every implementation passes test/backends.conformance.test.ts.
 *
 * - write streams the body; the object becomes visible only when the whole body is stored
 *   (filesystem: `*.tmp` then rename; S3: multipart upload completed last; GCS: resumable
 *   upload finalised last). An aborted or failed write leaves nothing visible.
 * - read streams the object, or one byte range of it; a missing key rejects with NotFoundError.
 * - transient failures are retried inside the call; permanent ones reject with an error
 *   whose message names the cause (never a credential).
 */
export interface Backend {
  readonly name: BackendName;
  /** Human-readable location of a key, e.g. `s3://bucket/path/<key>` or an absolute file path. */
  locate(key: string): string;
  /**
   * Where an object lies as a file on this host, and its size, for a backend that keeps objects
   * as files (filesystem): it may be read there in place, by any thread. A missing object
   * rejects with NotFoundError, as read does.
   */
  localFile?(key: string, options?: CallOptions): Promise<{ path: string; size: number }>;
  write(key: string, body: Readable, options?: CallOptions): Promise<{ bytes: number }>;
  read(key: string, options?: ReadOptions): Promise<Readable>;
  list(prefix: string, options?: CallOptions): Promise<ObjectInfo[]>;
  /**
   * The names of the "directories" directly under `prefix` (which is empty or ends in `/`):
   * the next path segment of every key below it, sorted, each once, without reading what lies
   * deeper (S3 and GCS list with the delimiter `/`). What a backup listing needs when a
   * repository of many objects sits beside the backups.
   */
  listDirectories(prefix: string, options?: CallOptions): Promise<string[]>;
  /** Deletes every object whose key starts with prefix; answers how many were deleted. */
  deletePrefix(prefix: string, options?: CallOptions): Promise<number>;
  exists(key: string, options?: CallOptions): Promise<boolean>;
  /** Writes, reads back and deletes a marker object; rejects with the reason if any step fails. */
  checkAccess(options?: CallOptions): Promise<void>;
  /**
   * Removes what dead writes left under prefix and nobody will finish: the filesystem's `*.tmp`
   * files not written to for a while (a key written again cleans its own; content-addressed
   * keys are never written again). Answers how many. S3 and GCS have nothing to sweep: an
   * abandoned multipart upload or resumable session never becomes an object (a bucket
   * lifecycle rule expires the former).
   */
  sweepAbandonedWrites?(prefix: string, options?: CallOptions): Promise<number>;
}

/** Weaviate's per-request overrides (`config.Bucket`, `config.Path`). */
export interface BackendOverrides {
  bucket?: string;
  path?: string;
}
