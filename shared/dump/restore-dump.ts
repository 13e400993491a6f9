/**
 * Restoring a dump file (`--restore`, or `:restore` of an `application/octet-stream` body)
 * into an index. The kind (meta, schema, docs) comes from the file's header.
 *
 * A dump is verified in full before anything is written: a first pass reads it to the end
 * through the codec, which checks the magic, the header, every item's framing, the record
 * count and the sha256 in the trailer; only a file that passes is read a second time and
 * applied. A bad header, a wrong checksum or a truncated body therefore changes nothing.
 * A stream (stdin, an HTTP body) is spooled to a temporary file first, for the same reason.
 * Compressed dumps (backup shard objects are gzip) are decompressed on the fly.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline as pipelineCallback, Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CancelledError, ConflictError, IntegrityError, ValidationError } from '../errors.ts';
import { decompressStream } from '../formats/compression.ts';
import { createDumpDecoder, type DumpHeader, type DumpTrailer, type MetaRecord } from '../formats/dump-codec.ts';
import { coerceDocument, emptySchema, type IndexSchema } from '../store/schema.ts';
import type { ClusterData } from '../cluster/data.ts';
import { restoreDocuments, type RestoreItemError, type RestoreResult } from './restore-documents.ts';

/** Metadata keys the store accepts (Store.putMetadata), checked before anything is written. */
const METADATA_KEY = /^[A-Za-z0-9_.-]{1,128}$/;

export type RestorePhase = 'verifying' | 'restoring';

export interface RestoreDumpOptions {
  /**
   * Refuse the whole restore when any document does not fit the target's schema (checked
   * during verification, so nothing is written). Default false: such documents are reported
   * and every other document is restored.
   */
  strict?: boolean;
  /** Bytes of the file read so far in each phase. */
  onProgress?(progress: { phase: RestorePhase; bytes: number; totalBytes: number; records: number }): void;
  /** Called for every refused document. */
  onRefused?(item: RestoreItemError): void;
  /** Refused documents listed in the result's `items`; default 1000. */
  maxItems?: number;
  signal?: AbortSignal;
}

export interface DumpRestoreResult extends RestoreResult {
  /** The header of the file that was restored (its `index` is the source index). */
  header: DumpHeader;
  trailer: DumpTrailer;
}

/** Counts bytes as they pass, for progress reports. */
class ByteCounter extends Transform {
  bytes = 0;
  constructor(private readonly report: (bytes: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.report(this.bytes);
    callback(null, chunk);
  }
}

/** Reads a dump file through decompression and the codec, handing each record to `onRecord`. */
async function readDumpFile(
  file: string,
  onRecord: (record: unknown, header: DumpHeader) => void,
  onBytes: (bytes: number) => void,
): Promise<{ header: DumpHeader; trailer: DumpTrailer }> {
  const decoder = createDumpDecoder();
  let header: DumpHeader | undefined;
  decoder.on('header', (h: DumpHeader) => {
    header = h;
  });
  await pipeline(createReadStream(file), new ByteCounter(onBytes), decompressStream(), decoder, async (records: AsyncIterable<unknown>) => {
    for await (const record of records) onRecord(record, header!);
  });
  return { header: await decoder.header, trailer: await decoder.trailer };
}

/** A refusal naming the first few documents, for `strict` restores. */
function strictRefusal(target: string, refused: RestoreItemError[], count: number): ValidationError {
  const shown = refused
    .slice(0, 5)
    .map((r) => `#${r.position}${r._id !== undefined ? ` (_id ${JSON.stringify(r._id)})` : ''}: ${r.error}`)
    .join('; ');
  return new ValidationError(
    `${count} document(s) do not fit the schema of index ${target}, so nothing was restored (strict): ${shown}${count > 5 ? '; …' : ''}`,
  );
}

/**
 * First pass: read the whole file and check it. Answers its header and trailer, or throws
 * IntegrityError (bad magic, header, framing, count, checksum, truncation) or ValidationError
 * (records that cannot be applied: a bad metadata key, a schema dump without exactly one
 * object, and with `strict` any document the target's schema refuses).
 */
async function verifyDumpFile(
  data: ClusterData,
  target: string,
  file: string,
  options: RestoreDumpOptions = {},
): Promise<{ header: DumpHeader; trailer: DumpTrailer }> {
  const totalBytes = (await fs.stat(file)).size;
  let records = 0;
  // Read before the pass: records are checked synchronously as the codec decodes them.
  let schema: IndexSchema | undefined;
  if (options.strict) {
    const rec = await data.getIndex(target);
    schema = rec ? await data.effectiveSchema(rec) : emptySchema();
  }
  const refused: RestoreItemError[] = [];
  let refusedCount = 0;
  const verified = await readDumpFile(
    file,
    (record, header) => {
      if (options.signal?.aborted) throw new CancelledError('the restore was cancelled');
      const position = records++;
      if (header.kind === 'meta') {
        const key = (record as MetaRecord).key;
        if (!METADATA_KEY.test(key)) throw new ValidationError(`metadata record ${position} has an invalid key ${JSON.stringify(key.slice(0, 140))}`);
      } else if (header.kind === 'schema') {
        if (position > 0) throw new IntegrityError('a schema dump must hold exactly one record');
      } else if (schema) {
        try {
          const coerced = coerceDocument(schema, record);
          if (coerced.schema) schema = coerced.schema;
        } catch (err) {
          refusedCount++;
          const id = (record as { _id?: unknown })._id;
          if (refused.length < 5) refused.push({ index: target, position, _id: id, status: 422, error: (err as Error).message });
        }
      }
    },
    (bytes) => options.onProgress?.({ phase: 'verifying', bytes, totalBytes, records }),
  );
  if (verified.header.kind === 'schema' && records !== 1) throw new IntegrityError('a schema dump must hold exactly one record');
  if (refusedCount > 0) throw strictRefusal(target, refused, refusedCount);
  return verified;
}

/** Create the target with the source's shard count when it does not exist yet. */
async function ensureTarget(data: ClusterData, target: string, header: DumpHeader): Promise<void> {
  if (await data.getIndex(target)) return;
  const shards = typeof header.shards === 'number' && Number.isInteger(header.shards) ? header.shards : undefined;
  try {
    await data.createIndex(target, { shards });
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err;
  }
}

/** Verify `file` in full, then apply it to `target` (see the module comment). */
export async function restoreDumpFile(
  data: ClusterData,
  target: string,
  file: string,
  options: RestoreDumpOptions = {},
): Promise<DumpRestoreResult> {
  const { header, trailer } = await verifyDumpFile(data, target, file, options);
  const totalBytes = (await fs.stat(file)).size;
  const progress = (bytes: number, records: number) => options.onProgress?.({ phase: 'restoring', bytes, totalBytes, records });

  if (header.kind === 'schema') {
    let body: unknown;
    await readDumpFile(file, (record) => (body = record), (bytes) => progress(bytes, 0));
    const exists = (await data.getIndex(target)) !== undefined;
    const shards = !exists && typeof header.shards === 'number' ? header.shards : undefined;
    await data.putSchema(target, body, { shards });
    progress(totalBytes, 1);
    return { header, trailer, index: target, processed: 1, indexed: 1, total: (await data.info(target)).docs, items: [], refused: 0 };
  }

  if (header.kind === 'meta') {
    const records: MetaRecord[] = [];
    // Metadata is small (it lives in one key/value range of the cluster database).
    await readDumpFile(file, (record) => records.push(record as MetaRecord), (bytes) => progress(bytes, records.length));
    await ensureTarget(data, target, header);
    for (const { key, value } of records) await data.putMetadata(target, key, value);
    return {
      header, trailer, index: target, processed: records.length, indexed: records.length,
      total: (await data.info(target)).docs, items: [], refused: 0,
    };
  }

  await ensureTarget(data, target, header);
  let bytesRead = 0;
  const counter = new ByteCounter((bytes) => {
    bytesRead = bytes;
  });
  // Errors anywhere in the chain destroy the decoder, which restoreDocuments is reading.
  const docs = pipelineCallback(createReadStream(file), counter, decompressStream(), createDumpDecoder({ expectKind: 'docs' }), () => {});
  const result = await restoreDocuments(data, target, docs as AsyncIterable<unknown>, {
    maxItems: options.maxItems,
    onRefused: options.onRefused,
    onProgress: (processed) => progress(bytesRead, processed),
    signal: options.signal,
  });
  return { ...result, header, trailer };
}

/** Copy a stream to a private temporary file; answers its path and a cleanup. */
export async function spoolToFile(
  source: AsyncIterable<Uint8Array> | Readable,
  tmpDir: string = os.tmpdir(),
): Promise<{ file: string; cleanup: () => Promise<void> }> {
  await fs.mkdir(tmpDir, { recursive: true });
  const dir = await fs.mkdtemp(path.join(tmpDir, 'shardvault-restore-'));
  const file = path.join(dir, 'input.dump');
  const cleanup = () => fs.rm(dir, { recursive: true, force: true });
  try {
    await pipeline(source instanceof Readable ? source : Readable.from(source), createWriteStream(file, { mode: 0o600 }));
  } catch (err) {
    await cleanup();
    throw err;
  }
  return { file, cleanup };
}

/** Spool `source` (stdin, an HTTP body) to a temporary file, then restoreDumpFile it. */
export async function restoreDumpStream(
  data: ClusterData,
  target: string,
  source: AsyncIterable<Uint8Array> | Readable,
  options: RestoreDumpOptions & { tmpDir?: string } = {},
): Promise<DumpRestoreResult> {
  const { file, cleanup } = await spoolToFile(source, options.tmpDir);
  try {
    return await restoreDumpFile(data, target, file, options);
  } finally {
    await cleanup();
  }
}
