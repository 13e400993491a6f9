/**
 * How deeply a JSON value (a request body, a document, a schema) may nest. The code that walks
 * documents and schemas (coercion, MessagePack encoding, schema merging) recurses once per
 * level, so a value nested a few thousand levels deep would overflow the stack: such values are
 * refused up front, with a ValidationError, by an iterative check that cannot overflow.
 */
import { ValidationError } from './errors.ts';

/** Deepest nesting accepted: objects and arrays inside each other, the outermost counting 1. */
export const MAX_NESTING = 64;

/**
 * Throws ValidationError when `value` nests objects/arrays deeper than `limit`. Its stacks hold
 * only containers, and their depths apart, so a batch of a thousand documents is checked
 * without an allocation per value.
 */
export function assertNesting(value: unknown, what: string, limit = MAX_NESTING): void {
  const containers: unknown[] = [value];
  const depths: number[] = [0];
  while (containers.length > 0) {
    const v = containers.pop();
    const depth = depths.pop()!;
    if (typeof v !== 'object' || v === null || v instanceof Date || ArrayBuffer.isView(v)) continue;
    if (depth + 1 > limit) throw new ValidationError(`${what} nests deeper than ${limit} levels`);
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child !== 'object' || child === null) continue;
      containers.push(child);
      depths.push(depth + 1);
    }
  }
}
