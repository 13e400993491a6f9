import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { open } from 'lmdb';
import { afterAll, describe, expect, it } from 'vitest';
import { assertFixedLmdb, lmdbDir, unfixedLmdb } from '../../shared/store/lmdb-build.ts';
import { ROOT } from '../support/process.ts';
import { tempDir } from '../support/temp.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('the fixed lmdb build (docs/lmdb.md)', () => {
  it('is the addon this process runs, built from the fixed source', async () => {
    expect(() => assertFixedLmdb()).not.toThrow();
    const db = open({ path: path.join(tmp.dir, 'probe.mdb') });
    await db.put('k', 'v');
    // The shared object the process maps is the one built here, not a prebuilt binary.
    const mapped = fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => /lmdb.*\.node$/.test(l)).map((l) => l.split(/\s+/).pop());
    // (The kernel names it by its real path: node_modules may be a symbolic link.)
    expect([...new Set(mapped)]).toEqual([fs.realpathSync(path.join(lmdbDir(), 'build/Release/lmdb.node'))]);
    await db.close();
    const source = fs.readFileSync(path.join(lmdbDir(), 'dependencies/lmdb/libraries/liblmdb/mdb.c'), 'utf8');
    expect(source).toContain('if (env->me_txns && meta.mm_txnid > env->me_txns->mti_txnid)');
    expect(execFileSync(process.execPath, ['scripts/lmdb-native.mjs', '--check'], { cwd: ROOT, encoding: 'utf8' })).toMatch(/fixed build is in place/);
  });

  it('refuses a package without the build, or built for another Node, saying why', () => {
    const dir = path.join(tmp.dir, 'lmdb');
    fs.mkdirSync(path.join(dir, 'build', 'Release'), { recursive: true });
    expect(unfixedLmdb(dir)).toMatch(/build\/Release\/lmdb\.node is missing/);
    fs.writeFileSync(path.join(dir, 'build', 'Release', 'lmdb.node'), '');
    expect(unfixedLmdb(dir)).toMatch(/shardvault-fix\.json is missing/);
    fs.writeFileSync(path.join(dir, 'build', 'shardvault-fix.json'), JSON.stringify({ abi: '1' }));
    expect(unfixedLmdb(dir)).toMatch(/built for another Node \(ABI 1, this one is \d+\)/);
    fs.writeFileSync(path.join(dir, 'build', 'shardvault-fix.json'), JSON.stringify({ abi: process.versions.modules }));
    expect(unfixedLmdb(dir)).toBeUndefined();
  });
});
