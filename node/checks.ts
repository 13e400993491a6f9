/**
 * What a node checks of every internal request before it acts: a body against its schema,
 * and that the index (by name and uid) and the shard a request names are this node's to serve.
 * A node whose copy of the metadata holds another index of that name (dropped and recreated
 * since) answers NotFoundError rather than touch the wrong one; a shard placed on another node
 * is refused naming both, so a caller whose CLUSTER_NODES points a name at the wrong host
 * cannot write into it.
 */
import type { z } from 'zod';
import { NotFoundError, ValidationError } from '../shared/errors.ts';
import type { IndexRecord, Store } from '../shared/store/store.ts';

/** `value` as `schema` describes it, or a ValidationError naming `what` and the first problem. */
export function checked<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ValidationError(`${what}: ${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  return parsed.data;
}

/** The index as `node`'s metadata holds it, if it is the one the caller means (`uid`). */
export function indexHere(store: Store, node: string, name: string, uid: string): IndexRecord {
  const rec = store.getIndex(name);
  if (!rec || rec.uid !== uid) throw new NotFoundError(`index ${name} (uid ${uid}) is not in node ${node}'s metadata: it was deleted or recreated`);
  return rec;
}

/** `what` must be placed on `node` (this node). */
export function assertPlacedHere(node: string, placed: string | undefined, what: string): void {
  if (placed !== node) throw new ValidationError(`${what} is placed on node ${placed ?? '(none)'}, not on node ${node} (this node)`);
}

/** The shards of `rec` placed on `node`. */
export function shardsHere(node: string, rec: IndexRecord): number[] {
  return rec.placement.flatMap((holder, shard) => (holder === node ? [shard] : []));
}
