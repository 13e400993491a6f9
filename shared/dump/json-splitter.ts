/**
 * An incremental splitter for streamed JSON bodies: a top-level array (`[{…}, {…}]`) or a
 * sequence of top-level values (NDJSON, or values separated by any whitespace). Bytes go in
 * as they arrive; each complete element comes out parsed, so only one element is ever held.
 *
 * It scans bytes, not characters: every byte it looks at (`"`, `\`, brackets, `,`,
 * whitespace) is ASCII and can never be part of a multi-byte UTF-8 sequence, so a chunk may
 * end anywhere. Like Xapiand (whose documented examples have them), it accepts trailing
 * commas, inside elements and before the array's closing `]`.
 */
import { BadRequestError, PayloadTooLargeError } from '../errors.ts';
import { BACKSLASH, CLOSE_BRACE, CLOSE_BRACKET, COMMA, isSpace, NEWLINE, OPEN_BRACE, OPEN_BRACKET, QUOTE } from '../json-bytes.ts';

const COMMA_BYTES = Buffer.from(',');

export interface JsonSplitterOptions {
  /** Largest single element, in bytes; a bigger one is refused (413). Default: no limit. */
  maxElementBytes?: number;
}

type Mode = 'start' | 'array' | 'sequence' | 'done';

export class JsonSplitter {
  /** Elements emitted so far. */
  count = 0;
  #maxBytes: number;
  #mode: Mode = 'start';
  /** Inside an element: nesting depth (0 while in a top-level scalar or string). */
  #depth = 0;
  #inElement = false;
  #inScalar = false;
  #inString = false;
  #escape = false;
  /** A comma inside an element, held back until we know it is not a trailing one. */
  #pendingComma = false;
  /** Where that comma is in the current chunk; -1 once the chunk it was in has been stored without it. */
  #commaAt = -1;
  /** In array mode: a value is expected (after `[` or `,`), so `,` or `]` would be early. */
  #expectValue = true;
  #sawComma = false;
  #parts: Buffer[] = [];
  #partsBytes = 0;
  #line = 1;
  /** Bytes skipped at the very start that may be a UTF-8 byte order mark. */
  #bomSeen = 0;

  constructor(options: JsonSplitterOptions = {}) {
    this.#maxBytes = options.maxElementBytes ?? Number.POSITIVE_INFINITY;
  }

  /** Feed bytes; answers the elements completed in them, parsed. */
  push(chunk: Uint8Array): unknown[] {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const out: unknown[] = [];
    let segStart = this.#inElement ? 0 : -1;
    const len = buf.length;
    for (let i = 0; i < len; i++) {
      const b = buf[i]!;
      if (this.#inString) {
        if (this.#escape) this.#escape = false;
        else if (b === BACKSLASH) this.#escape = true;
        else if (b === QUOTE) {
          this.#inString = false;
          if (this.#depth === 0) {
            out.push(this.#finish(buf, segStart, i + 1));
            segStart = -1;
          }
        }
        continue;
      }
      if (this.#inElement) {
        if (this.#inScalar) {
          if (isSpace(b) || b === COMMA || b === CLOSE_BRACKET || b === CLOSE_BRACE) {
            out.push(this.#finish(buf, segStart, i));
            segStart = -1;
            // fall through: the byte belongs to the top level
          } else continue;
        } else {
          if (isSpace(b)) {
            if (b === NEWLINE) this.#line++;
            continue;
          }
          if (this.#pendingComma) {
            this.#pendingComma = false;
            if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
              // A trailing comma: leave it out of the element's text.
              if (this.#commaAt >= 0) {
                this.#addPart(buf.subarray(segStart, this.#commaAt));
                segStart = this.#commaAt + 1;
              }
            } else if (this.#commaAt < 0) {
              this.#addPart(COMMA_BYTES); // it was left out at the end of the previous chunk
            }
          }
          if (b === QUOTE) this.#inString = true;
          else if (b === OPEN_BRACE || b === OPEN_BRACKET) this.#depth++;
          else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
            if (--this.#depth === 0) {
              out.push(this.#finish(buf, segStart, i + 1));
              segStart = -1;
            }
          } else if (b === COMMA) {
            this.#pendingComma = true;
            this.#commaAt = i;
          }
          continue;
        }
      }
      // Top level, between elements.
      if (isSpace(b)) {
        if (b === NEWLINE) this.#line++;
        continue;
      }
      switch (this.#mode) {
        case 'start':
          if (this.#skipBom(b)) continue;
          if (b === OPEN_BRACKET) {
            this.#mode = 'array';
            continue;
          }
          this.#mode = 'sequence';
          break;
        case 'array':
          if (b === CLOSE_BRACKET) {
            if (this.#sawComma && this.#expectValue && this.count === 0) this.#fail('a "," before any element');
            this.#mode = 'done';
            continue;
          }
          if (b === COMMA) {
            if (this.#expectValue) this.#fail('an unexpected ","');
            this.#expectValue = true;
            this.#sawComma = true;
            continue;
          }
          if (!this.#expectValue) this.#fail(`${describe(b)} where "," or "]" was expected`);
          this.#expectValue = false;
          break;
        case 'sequence':
          if (b === COMMA || b === CLOSE_BRACKET || b === CLOSE_BRACE) this.#fail(`an unexpected ${describe(b)}`);
          break;
        case 'done':
          this.#fail(`${describe(b)} after the array's closing "]"`);
      }
      // An element starts here.
      this.#inElement = true;
      segStart = i;
      if (b === OPEN_BRACE || b === OPEN_BRACKET) this.#depth = 1;
      else if (b === QUOTE) this.#inString = true;
      else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) this.#fail(`an unexpected ${describe(b)}`);
      else this.#inScalar = true;
    }
    if (this.#inElement && segStart >= 0) {
      if (this.#pendingComma && this.#commaAt >= 0) {
        // Keep the comma out until the next chunk tells whether it is a trailing one.
        this.#addPart(buf.subarray(segStart, this.#commaAt));
        this.#commaAt = -1;
      } else this.#addPart(buf.subarray(segStart));
    }
    return out;
  }

  /** The body has ended: answers a last top-level scalar, or refuses an unfinished body. */
  end(): unknown[] {
    if (this.#inElement) {
      if (this.#inScalar) return [this.#finish(Buffer.alloc(0), 0, 0)];
      this.#fail('the end of the body inside an element (truncated body?)');
    }
    if (this.#mode === 'array') this.#fail('the end of the body before the array\'s closing "]" (truncated body?)');
    return [];
  }

  #skipBom(b: number): boolean {
    const bom = [0xef, 0xbb, 0xbf];
    if (this.#bomSeen < 3 && b === bom[this.#bomSeen]) {
      this.#bomSeen++;
      return true;
    }
    return false;
  }

  #addPart(part: Buffer): void {
    if (part.length === 0) return;
    // Copy: the caller's chunk may be reused once push() returns.
    this.#parts.push(Buffer.from(part));
    this.#partsBytes += part.length;
    if (this.#partsBytes > this.#maxBytes) this.#tooLarge();
  }

  #finish(buf: Buffer, start: number, end: number): unknown {
    let text: string;
    if (this.#parts.length === 0) {
      if (end - start > this.#maxBytes) this.#tooLarge();
      text = buf.toString('utf8', start, end);
    } else {
      if (end > start) this.#parts.push(buf.subarray(start, end));
      const size = this.#partsBytes + (end - start);
      if (size > this.#maxBytes) this.#tooLarge();
      text = Buffer.concat(this.#parts, size).toString('utf8');
    }
    this.#parts = [];
    this.#partsBytes = 0;
    this.#inElement = false;
    this.#inScalar = false;
    this.#depth = 0;
    this.count++;
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new BadRequestError(`malformed JSON in element ${this.count - 1} (line ${this.#line}): ${(err as Error).message}`);
    }
  }

  #tooLarge(): never {
    throw new PayloadTooLargeError(
      `element ${this.count} (line ${this.#line}) is larger than the limit of ${this.#maxBytes} bytes for one document`,
    );
  }

  #fail(what: string): never {
    throw new BadRequestError(`malformed JSON body: ${what} at line ${this.#line}, after ${this.count} elements`);
  }
}

function describe(b: number): string {
  return b >= 0x20 && b < 0x7f ? JSON.stringify(String.fromCharCode(b)) : `byte 0x${b.toString(16)}`;
}

/** Parsed elements of a streamed JSON array or JSON sequence (NDJSON), one at a time. */
export async function* parseJsonStream(
  source: AsyncIterable<Uint8Array>,
  options: JsonSplitterOptions = {},
): AsyncGenerator<unknown> {
  const splitter = new JsonSplitter(options);
  for await (const chunk of source) {
    yield* splitter.push(chunk);
  }
  yield* splitter.end();
}
