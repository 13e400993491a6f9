/**
 * Work over many items with a bound on how much runs at once: reads of many small objects
 * (manifests, snapshots, index files) and batched deletes, where one at a time waits a round
 * trip per item and all at once floods the backend.
 */

/**
 * `fn` over every item, at most `limit` at once, in the items' order of starting; answers the
 * results in the items' order. After a failure no further item is started, and the first
 * error is thrown once the items already started have ended.
 */
export async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  let error: unknown;
  const run = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!, i);
      } catch (err) {
        if (!failed) error = err;
        failed = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, run));
  if (failed) throw error;
  return results;
}
