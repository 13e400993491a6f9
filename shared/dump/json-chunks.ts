/**
 * Documents out as JSON text, streamed in chunks of about 64 KiB: a JSON array (indented
 * with `pretty`, as Xapiand's `?pretty`) or NDJSON, one document per line. Stored values that
 * JSON has no type for are written as schema.toJson writes them (dates as ISO-8601 strings).
 */
import { toJson } from '../store/schema.ts';

const CHUNK_CHARS = 64 * 1024;

/** True when a value holds binary data somewhere (JSON.stringify would not write it as toJson does). */
function hasBinary(value: unknown): boolean {
  if (value === null || typeof value !== 'object' || value instanceof Date) return false;
  if (value instanceof Uint8Array) return true;
  if (Array.isArray(value)) return value.some(hasBinary);
  for (const key in value) if (hasBinary((value as Record<string, unknown>)[key])) return true;
  return false;
}

/**
 * JSON text of a stored document. JSON.stringify already writes Dates as ISO-8601 (their
 * toJSON), the same as toJson; only binary needs toJson's base64, so only then is it used.
 */
function stringify(doc: unknown, indent?: number): string {
  return JSON.stringify(hasBinary(doc) ? toJson(doc) : doc, null, indent);
}

export async function* jsonArrayChunks(docs: AsyncIterable<unknown>, options: { pretty?: boolean } = {}): AsyncGenerator<Buffer> {
  const pretty = options.pretty === true;
  let text = '[';
  let first = true;
  for await (const doc of docs) {
    if (pretty) {
      const body = stringify(doc, 2).replace(/\n/g, '\n  ');
      text += `${first ? '\n  ' : ',\n  '}${body}`;
    } else {
      text += `${first ? '' : ','}${stringify(doc)}`;
    }
    first = false;
    if (text.length >= CHUNK_CHARS) {
      yield Buffer.from(text);
      text = '';
    }
  }
  text += pretty ? (first ? ']\n' : '\n]\n') : ']';
  yield Buffer.from(text);
}

export async function* ndjsonChunks(docs: AsyncIterable<unknown>): AsyncGenerator<Buffer> {
  let text = '';
  for await (const doc of docs) {
    text += `${stringify(doc)}\n`;
    if (text.length >= CHUNK_CHARS) {
      yield Buffer.from(text);
      text = '';
    }
  }
  if (text.length > 0) yield Buffer.from(text);
}
