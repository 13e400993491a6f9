/**
 * Writing a stream of documents into an index in batches, with flat memory. Each document is
 * coerced to the index's schema; one that does not fit is reported (its position in the input,
 * its `_id`, why) and the others are kept, as Xapiand's `:restore` does.
 */
import { CancelledError, isShardvaultError, retryCanHelp } from '../errors.ts';
import type { ClusterData } from '../cluster/data.ts';

/** A document that was not restored. */
export interface RestoreItemError {
  /** Name of the index written to. */
  index: string;
  /** Zero-based position of the document in the input. */
  position: number;
  /** The document's `_id` as given, when it had one. */
  _id?: unknown;
  status: number;
  error: string;
}

export interface RestoreResult {
  index: string;
  /** Records read from the input. */
  processed: number;
  /** Documents (or metadata keys, or schemas) written. */
  indexed: number;
  /** Documents in the index once the restore is done. */
  total: number;
  /** Documents that were refused, in input order (at most `maxItems` of them; see `refused`). */
  items: RestoreItemError[];
  /** How many documents were refused in all. */
  refused: number;
}

export interface RestoreDocumentsOptions {
  /** Documents per write batch; default 1000. */
  batchSize?: number;
  /** Refused documents listed in `items` (the count in `refused` is always complete); default 1000. */
  maxItems?: number;
  /** Called after each batch is written, with the documents processed so far. */
  onProgress?(processed: number): void;
  /** Called for every refused document, even beyond `maxItems`. */
  onRefused?(item: RestoreItemError): void;
  signal?: AbortSignal;
}

function idOf(body: unknown): unknown {
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as { _id?: unknown })._id : undefined;
}

/**
 * Write `docs` into `index` (created on the first document if missing). One batch is written
 * while the next is read, so at most two batches are held at once.
 */
export async function restoreDocuments(
  data: ClusterData,
  index: string,
  docs: AsyncIterable<unknown>,
  options: RestoreDocumentsOptions = {},
): Promise<RestoreResult> {
  const batchSize = options.batchSize ?? 1000;
  const maxItems = options.maxItems ?? 1000;
  const result: RestoreResult = { index, processed: 0, indexed: 0, total: 0, items: [], refused: 0 };
  let writing: Promise<void> = Promise.resolve();

  const write = async (batch: unknown[], first: number): Promise<void> => {
    const outcome = await data.putDocuments(index, batch);
    outcome.forEach((item, i) => {
      if (item.ok) {
        result.indexed++;
        return;
      }
      const err = item.error;
      const refused: RestoreItemError = {
        index,
        position: first + i,
        ...(idOf(batch[i]) !== undefined ? { _id: idOf(batch[i]) } : {}),
        // Xapiand's per-item status: a document refused (422), or the server's failure (500).
        status: retryCanHelp(err) ? 500 : 422,
        error: err.message,
      };
      result.refused++;
      if (result.items.length < maxItems) result.items.push(refused);
      options.onRefused?.(refused);
    });
    options.onProgress?.(first + batch.length);
  };

  let batch: unknown[] = [];
  try {
    for await (const doc of docs) {
      if (options.signal?.aborted) throw new CancelledError(`the restore into ${index} was cancelled after ${result.processed} documents`);
      batch.push(doc);
      result.processed++;
      if (batch.length >= batchSize) {
        await writing;
        writing = write(batch, result.processed - batch.length);
        writing.catch(() => {}); // awaited below; this only keeps it from counting as unhandled
        batch = [];
      }
    }
    await writing;
    if (batch.length > 0) await write(batch, result.processed - batch.length);
  } catch (err) {
    await writing.catch(() => {});
    if (isShardvaultError(err) && !err.retryable && result.indexed > 0) {
      err.message = `${err.message}; the restore stopped there, ${result.indexed} documents before it were restored`;
    }
    throw err;
  }
  result.total = (await data.getIndex(index)) ? (await data.info(index)).docs : 0;
  return result;
}
