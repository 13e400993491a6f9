/**
 * How deeply a JSON value (a request body, a document, a schema) may nest. The code that walks
 * documents and schemas (coercion, MessagePack encoding, schema merging) recurses once per
 * level, so a value nested a few thousand levels deep would overflow the stack: such values are
 * refused up front, with a ValidationError, by an iterative check that cannot overflow.
 */
import { ValidationError } from './errors.ts';

/** Deepest nesting accepted: objects and arrays inside each other, the outermost counting 1. */
export const MAX_NESTING = 64;

/** Throws ValidationError when `value` nests objects/arrays deeper than `limit`. */
export function assertNesting(value: unknown, what: string, limit = MAX_NESTING): void {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null || v instanceof Date || ArrayBuffer.isView(v)) continue;
    if (depth + 1 > limit) throw new ValidationError(`${what} nests deeper than ${limit} levels`);
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
}
