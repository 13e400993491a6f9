/**
 * Bounded work over many items (shared/concurrency.ts): what the list's manifest reads, the
 * garbage collector's reads and deletes and the buckets' batched deletes rely on.
 */
import { describe, expect, it } from 'vitest';
import { mapBounded } from '../../shared/concurrency.ts';

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('mapBounded', () => {
  it('answers every result in the items order, never running more than the limit at once', async () => {
    let running = 0;
    let most = 0;
    const items = Array.from({ length: 40 }, (_, i) => i);
    const results = await mapBounded(items, 4, async (n, i) => {
      running++;
      most = Math.max(most, running);
      // Later items finish sooner: the order of results must not follow the order of ends.
      await tick((40 - n) % 7);
      running--;
      return `${n}:${i}`;
    });
    expect(results).toEqual(items.map((n) => `${n}:${n}`));
    expect(most).toBe(4);
    expect(await mapBounded([], 4, async () => 1)).toEqual([]);
    expect(await mapBounded([1, 2], 0, async (n) => n * 2)).toEqual([2, 4]);
  });

  it('starts nothing after a failure, lets the started items end, and throws the first error', async () => {
    const started: number[] = [];
    const ended: number[] = [];
    const work = mapBounded(Array.from({ length: 20 }, (_, i) => i), 3, async (n) => {
      started.push(n);
      await tick(n === 4 ? 1 : 10);
      if (n === 4 || n === 5) throw new Error(`item ${n} failed`);
      ended.push(n);
      return n;
    });
    await expect(work).rejects.toThrow('item 4 failed');
    // 0, 1, 2 run; 3, 4 and 5 start as they end, and 4 fails before any of 3 and 5 ends:
    // nothing after 5 starts (5 itself only if the last of 0, 1, 2 ended before 4 failed).
    expect(started).toEqual(Array.from({ length: started.length }, (_, i) => i));
    expect(started.length).toBeGreaterThanOrEqual(5);
    expect(started.length).toBeLessThanOrEqual(6);
    // Everything started other than the failures ended before the error was thrown.
    expect(ended.sort((a, b) => a - b)).toEqual(started.filter((n) => n !== 4 && n !== 5).sort((a, b) => a - b));
  });
});
