/**
 * Reading request bodies with a size limit, and parsing JSON the way Xapiand does
 * (trailing commas are accepted: its documentation's own examples have them).
 */
import type { Context } from 'hono';
import { BadRequestError, PayloadTooLargeError } from '../shared/errors.ts';
import { assertNesting } from '../shared/nesting.ts';
import { parseJsonBytes, PIECE } from './json.ts';

/** Remove commas that stand directly before `}` or `]`, outside strings. */
function stripTrailingCommas(text: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (inString) {
      out += ch;
      if (ch === '\\') out += text[++i] ?? '';
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    if (ch === ',') {
      let j = i + 1;
      while (j < text.length && /\s/.test(text[j]!)) j++;
      if (text[j] === '}' || text[j] === ']') continue;
    }
    out += ch;
  }
  return out;
}

/** A JSON body; one that nests deeper than MAX_NESTING is refused (422) before anything walks it. */
function parseJson(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    try {
      value = JSON.parse(stripTrailingCommas(text));
    } catch (err) {
      throw new BadRequestError(`malformed JSON body: ${(err as Error).message}`);
    }
  }
  assertNesting(value, 'the JSON body');
  return value;
}

/**
 * The raw body, refusing more than `limit` bytes without reading it all first. A body of a
 * declared length (Node's parser delivers exactly that many bytes) is read in one go by the
 * server adapter, straight from Node's request; only a chunked body goes through a stream,
 * counted as it arrives.
 */
export async function readBytes(c: Context, limit: number): Promise<Buffer> {
  const tooLarge = (size: number | string) => new PayloadTooLargeError(`request body of ${size} bytes is larger than the limit of ${limit} bytes`);
  const declared = c.req.header('content-length');
  if (declared !== undefined && /^\d+$/.test(declared)) {
    if (Number(declared) > limit) throw tooLarge(declared);
    const bytes = Buffer.from(await c.req.raw.arrayBuffer());
    // Outside Node's parser (an in-process request) the header is only a claim: check it.
    if (bytes.byteLength > limit) throw tooLarge(bytes.byteLength);
    return bytes;
  }
  const body = c.req.raw.body;
  if (!body) return Buffer.alloc(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new PayloadTooLargeError(`request body is larger than the limit of ${limit} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/**
 * A JSON body (an empty body is `undefined`). curl's default form content type is read as
 * JSON too, as `curl -d '{…}'` is how most people try an API; other types are refused.
 */
export async function readJson(c: Context, limit: number): Promise<unknown> {
  const type = c.req.header('content-type');
  if (type && !/^(application\/(json|[\w.+-]+\+json|x-www-form-urlencoded)|text\/plain)\b/i.test(type)) {
    throw new BadRequestError(`expected a JSON body (content-type application/json), got ${JSON.stringify(type)}`);
  }
  const bytes = await readBytes(c, limit);
  if (bytes.byteLength > PIECE) {
    let value: unknown;
    try {
      value = parseJsonBytes(bytes);
    } catch {
      // Not plain JSON: parsed whole below, which explains the error or accepts trailing commas.
    }
    if (value !== undefined) {
      assertNesting(value, 'the JSON body');
      return value;
    }
  }
  const text = bytes.toString('utf8');
  if (text.trim() === '') return undefined;
  return parseJson(text);
}
