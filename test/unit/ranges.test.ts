/**
 * Byte ranges as flat (offset, length) pairs (shared/formats/ranges.ts): what a span of a
 * snapshot holds as zeros, and what a node leaves out of a snapshot asked against a base.
 */
import { describe, expect, it } from 'vitest';
import { allButEvery, rangesWithin, withoutRanges, zeroRanges } from '../../shared/formats/ranges.ts';

describe('byte ranges', () => {
  const ranges = [10, 5, 20, 10, 100, 1];

  it('clips the ranges to a window, relative to its start', () => {
    expect(rangesWithin(ranges, 0, 200)).toEqual(ranges);
    expect(rangesWithin(ranges, 12, 10)).toEqual([0, 3, 8, 2]);
    expect(rangesWithin(ranges, 25, 80)).toEqual([0, 5, 75, 1]);
    expect(rangesWithin(ranges, 15, 5)).toEqual([]);
    expect(rangesWithin(ranges, 101, 50)).toEqual([]);
    expect(rangesWithin([], 0, 10)).toEqual([]);
  });

  it('sets the parts of a buffer that ranges cover to zero, the buffer standing at an offset', () => {
    const buf = zeroRanges(Buffer.alloc(20, 1), 8, ranges);
    expect([...buf]).toEqual([1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('leaves the parts of a buffer that ranges cover out, the buffer standing at an offset', () => {
    const buf = Buffer.from(Array.from({ length: 20 }, (_, i) => i + 8));
    expect([...withoutRanges(buf, 8, ranges)]).toEqual([8, 9, 15, 16, 17, 18, 19]);
    expect(withoutRanges(buf, 200, ranges)).toBe(buf);
  });

  it('keeps every every-th chunk of the file out of the chunks to leave out', () => {
    // Chunks of 4 bytes; chunks 0-5 and 8-9 unchanged; every third chunk (0, 3, 6, 9) is kept as a sample.
    expect(allButEvery([0, 24, 32, 8], 4, 3)).toEqual([4, 8, 16, 8, 32, 4]);
    expect(allButEvery([0, 8], 4, 1)).toEqual([]);
    expect(allButEvery([], 4, 32)).toEqual([]);
  });
});
