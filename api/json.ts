/**
 * JSON of large request bodies and answers, made without one large string.
 *
 * V8 keeps every string longer than 128 KiB in its large-object space, each in memory freshly
 * mapped from the kernel and unmapped by the next collection, so each of its pages is faulted
 * in anew: on this project's machines that made decoding a 1 MB body 3.3 ms (30 × the same
 * bytes decoded as strings of 10 KB), and JSON.stringify's result, built in parts, costs as
 * much again when it is flattened to be encoded. A batch of a thousand objects is a megabyte
 * each way. So a large body is parsed in pieces of at most PIECE bytes (young-generation
 * strings), and a large answer is written value by value into one buffer.
 */
import { BACKSLASH, CLOSE_BRACE, CLOSE_BRACKET, COLON, COMMA, isSpace, OPEN_BRACE, OPEN_BRACKET, QUOTE } from '../shared/json-bytes.ts';
import { jsonReady } from '../shared/store/schema.ts';

/** Bytes of JSON text parsed (or written) as one string, at most, where they can be split. */
export const PIECE = 64 * 1024;
/** How many levels of containers a large body is split into, at most: each level is one more scan of its bytes. */
const SPLIT_DEPTH = 3;

/** The body is not plain JSON this parser splits (a trailing comma, a syntax error): parse it whole. */
class Unsplittable extends Error {}

function skipSpace(b: Buffer, i: number, end: number): number {
  while (i < end && isSpace(b[i])) i++;
  return i;
}

/** Where the JSON value that starts at `i` ends (exclusive), scanning no further than `end`. */
function valueEnd(b: Buffer, i: number, end: number): number {
  let depth = 0;
  for (; i < end; i++) {
    const c = b[i]!;
    if (c === QUOTE) {
      // To the quote that closes the string: one preceded by an even number of backslashes.
      for (;;) {
        const q = b.indexOf(QUOTE, i + 1);
        if (q < 0 || q >= end) throw new Unsplittable();
        let k = q - 1;
        while (b[k] === BACKSLASH) k--;
        i = q;
        if ((q - 1 - k) % 2 === 0) break;
      }
      if (depth === 0) return i + 1;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth++;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      if (depth === 0) return i;
      if (--depth === 0) return i + 1;
    } else if (depth === 0 && (c === COMMA || c === COLON || isSpace(c))) {
      return i;
    }
  }
  if (depth !== 0) throw new Unsplittable();
  return i;
}

/** Copy `from`'s members into `to` in order; `__proto__` stays an own member, as JSON.parse makes it. */
function assignMembers(to: Record<string, unknown>, from: Record<string, unknown>): void {
  for (const key of Object.keys(from)) {
    if (key === '__proto__') Object.defineProperty(to, key, { value: from[key], writable: true, enumerable: true, configurable: true });
    else to[key] = from[key];
  }
}

/**
 * Room for a run of members and its brackets, reused, so that the run is decoded as one flat
 * string instead of being joined to them (which copies it again). A run is under two pieces
 * unless one of its members is a long string, which gets a buffer of its own.
 */
const scratch = Buffer.allocUnsafeSlow(PIECE * 2 + 2);

/** The text of `b[start, end)` between the bytes `open` and `close`. */
function bracketed(b: Buffer, start: number, end: number, open: number, close: number): string {
  const length = end - start + 2;
  const room = length <= scratch.length ? scratch : Buffer.allocUnsafe(length);
  room[0] = open;
  b.copy(room, 1, start, end);
  room[length - 1] = close;
  return room.toString('utf8', 0, length);
}

/**
 * The value of the JSON text in `b[start, end)`. A container larger than `piece` is scanned for
 * its members; runs of small members are parsed together, each large one on its own.
 */
function parseRange(b: Buffer, start: number, end: number, depth: number, piece: number): unknown {
  const open = b[start];
  if (end - start <= piece || depth >= SPLIT_DEPTH || (open !== OPEN_BRACE && open !== OPEN_BRACKET)) {
    return JSON.parse(b.toString('utf8', start, end));
  }
  const isObject = open === OPEN_BRACE;
  const last = end - 1;
  const close = isObject ? CLOSE_BRACE : CLOSE_BRACKET;
  if (b[last] !== close) throw new Unsplittable();
  const out: unknown[] | Record<string, unknown> = isObject ? {} : [];
  let runStart = -1;
  let runEnd = -1;
  const flushRun = () => {
    if (runStart < 0) return;
    const run = JSON.parse(bracketed(b, runStart, runEnd, open, close)) as unknown[] | Record<string, unknown>;
    if (Array.isArray(run)) for (const v of run) (out as unknown[]).push(v);
    else assignMembers(out as Record<string, unknown>, run);
    runStart = -1;
  };
  let i = skipSpace(b, start + 1, last);
  if (i === last) return out;
  for (;;) {
    const memberStart = i;
    let keyEnd = i;
    if (isObject) {
      if (b[i] !== QUOTE) throw new Unsplittable();
      keyEnd = valueEnd(b, i, last);
      i = skipSpace(b, keyEnd, last);
      if (b[i] !== COLON) throw new Unsplittable();
      i = skipSpace(b, i + 1, last);
    }
    const valueStart = i;
    const memberEnd = valueEnd(b, valueStart, last);
    if (memberEnd === valueStart) throw new Unsplittable();
    const v = b[valueStart];
    if (memberEnd - valueStart > piece && (v === OPEN_BRACE || v === OPEN_BRACKET)) {
      flushRun();
      const value = parseRange(b, valueStart, memberEnd, depth + 1, piece);
      if (Array.isArray(out)) out.push(value);
      else assignMembers(out, { [JSON.parse(b.toString('utf8', memberStart, keyEnd)) as string]: value });
    } else {
      if (runStart < 0) runStart = memberStart;
      runEnd = memberEnd;
      if (runEnd - runStart >= piece) flushRun();
    }
    i = skipSpace(b, memberEnd, last);
    if (i === last) break;
    if (b[i] !== COMMA) throw new Unsplittable();
    // A trailing comma leaves no member to read here: Unsplittable, and body.ts accepts it whole.
    i = skipSpace(b, i + 1, last);
  }
  flushRun();
  return out;
}

/**
 * The value of a JSON body, parsed in pieces of at most `piece` bytes where its containers
 * allow. Throws on anything but plain JSON (a syntax error, a trailing comma): the caller then
 * parses the whole text, which explains the error or accepts the comma.
 */
export function parseJsonBytes(bytes: Buffer, piece = PIECE): unknown {
  const start = skipSpace(bytes, 0, bytes.length);
  let end = bytes.length;
  while (end > start && isSpace(bytes[end - 1])) end--;
  return parseRange(bytes, start, end, 0, piece);
}

/** An object JSON.stringify writes member by member (no toJSON of its own, not a Date or a buffer). */
function writtenByMember(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return (proto === Object.prototype || proto === null) && typeof (v as { toJSON?: unknown }).toJSON !== 'function';
}

/** JSON text collected as pieces, then encoded into one buffer of its exact size. */
class TextSink {
  private readonly pieces: string[] = [];
  private chars = 0;

  write(text: string): void {
    this.pieces.push(text);
    this.chars += text.length;
  }

  /** Write `value` as JSON.stringify does; an array, or an object's array member, value by value. */
  value(value: unknown, depth: number): boolean {
    if (depth < 2 && Array.isArray(value)) {
      this.write('[');
      value.forEach((item, i) => {
        if (i > 0) this.write(',');
        if (!this.value(item, depth + 1)) this.write('null');
      });
      this.write(']');
      return true;
    }
    if (depth === 0 && writtenByMember(value)) {
      this.write('{');
      let first = true;
      for (const key of Object.keys(value)) {
        const member = value[key];
        const items = Array.isArray(member);
        const text = items ? '' : (JSON.stringify(member) as string | undefined);
        // undefined, a function, a symbol: left out, as JSON.stringify leaves them out.
        if (text === undefined) continue;
        this.write(`${first ? '' : ','}${JSON.stringify(key)}:`);
        first = false;
        if (items) this.value(member, depth + 1);
        else this.write(text);
      }
      this.write('}');
      return true;
    }
    const text = JSON.stringify(value) as string | undefined;
    if (text === undefined) return false;
    this.write(text);
    return true;
  }

  done(): Buffer<ArrayBuffer> {
    if (this.chars <= PIECE) return Buffer.from(this.pieces.join(''));
    let size = 0;
    for (const piece of this.pieces) size += Buffer.byteLength(piece);
    const bytes = Buffer.allocUnsafe(size);
    let at = 0;
    for (const piece of this.pieces) at += bytes.write(piece, at);
    return bytes;
  }
}

/** The bytes of the JSON array of these items' JSON texts, encoded item by item. */
export function jsonArrayBytes(items: readonly string[]): Buffer<ArrayBuffer> {
  const sink = new TextSink();
  sink.write('[');
  for (let i = 0; i < items.length; i++) {
    if (i > 0) sink.write(',');
    sink.write(items[i]!);
  }
  sink.write(']');
  return sink.done();
}

/**
 * The bytes of `JSON.stringify(value)` for stored values (binary as toJson's base64), written
 * value by value: an array's items, an object's members and the items of its array members
 * each as their own string.
 */
export function jsonBytes(value: unknown): Buffer<ArrayBuffer> {
  const sink = new TextSink();
  if (!sink.value(jsonReady(value), 0)) throw new TypeError('the value has no JSON text');
  return sink.done();
}
