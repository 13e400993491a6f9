/**
 * The online dump and restore of an index's documents (`POST /{index}/:dump`,
 * `POST /{index}/:restore`) without HTTP: bytes out in a chosen format, bytes in restored.
 *
 * | format    | dump writes                                  | restore reads                          |
 * |-----------|----------------------------------------------|----------------------------------------|
 * | `json`    | one JSON array (indented with `pretty`)       | a JSON array, or JSON values one after another |
 * | `ndjson`  | one JSON document per line                    | the same as `json`                      |
 * | `msgpack` | one MessagePack map per document, back to back | MessagePack values back to back (an array counts as its elements) |
 * | `dump`    | the dump file (the codec, docs/formats.md §2)  | a dump file: verified in full first, then applied |
 *
 * Whatever format is announced, a body that starts with the dump file's magic bytes is read as
 * a dump file, so `@twitter.msgpack` written by `shardvault --dump` restores with
 * `Content-Type: application/x-msgpack` as Xapiand's documentation shows.
 */
import { looksLikeDump, DUMP_MAGIC } from '../formats/dump-codec.ts';
import type { ClusterData } from '../cluster/data.ts';
import { peekBytes } from './byte-streams.ts';
import { dumpIndex, encodeDump, indexDocuments } from './dump-index.ts';
import { jsonArrayChunks, ndjsonChunks } from './json-chunks.ts';
import { parseJsonStream } from './json-splitter.ts';
import { msgpackChunks, parseMsgpackStream } from './msgpack-stream.ts';
import { restoreDocuments, type RestoreResult } from './restore-documents.ts';
import { restoreDumpStream } from './restore-dump.ts';

export type DocumentFormat = 'json' | 'ndjson' | 'msgpack' | 'dump';

/** Every document of `index` as bytes of `format`; throws NotFoundError before any byte for an unknown index. */
export async function dumpDocuments(
  data: ClusterData,
  index: string,
  format: DocumentFormat,
  options: { pretty?: boolean } = {},
): Promise<AsyncIterable<Uint8Array>> {
  const rec = await data.requireIndex(index);
  switch (format) {
    case 'json':
      return jsonArrayChunks(indexDocuments(data, rec), options);
    case 'ndjson':
      return ndjsonChunks(indexDocuments(data, rec));
    case 'msgpack':
      return msgpackChunks(indexDocuments(data, rec));
    case 'dump':
      return encodeDump(await dumpIndex(data, index, 'docs'));
  }
}

export interface RestoreStreamOptions {
  /** Largest single document accepted, in bytes (413 beyond); the body as a whole has no limit. */
  maxDocumentBytes?: number;
  /** Documents per write batch; default 1000. */
  batchSize?: number;
  signal?: AbortSignal;
  /** Where a dump file is spooled before it is verified and applied; default the system's temporary directory. */
  spoolDir?: string;
}

/**
 * Restore the documents of a streamed body into `index`, in batches, holding one batch at a
 * time. JSON, NDJSON and MessagePack documents are written as they arrive: a body that breaks
 * off stops the restore (400) after what was already written. A dump file is spooled, verified
 * in full and only then applied, so a bad one changes nothing.
 */
export async function restoreStream(
  data: ClusterData,
  index: string,
  format: DocumentFormat,
  body: AsyncIterable<Uint8Array>,
  options: RestoreStreamOptions = {},
): Promise<RestoreResult> {
  const { head, stream } = await peekBytes(body, DUMP_MAGIC.length);
  if (format === 'dump' || looksLikeDump(head)) {
    const { header: _header, trailer: _trailer, ...result } = await restoreDumpStream(data, index, stream, { signal: options.signal, tmpDir: options.spoolDir });
    return result;
  }
  const limit = { maxElementBytes: options.maxDocumentBytes, maxValueBytes: options.maxDocumentBytes };
  const docs = format === 'msgpack' ? parseMsgpackStream(stream, limit) : parseJsonStream(stream, limit);
  return restoreDocuments(data, index, docs, { batchSize: options.batchSize, signal: options.signal });
}
