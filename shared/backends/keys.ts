/**
 * Key rules shared by every backend. The filesystem is where a bad key becomes a security
 * problem; S3 and GCS apply the same rules so a backup written to one backend can be copied
 * to any other unchanged.
 */
import { randomUUID } from 'node:crypto';
import { ValidationError } from '../errors.ts';


/** Longest key accepted, in UTF-8 bytes (S3's limit, which includes the configured path). */
const MAX_KEY_BYTES = 1024;

/** Suffix of in-progress filesystem writes; keys may not end with it. */
export const TMP_SUFFIX = '.tmp';

/**
 * Throws ValidationError unless key is a `/`-separated relative path: non-empty, no leading
 * `/`, no drive letter, no backslash, no NUL or other control character, no empty, `.` or
 * `..` segment, not ending in `.tmp` (reserved for in-progress writes), at most 1024 bytes.
 */
export function validateKey(key: string, field = 'key'): void {
  if (typeof key !== 'string' || key.length === 0) {
    throw new ValidationError(`${field} must be a non-empty string`);
  }
  checkRelativePath(key, field, false);
  if (key.endsWith(TMP_SUFFIX)) {
    throw new ValidationError(`${field} ${quote(key)} must not end in "${TMP_SUFFIX}" (reserved for in-progress writes)`);
  }
}

/** Like validateKey, but the empty prefix (everything) and a trailing `/` are allowed. */
export function validatePrefix(prefix: string, field = 'prefix'): void {
  if (typeof prefix !== 'string') throw new ValidationError(`${field} must be a string`);
  if (prefix.length === 0) return;
  checkRelativePath(prefix, field, true);
}

/** A prefix whose directories are listed: empty (the root) or a valid prefix ending in `/`. */
export function validateDirectoryPrefix(prefix: string): void {
  validatePrefix(prefix);
  if (prefix.length > 0 && !prefix.endsWith('/')) throw new ValidationError(`prefix ${quote(prefix)} must end in "/" to list the directories under it`);
}

/**
 * Checks a relative, `/`-separated path (also used for `config.Path` overrides). With
 * allowTrailingSlash, `a/b/` is accepted; `a//b` never is.
 */
export function checkRelativePath(value: string, field: string, allowTrailingSlash: boolean): void {
  if (Buffer.byteLength(value, 'utf8') > MAX_KEY_BYTES) {
    throw new ValidationError(`${field} is longer than ${MAX_KEY_BYTES} bytes`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    throw new ValidationError(`${field} ${quote(value)} must not contain NUL or other control characters`);
  }
  if (value.includes('\\')) {
    throw new ValidationError(`${field} ${quote(value)} must not contain backslashes; use "/"`);
  }
  if (value.startsWith('/') || /^[A-Za-z]:/.test(value)) {
    throw new ValidationError(`${field} ${quote(value)} must be a relative path, not an absolute one`);
  }
  const segments = value.split('/');
  if (allowTrailingSlash && segments.length > 1 && segments.at(-1) === '') segments.pop();
  for (const segment of segments) {
    if (segment === '') throw new ValidationError(`${field} ${quote(value)} must not contain empty segments ("//")`);
    if (segment === '.' || segment === '..') {
      throw new ValidationError(`${field} ${quote(value)} must not contain "." or ".." segments`);
    }
  }
}

/** deletePrefix refuses the empty prefix: one wrong call must not empty a whole bucket or root. */
export function validateDeletePrefix(prefix: string): void {
  validatePrefix(prefix);
  if (prefix === '') throw new ValidationError('refusing to delete every object: prefix must not be empty');
}

/** A configured path as a key prefix: `a/b/` → `a/b/`, `/a/b` → `a/b/`, `` → ``. */
export function basePrefix(p: string): string {
  const trimmed = p.replace(/^\/+|\/+$/g, '');
  return trimmed ? `${trimmed}/` : '';
}

/** Sorts by the UTF-8 bytes of the key, the order S3 and GCS list in. */
export function sortByKey<T extends { key: string }>(items: T[]): T[] {
  const keyed = items.map((item) => ({ bytes: Buffer.from(item.key, 'utf8'), item }));
  keyed.sort((a, b) => Buffer.compare(a.bytes, b.bytes));
  return keyed.map((k) => k.item);
}

/** A value for an error message, JSON-quoted and cut short. */
export function quote(value: string): string {
  const s = JSON.stringify(value);
  return s.length > 120 ? `${s.slice(0, 117)}..."` : s;
}

/** A fresh, valid key for the marker object checkAccess writes and deletes. */
export function accessCheckKey(): string {
  return `.shardvault-access-check-${randomUUID()}`;
}
