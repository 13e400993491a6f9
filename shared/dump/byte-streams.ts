/**
 * Small adapters between web streams (what fetch and Hono hand over) and async iterables
 * (what the dump and restore code reads), keeping backpressure: nothing is read ahead of
 * what the consumer asks for.
 */

/** The chunks of a web ReadableStream; stopping early cancels the stream. */
export async function* fromWebStream(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  let done = false;
  try {
    for (;;) {
      const next = await reader.read();
      if (next.done) {
        done = true;
        return;
      }
      yield next.value;
    }
  } finally {
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/** A web ReadableStream that pulls one chunk from `source` each time its reader wants one. */
export function toWebStream(source: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  const iterator = source[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await iterator.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      } catch (err) {
        controller.error(err);
      }
    },
    async cancel() {
      await iterator.return?.();
    },
  });
}

/**
 * Reads the first `n` bytes (fewer if the source is shorter) and answers them with an
 * iterable that yields the whole source again from its first byte.
 */
export async function peekBytes(
  source: AsyncIterable<Uint8Array>,
  n: number,
): Promise<{ head: Buffer; stream: AsyncIterable<Uint8Array> }> {
  const iterator = source[Symbol.asyncIterator]();
  const seen: Uint8Array[] = [];
  let have = 0;
  let ended = false;
  while (have < n) {
    const next = await iterator.next();
    if (next.done) {
      ended = true;
      break;
    }
    seen.push(next.value);
    have += next.value.byteLength;
  }
  const head = Buffer.concat(seen).subarray(0, n);
  async function* replay(): AsyncGenerator<Uint8Array> {
    try {
      yield* seen.splice(0);
      if (ended) return;
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        yield next.value;
      }
    } finally {
      await iterator.return?.();
    }
  }
  return { head, stream: replay() };
}
