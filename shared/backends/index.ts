import path from 'node:path';
import type { Config } from '../config.ts';
import { ValidationError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { BACKEND_NAMES, type Backend, type BackendName, type BackendOverrides } from './backend.ts';
import { FilesystemBackend } from './filesystem.ts';
import { checkRelativePath } from './keys.ts';
import { GcsBackend } from './gcs.ts';
import { S3Backend } from './s3.ts';

export type { Backend, BackendName, BackendOverrides, CallOptions, ObjectInfo } from './backend.ts';
export { BACKEND_NAMES } from './backend.ts';
export { FilesystemBackend } from './filesystem.ts';
export { GcsBackend } from './gcs.ts';
export { isTransientError, withRetry } from './retry.ts';
export { S3Backend } from './s3.ts';

/** The variable that enables each optional backend, for error messages. */
const ENABLING_VARIABLE: Record<Exclude<BackendName, 'filesystem'>, string> = {
  s3: 'BACKUP_S3_BUCKET',
  gcs: 'BACKUP_GCS_BUCKET',
};

/**
 * A backend name from a URL or CLI argument: `filesystem`, `s3`, `gcs`, or `gcp` (an alias of
 * `gcs`, as in Weaviate's docs), case-insensitive. Anything else is a ValidationError (422).
 */
export function parseBackendName(name: string): BackendName {
  const lower = typeof name === 'string' ? name.trim().toLowerCase() : '';
  if (lower === 'gcp') return 'gcs';
  const found = BACKEND_NAMES.find((n) => n === lower);
  if (found) return found;
  throw new ValidationError(`unknown backend ${JSON.stringify(String(name))}; use filesystem, s3 or gcs`);
}

/** Backends whose settings are present, in BACKEND_NAMES order; filesystem always is. */
export function enabledBackends(config: Config['backends']): BackendName[] {
  return BACKEND_NAMES.filter((n) => n === 'filesystem' || config[n] !== undefined);
}

/** What a request called its overrides, for the errors that name them. */
export interface OverrideNames {
  bucket: string;
  path: string;
}
/** Weaviate's names, in a create or restore body. */
const BODY_NAMES: OverrideNames = { bucket: 'config.Bucket', path: 'config.Path' };
/** The query parameters of status, list and cancel. */
export const QUERY_NAMES: OverrideNames = { bucket: '?bucket=', path: '?path=' };

/**
 * Overrides checked for backend `name` (a ValidationError naming the override as `names` say),
 * normalised as the backend uses them: Weaviate's per-request `config.Bucket` and `config.Path`.
 * - s3/gcs: `bucket` replaces the configured bucket (it must be a valid bucket name);
 *   `path` replaces the configured path prefix (leading/trailing `/` ignored; no `.`/`..`).
 * - filesystem: `bucket` is rejected (there are no buckets; silently ignoring it would write
 *   somewhere the caller did not ask for); `path` names a subdirectory of
 *   BACKUP_FILESYSTEM_PATH and must be relative — a request can never write outside the
 *   configured root.
 * Empty strings count as "not given".
 */
export function checkOverrides(name: string, overrides: BackendOverrides, names: OverrideNames = BODY_NAMES): BackendOverrides {
  const backend = parseBackendName(name);
  const bucket = optionalString(overrides.bucket, names.bucket);
  const given = optionalString(overrides.path, names.path);
  if (backend === 'filesystem') {
    if (bucket !== undefined) {
      throw new ValidationError(`${names.bucket}: the filesystem backend has no buckets; use ${names.path} for a subdirectory of BACKUP_FILESYSTEM_PATH`);
    }
    if (given !== undefined) checkRelativePath(given, names.path, true);
    return given === undefined ? {} : { path: given };
  }
  const validBucket = backend === 's3' ? validateS3Bucket : validateGcsBucket;
  return {
    ...(bucket === undefined ? {} : { bucket: validBucket(bucket, names.bucket) }),
    ...(given === undefined ? {} : { path: cloudPath(given, names.path) }),
  };
}

/**
 * The Backend for a request. Throws ValidationError (422) for an unknown name, a backend that is
 * not configured (`backend "s3" is not enabled: set BACKUP_S3_BUCKET`) or a bad override
 * (checkOverrides).
 */
export function createBackend(
  name: BackendName,
  config: Config['backends'],
  overrides: BackendOverrides = {},
  logger?: Logger,
): Backend {
  const backend = parseBackendName(name);
  const log = logger?.child({ backend });
  switch (backend) {
    case 'filesystem': {
      const checked = checkOverrides(backend, overrides);
      const root = checked.path === undefined ? config.filesystem.path : path.join(config.filesystem.path, ...checked.path.split('/').filter(Boolean));
      return new FilesystemBackend({ root, logger: log });
    }
    case 's3': {
      const s3 = config.s3;
      if (!s3) throw notEnabled('s3');
      const checked = checkOverrides(backend, overrides);
      return new S3Backend({ ...s3, bucket: checked.bucket ?? s3.bucket, path: checked.path ?? s3.path, logger: log });
    }
    case 'gcs': {
      const gcs = config.gcs;
      if (!gcs) throw notEnabled('gcs');
      const checked = checkOverrides(backend, overrides);
      return new GcsBackend({ ...gcs, bucket: checked.bucket ?? gcs.bucket, path: checked.path ?? gcs.path, logger: log });
    }
  }
}

function notEnabled(name: Exclude<BackendName, 'filesystem'>): ValidationError {
  return new ValidationError(`backend "${name}" is not enabled: set ${ENABLING_VARIABLE[name]}`);
}

function optionalString(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw new ValidationError(`${field} must be a string`);
  return value;
}

/** A path override for a bucket: `/a/b/` → `a/b`; `.`/`..` segments, `\`, NUL are refused. */
function cloudPath(value: string, field: string): string {
  const trimmed = value.replace(/^\/+|\/+$/g, '');
  if (trimmed !== '') checkRelativePath(trimmed, field, false);
  return trimmed;
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** S3 bucket naming rules (general purpose buckets): 3-63 of a-z 0-9 . -, letter/digit at both ends. */
function validateS3Bucket(bucket: string, field: string): string {
  const ok =
    /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) &&
    !bucket.includes('..') &&
    !bucket.includes('.-') &&
    !bucket.includes('-.') &&
    !IPV4.test(bucket) &&
    !bucket.startsWith('xn--');
  if (!ok) {
    throw new ValidationError(
      `${field}: ${JSON.stringify(bucket)} is not a valid s3 bucket name ` +
        '(3-63 lowercase letters, digits, "." and "-", beginning and ending with a letter or digit)',
    );
  }
  return bucket;
}

/**
 * GCS bucket naming rules: 3-63 of a-z 0-9 - _ . (up to 222 when dotted, each part at most 63),
 * letter/digit at both ends, no `..`, not an IP address, no `goog` prefix or `google` inside.
 */
function validateGcsBucket(bucket: string, field: string): string {
  const ok =
    /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(bucket) &&
    (bucket.includes('.') ? bucket.split('.').every((p) => p.length > 0 && p.length <= 63) : bucket.length <= 63) &&
    !IPV4.test(bucket) &&
    !bucket.startsWith('goog') &&
    !bucket.includes('google');
  if (!ok) {
    throw new ValidationError(
      `${field}: ${JSON.stringify(bucket)} is not a valid gcs bucket name ` +
        '(3-63 lowercase letters, digits, "-", "_" and ".", beginning and ending with a letter or digit)',
    );
  }
  return bucket;
}
