/**
 * Where a restore puts shards before they become visible (ARCHITECTURE.md §4):
 * `DATA_DIR/<node>/.staging/<restoreKey>/<index>/<shard>/`. Index names never start with `.`,
 * so the staging area can never clash with an index directory. The commit renames each staged
 * shard directory to `DATA_DIR/<node>/<index>/<shard>/` and only then publishes the indexes;
 * a failed or cancelled restore deletes its staging area on every node.
 */
import fs from 'node:fs';
import path from 'node:path';

const STAGING_DIR = '.staging';

function stagingRoot(dataDir: string, node: string, restoreKey: string): string {
  return path.join(dataDir, node, STAGING_DIR, restoreKey);
}

export function stagedShardDir(dataDir: string, node: string, restoreKey: string, index: string, shard: number): string {
  return path.join(stagingRoot(dataDir, node, restoreKey), index, String(shard));
}

/** Delete a restore's staging area on the given nodes (and the `.staging` dirs left empty). */
export async function removeStaging(dataDir: string, nodes: readonly string[], restoreKey: string): Promise<void> {
  for (const node of new Set(nodes)) {
    await fs.promises.rm(stagingRoot(dataDir, node, restoreKey), { recursive: true, force: true });
    await fs.promises.rmdir(path.join(dataDir, node, STAGING_DIR)).catch(() => undefined);
  }
}
