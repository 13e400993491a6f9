import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.ts';
import { assertNesting } from '../../shared/nesting.ts';

/** `depth` containers inside each other, objects and arrays taking turns, the innermost holding `leaf`. */
function nested(depth: number, leaf: unknown = 1): unknown {
  let v = leaf;
  for (let d = 0; d < depth; d++) v = d % 2 ? [0, 'x', v] : { a: null, b: v };
  return v;
}

describe('assertNesting', () => {
  it('accepts a value nested exactly to the limit and refuses one level more, naming it', () => {
    expect(() => assertNesting(nested(5), 'the body', 5)).not.toThrow();
    expect(() => assertNesting(nested(6), 'the body', 5)).toThrow(new ValidationError('the body nests deeper than 5 levels'));
    // The deepest branch counts, wherever it is among shallow ones.
    expect(() => assertNesting([1, { a: 2 }, [[[[[nested(1)]]]]], 'z'], 'x', 6)).toThrow(ValidationError);
    expect(() => assertNesting([1, { a: 2 }, [[[[nested(1)]]]], 'z'], 'x', 6)).not.toThrow();
  });

  it('counts neither scalars, Dates nor binary as a level', () => {
    expect(() => assertNesting(nested(3, new Date()), 'x', 3)).not.toThrow();
    expect(() => assertNesting(nested(3, Buffer.from('hi')), 'x', 3)).not.toThrow();
    expect(() => assertNesting('text', 'x', 0)).not.toThrow();
    expect(() => assertNesting({}, 'x', 0)).toThrow(ValidationError);
  });

  it('checks a value nested far deeper than the stack allows without overflowing', () => {
    expect(() => assertNesting(nested(200_000), 'x')).toThrow(ValidationError);
  });
});
