import { describe, expect, it } from 'vitest';
import { jsonBytes, parseJsonBytes, PIECE } from '../../api/json.ts';
import { jsonText } from '../../shared/store/schema.ts';

/** A deterministic pseudo-random source, so a failure names a reproducible case. */
function random(seed: number): () => number {
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

const STRINGS = ['', 'plain', 'quote " inside', 'back\\slash', 'ends in backslash \\', '\\"', 'ü é 日本 🚀', 'line\nbreak\ttab', '{[,:]}', '\u0000\u001f'];

/** A JSON value with nested objects and arrays of every kind of member. */
function value(next: () => number, depth: number): unknown {
  const pick = Math.floor(next() * (depth > 3 ? 5 : 8));
  if (pick === 0) return STRINGS[Math.floor(next() * STRINGS.length)]! + 'x'.repeat(Math.floor(next() * 40));
  if (pick === 1) return Math.floor(next() * 1e6) / (next() < 0.5 ? 1 : 7);
  if (pick === 2) return next() < 0.5;
  if (pick === 3) return null;
  if (pick === 4) return -1e-7;
  if (pick === 5 || pick === 6) {
    const o: Record<string, unknown> = {};
    for (let k = Math.floor(next() * 6); k > 0; k--) o[STRINGS[Math.floor(next() * STRINGS.length)]! + k] = value(next, depth + 1);
    return o;
  }
  return Array.from({ length: Math.floor(next() * 6) }, () => value(next, depth + 1));
}

/** JSON text of `v` with spaces, tabs and newlines wherever JSON allows them. */
function spaced(v: unknown, next: () => number): string {
  const ws = () => [' ', '\n', '\t', '\r\n', ''][Math.floor(next() * 5)]!;
  if (Array.isArray(v)) return `[${ws()}${v.map((x) => spaced(x, next) + ws()).join(`,${ws()}`)}]`;
  if (v && typeof v === 'object') return `{${ws()}${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}${ws()}:${ws()}${spaced(x, next)}`).join(`,${ws()}`)}${ws()}}`;
  return JSON.stringify(v);
}

describe('parseJsonBytes: a large body parsed in pieces', () => {
  it('gives what JSON.parse gives, whatever the piece size and the spacing', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const next = random(seed);
      const text = `${[' ', '\n', ''][seed % 3]}${spaced({ objects: Array.from({ length: 20 }, () => value(next, 0)), more: value(next, 0) }, next)} `;
      const bytes = Buffer.from(text);
      for (const piece of [8, 64, 512]) expect(parseJsonBytes(bytes, piece), `seed ${seed}, piece ${piece}`).toEqual(JSON.parse(text));
    }
  });

  it('keeps the order of members, the last of duplicate keys, and __proto__ as an own member', () => {
    const text = '{"b": [1, 2], "a": {"x": "y"}, "b": [3, {"__proto__": {"polluted": true}, "k": 1}], "__proto__": {"polluted": true}}';
    const parsed = parseJsonBytes(Buffer.from(text), 4) as Record<string, unknown>;
    expect(Object.keys(parsed)).toEqual(Object.keys(JSON.parse(text)));
    expect(parsed).toEqual(JSON.parse(text));
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
    expect(Object.hasOwn(parsed, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf((parsed.b as Record<string, unknown>[])[1])).toBe(Object.prototype);
  });

  it('refuses what is not plain JSON (the caller then parses it whole, trailing commas and errors alike)', () => {
    for (const text of ['{"objects": [1, 2, ], "a": 1}', '{"objects": [1, 2], }', '{"a" 1, "b": [1, 2, 3]}', '[1, 2 3, 4, 5]', '{"a": [1, 2, 3, 4]', '["unterminated, 1, 2, 3]', '{"a": [1, 2, 3]} x']) {
      expect(() => parseJsonBytes(Buffer.from(text), 4), text).toThrow();
      expect(() => JSON.parse(text), text).toThrow();
    }
  });

  it('parses members longer than two pieces that are not containers (a long string) in place', () => {
    const long = `${'ü'.repeat(70_000)} "quoted" ${'x'.repeat(80_000)}`;
    const text = JSON.stringify({ objects: [{ a: 1 }, long, { b: [long, 2] }, 3], long });
    expect(parseJsonBytes(Buffer.from(text))).toEqual(JSON.parse(text));
  });

  it('parses a body below the piece size as one string', () => {
    expect(PIECE).toBeGreaterThanOrEqual(16 * 1024);
    expect(parseJsonBytes(Buffer.from(' {"a": [1, "b"]}\n'))).toEqual({ a: [1, 'b'] });
  });
});

describe('jsonBytes: an answer written value by value', () => {
  it("is byte for byte jsonText's answer, for arrays, objects and what JSON leaves out or turns to null", () => {
    const when = new Date('2026-12-04T10:00:00Z');
    const cases: unknown[] = [
      [{ a: 1, skip: undefined, fn: () => 1, when }, undefined, () => 1, Symbol('s'), null, [1, [2, [3]]], 'ü 🚀 "q"'],
      { objects: [{ id: 1 }, undefined, [[1]]], skip: undefined, nested: { deeper: [1, 2] }, when, empty: [], text: 'é' },
      { data: new Uint8Array([1, 2, 255]), list: [{ bytes: new Uint8Array([7]) }] },
      [],
      {},
      'a string',
      42,
      null,
      { toJSON: () => ({ replaced: true }) },
    ];
    for (let seed = 1; seed <= 100; seed++) cases.push(value(random(seed), 0));
    for (const v of cases) expect(jsonBytes(v).toString(), JSON.stringify(v)).toBe(jsonText(v));
  });

  it('writes an answer larger than a piece whole', () => {
    const objects = Array.from({ length: 300 }, (_, i) => ({ id: i, text: `ü ${i} `.repeat(100) }));
    const bytes = jsonBytes({ objects });
    expect(bytes.byteLength).toBeGreaterThan(PIECE);
    expect(bytes.toString()).toBe(JSON.stringify({ objects }));
  });
});
