/**
 * Whether the lmdb in use is the build with shardvault's fix (scripts/lmdb-native.mjs,
 * docs/lmdb.md): lmdb 3.5.6's own binaries can lose acknowledged writes when one process opens
 * an environment while another commits to it, and every data directory here is shared by
 * several processes (API processes, workers, the CLI). A Store refuses to open without it.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ConfigError } from '../errors.ts';

/** The lmdb package's directory, where Node finds it (its exports do not include package.json). */
export function lmdbDir(): string {
  const found = createRequire(import.meta.url)
    .resolve.paths('lmdb')
    ?.map((dir) => path.join(dir, 'lmdb'))
    .find((dir) => fs.existsSync(path.join(dir, 'package.json')));
  if (!found) throw new ConfigError('the lmdb package is not installed (npm ci)');
  return found;
}

/** Why the lmdb package in `dir` is not the fixed build for the running Node, if it is not. */
export function unfixedLmdb(dir: string): string | undefined {
  const stampFile = path.join(dir, 'build', 'shardvault-fix.json');
  if (!fs.existsSync(path.join(dir, 'build', 'Release', 'lmdb.node'))) return `${dir}/build/Release/lmdb.node is missing`;
  let abi: unknown;
  try {
    abi = (JSON.parse(fs.readFileSync(stampFile, 'utf8')) as { abi?: unknown }).abi;
  } catch {
    return `${stampFile} is missing or unreadable`;
  }
  return abi === process.versions.modules ? undefined : `it was built for another Node (ABI ${String(abi)}, this one is ${process.versions.modules})`;
}

let checked = false;

export function assertFixedLmdb(): void {
  if (checked) return;
  const problem = unfixedLmdb(lmdbDir());
  if (problem) {
    throw new ConfigError(
      `lmdb's native addon is not shardvault's fixed build (${problem}): run \`node scripts/lmdb-native.mjs\` (npm ci runs it; it needs a C compiler, make and Python; docs/lmdb.md)`,
    );
  }
  checked = true;
}
