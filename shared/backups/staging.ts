/**
 * Where a restore puts shards before they become visible (ARCHITECTURE.md §4):
 * `DATA_DIR/<node>/.staging/<backend>.<backup id>/<index>/<shard>/`. Index names never start with `.`,
 * so the staging area can never clash with an index directory. The commit renames each staged
 * shard directory to `DATA_DIR/<node>/<index>/<shard>/` and only then publishes the indexes;
 * a failed or cancelled restore deletes its staging area on every node.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { OperationRef } from '../jobs/operation.ts';

const STAGING_DIR = '.staging';

function stagingRoot(dataDir: string, node: string, restore: OperationRef): string {
  return path.join(dataDir, node, STAGING_DIR, `${restore.backend}.${restore.id}`);
}

export function stagedShardDir(dataDir: string, restore: OperationRef, node: string, index: string, shard: number): string {
  return path.join(stagingRoot(dataDir, node, restore), index, String(shard));
}

/** Delete a restore's staging area on the given nodes (and the `.staging` dirs left empty). */
export async function removeStaging(dataDir: string, restore: OperationRef, nodes: readonly string[]): Promise<void> {
  for (const node of new Set(nodes)) {
    await fs.promises.rm(stagingRoot(dataDir, node, restore), { recursive: true, force: true });
    await fs.promises.rmdir(path.join(dataDir, node, STAGING_DIR)).catch(() => undefined);
  }
}
