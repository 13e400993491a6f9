/**
 * Byte ranges as flat (offset, length) pairs in ascending order, as they travel to the blob
 * pool's threads (a list of numbers, not of objects).
 */

/** Add the range (offset, length) after the last of `ranges`, as part of it when it starts where that one ends. */
export function appendRange(ranges: number[], offset: number, length: number): void {
  const r = ranges.length;
  if (r > 0 && ranges[r - 2]! + ranges[r - 1]! === offset) ranges[r - 1]! += length;
  else ranges.push(offset, length);
}

/** The parts of `ranges` within [start, start + length), as pairs relative to start. */
export function rangesWithin(ranges: readonly number[], start: number, length: number): number[] {
  const out: number[] = [];
  const end = start + length;
  // The first range that ends after start (binary search over the pairs).
  let lo = 0;
  let hi = ranges.length / 2;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ranges[2 * mid]! + ranges[2 * mid + 1]! <= start) lo = mid + 1;
    else hi = mid;
  }
  for (let i = 2 * lo; i < ranges.length && ranges[i]! < end; i += 2) {
    const from = Math.max(ranges[i]!, start);
    const to = Math.min(ranges[i]! + ranges[i + 1]!, end);
    if (to > from) out.push(from - start, to - from);
  }
  return out;
}

/** buf (bytes from `start` of something) with the parts of `ranges` in it set to zero. */
export function zeroRanges(buf: Buffer, start: number, ranges: readonly number[]): Buffer {
  const within = rangesWithin(ranges, start, buf.length);
  for (let i = 0; i < within.length; i += 2) buf.fill(0, within[i], within[i]! + within[i + 1]!);
  return buf;
}

/** buf (bytes from `start` of something) without the parts of `ranges` in it. */
export function withoutRanges(buf: Buffer, start: number, ranges: readonly number[]): Buffer {
  const within = rangesWithin(ranges, start, buf.length);
  if (within.length === 0) return buf;
  const kept: Buffer[] = [];
  let from = 0;
  for (let i = 0; i < within.length; i += 2) {
    if (within[i]! > from) kept.push(buf.subarray(from, within[i]));
    from = within[i]! + within[i + 1]!;
  }
  if (from < buf.length) kept.push(buf.subarray(from));
  return Buffer.concat(kept);
}

/**
 * Of ranges of whole `chunk`-byte chunks, every chunk but each `every`-th of the file (chunk i
 * with i % every === 0 stays out of the result): what a snapshot leaves out of the chunks it says
 * are unchanged since a base, keeping a sample by which that account is checked.
 */
export function allButEvery(ranges: readonly number[], chunk: number, every: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < ranges.length; i += 2) {
    for (let at = ranges[i]!, end = at + ranges[i + 1]!; at < end; at += chunk) {
      if ((at / chunk) % every !== 0) appendRange(out, at, chunk);
    }
  }
  return out;
}
