/**
 * Documents out as JSON text, streamed in chunks of about 64 KiB: a JSON array (indented
 * with `pretty`, as Xapiand's `?pretty`) or NDJSON, one document per line. Stored values that
 * JSON has no type for are written as schema.toJson writes them (dates as ISO-8601 strings).
 */
import { jsonText as stringify } from '../store/schema.ts';

const CHUNK_CHARS = 64 * 1024;

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
