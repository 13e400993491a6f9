/** Byte ranges as flat (offset, length) pairs (shared/formats/ranges.ts): what a span of a snapshot holds as zeros. */
import { describe, expect, it } from 'vitest';
import { rangesWithin, zeroRanges } from '../../shared/formats/ranges.ts';

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
});
