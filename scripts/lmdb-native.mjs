#!/usr/bin/env node
/**
 * Builds lmdb's native addon from the C sources the lmdb package ships, with one fix, into
 * node_modules/lmdb/build/Release (which lmdb loads before its prebuilt binaries). Run by
 * `npm ci`/`npm install` (postinstall) and by the Dockerfile; `--check` only says whether the
 * fixed build is in place (exit 1 if not). Why: docs/lmdb.md.
 *
 * The fix: lmdb 3.5.6's mdb_env_open2() stores the transaction id of the meta page it read into
 * the lock file's shared `mti_txnid` on every open, without the writer's mutex. A process that
 * opens an environment while another process commits to it can so set the id back; every later
 * writer then starts from the older meta page and either fails ("mdb_page_touch no parent") or
 * commits on top of it, losing acknowledged writes. Fixed: an open may only raise the id (the
 * first opener, which resets the lock file to 0, still sets it).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const LMDB_VERSION = '3.5.6';
const ORIGINAL = '\tif (env->me_txns)\n\t\tenv->me_txns->mti_txnid = meta.mm_txnid;\n\n#if MDB_DEBUG';
const FIXED =
  '\t/* shardvault: an open may only raise the shared txnid (docs/lmdb.md) */\n' +
  '\tif (env->me_txns && meta.mm_txnid > env->me_txns->mti_txnid)\n\t\tenv->me_txns->mti_txnid = meta.mm_txnid;\n\n#if MDB_DEBUG';

// lmdb's exports do not include its package.json: look where Node would look for the package.
const pkgDir = createRequire(import.meta.url)
  .resolve.paths('lmdb')
  .map((dir) => path.join(dir, 'lmdb'))
  .find((dir) => fs.existsSync(path.join(dir, 'package.json')));
if (!pkgDir) fail('lmdb is not installed (npm ci first)');
const mdbC = path.join(pkgDir, 'dependencies/lmdb/libraries/liblmdb/mdb.c');
const addon = path.join(pkgDir, 'build/Release/lmdb.node');
const stampFile = path.join(pkgDir, 'build/shardvault-fix.json');

function fail(message) {
  console.error(`lmdb-native: ${message}`);
  process.exit(1);
}

/** What the addon must have been built from, for this Node: compared with the stamp. */
function expectedStamp(source) {
  return JSON.stringify({ lmdb: LMDB_VERSION, abi: process.versions.modules, mdb: createHash('sha256').update(source).digest('hex') });
}

const version = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version;
if (version !== LMDB_VERSION) fail(`lmdb ${version} is installed; the fix is for ${LMDB_VERSION} (package.json pins it): review docs/lmdb.md before changing it`);
let source = fs.readFileSync(mdbC, 'utf8');
const built = fs.existsSync(addon) && fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8') === expectedStamp(source) && source.includes(FIXED);

if (process.argv.includes('--check')) {
  if (!built) fail(`${addon} is not the fixed build: run \`node scripts/lmdb-native.mjs\``);
  console.log('lmdb-native: the fixed build is in place');
  process.exit(0);
}
if (built) {
  console.log('lmdb-native: the fixed build is already in place');
  process.exit(0);
}
if (!source.includes(FIXED)) {
  if (source.split(ORIGINAL).length !== 2) fail(`${mdbC} does not hold the lines the fix replaces`);
  source = source.replace(ORIGINAL, FIXED);
  fs.writeFileSync(mdbC, source);
}

// npm gives its scripts the node-gyp it bundles; outside npm, find it beside npm itself.
const npmDir = process.env.npm_execpath ? path.resolve(path.dirname(process.env.npm_execpath), '..') : path.resolve(path.dirname(process.execPath), '../lib/node_modules/npm');
const nodeGyp = [process.env.npm_config_node_gyp, path.join(npmDir, 'node_modules/node-gyp/bin/node-gyp.js')].find((p) => p && fs.existsSync(p));
if (!nodeGyp) fail('node-gyp not found (it comes with npm): run this through npm, or set npm_config_node_gyp');
// The headers of the running Node, where its installation keeps them (no download).
const prefix = path.resolve(path.dirname(process.execPath), '..');
const nodedir = fs.existsSync(path.join(prefix, 'include/node/node_api.h')) ? [`--nodedir=${prefix}`] : [];
console.log(`lmdb-native: building lmdb ${LMDB_VERSION} with the fix (C compiler, make and Python needed; ~30 s)`);
try {
  // The compiler's many warnings about lmdb's sources are not ours to read: shown only on failure.
  execFileSync(process.execPath, [nodeGyp, 'rebuild', ...nodedir], { cwd: pkgDir, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
} catch (err) {
  console.error(`${err.stdout ?? ''}${err.stderr ?? ''}`.slice(-8000));
  fail('building lmdb failed (above); on Debian: apt-get install build-essential python3');
}
fs.writeFileSync(stampFile, expectedStamp(source));
console.log(`lmdb-native: built ${addon}`);
