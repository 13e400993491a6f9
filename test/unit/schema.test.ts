import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.ts';
import { coerceDocument, coerceScalar, emptySchema, mergeSchema, normalizeSchema, toJson } from '../../shared/store/schema.ts';

describe('schema coercion', () => {
  it('turns a datetime string into a Date, naive times read as UTC', () => {
    const v = coerceScalar('datetime', '2016-11-15T13:12:00', 'postDate') as Date;
    expect(v).toBeInstanceOf(Date);
    expect(v.toISOString()).toBe('2016-11-15T13:12:00.000Z');
    expect((coerceScalar('datetime', '2016-11-15 13:12:00+02:00', 'd') as Date).toISOString()).toBe('2016-11-15T11:12:00.000Z');
  });

  it('refuses an integer _id of "abc" with a 422 naming the field', () => {
    const schema = normalizeSchema({ _id: { _type: 'integer' } });
    try {
      coerceDocument(schema, { _id: 'abc' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as Error).message).toBe('field _id: expected an integer, got "abc"');
    }
  });

  it('coerces numeric strings to the declared numeric type', () => {
    const schema = normalizeSchema({ _id: 'integer', n: 'integer', f: 'floating', p: 'positive', b: 'boolean' });
    const { doc } = coerceDocument(schema, { _id: '7', n: '-3', f: '1.5', p: 4, b: 'true' });
    expect(doc).toEqual({ _id: 7, n: -3, f: 1.5, p: 4, b: true });
    expect(() => coerceDocument(schema, { _id: 1, p: -1 })).toThrow('field p: expected a positive integer, got -1');
    expect(() => coerceDocument(schema, { _id: 1, f: 'x1' })).toThrow('field f: expected a floating-point number');
  });

  it('validates dates, uuids and nested objects with dotted field paths', () => {
    const schema = normalizeSchema({ d: 'date', u: 'uuid', user: { name: { _type: 'keyword' }, born: { _type: 'date' } } });
    const { doc } = coerceDocument(schema, {
      _id: 'a', d: '2020-02-29', u: 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', user: { name: 'k', born: '1990-01-01' },
    });
    expect(doc.u).toBe('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
    expect(() => coerceDocument(schema, { _id: 'a', d: '2021-02-29' })).toThrow('field d: expected a date');
    expect(() => coerceDocument(schema, { _id: 'a', user: { born: 'yesterday' } })).toThrow('field user.born: expected a date');
    expect(() => coerceDocument(schema, { _id: 'a', u: 'nope' })).toThrow('field u: expected a uuid');
  });

  it('types unknown fields from their first value and reports the grown schema', () => {
    const { doc, schema } = coerceDocument(emptySchema(), {
      _id: 1, user: 'Kronuz', postDate: '2016-11-15T13:12:00', n: 2, f: 2.5, ok: false, tags: ['a'], at: { x: 1 },
    });
    expect(schema).toMatchObject({
      _id: { _type: 'integer' }, user: { _type: 'text' }, postDate: { _type: 'datetime' }, n: { _type: 'integer' },
      f: { _type: 'floating' }, ok: { _type: 'boolean' }, tags: { _type: 'array' }, at: { _type: 'object', x: { _type: 'integer' } },
    });
    expect(doc.postDate).toBeInstanceOf(Date);
    expect(coerceDocument(schema!, { _id: 2, user: 'x' }).schema).toBeUndefined();
  });

  it('refuses values that have no field type, naming the field', () => {
    expect(() => coerceDocument(emptySchema(), { _id: 1, x: null })).toThrow('field x: null values have no field type');
    expect(() => coerceDocument(emptySchema(), { _id: 1, _secret: 1 })).toThrow('field _secret: names starting with "_" are reserved');
    expect(() => coerceDocument(emptySchema(), [1])).toThrow('a document must be a JSON object');
    expect(() => coerceDocument(emptySchema(), { x: 1 })).toThrow('field _id: a document needs an _id');
  });

  it('refuses unknown field types in a schema', () => {
    expect(() => normalizeSchema({ x: { _type: 'blob' } })).toThrow('schema field x: unknown type "blob"');
    expect(() => normalizeSchema({ _id: { _type: 'object' } })).toThrow('schema field _id: type "object" is not allowed');
    expect(normalizeSchema({ x: { _type: 'array/integer' } }).x).toEqual({ _type: 'array/integer' });
  });

  it('never changes a field type once set', () => {
    const a = normalizeSchema({ postDate: 'datetime', user: { name: 'keyword' } });
    expect(() => mergeSchema(a, normalizeSchema({ postDate: 'text' }))).toThrow('field postDate is datetime; its type cannot change to text');
    expect(() => mergeSchema(a, normalizeSchema({ user: { name: 'integer' } }))).toThrow('field user.name is keyword');
    expect(mergeSchema(a, normalizeSchema({ extra: 'integer' })).extra).toEqual({ _type: 'integer' });
  });

  it('renders stored values as JSON', () => {
    expect(toJson({ d: new Date('2016-11-15T13:12:00Z'), a: [new Date(0)] })).toEqual({ d: '2016-11-15T13:12:00.000Z', a: ['1970-01-01T00:00:00.000Z'] });
  });
});
