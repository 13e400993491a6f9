/**
 * An online round trip of many documents with flat memory: the documents are generated into
 * a streamed `POST /big/:restore` body (NDJSON), then `POST /big/:dump` (a JSON array) is
 * piped straight into `POST /big_copy/:restore`, and the same again in MessagePack. Peak
 * memory is sampled throughout and printed.
 *
 * 100 000 documents by default; SHARDVAULT_LARGE=1 makes it a million (about a minute or
 * two on a small machine). The heap must stay far below what holding the documents would take.
 */
import { describe, expect, it } from 'vitest';
import { useTestApi } from '../support/api.ts';
import { collectGarbage } from '../support/gc.ts';

const LARGE = process.env.SHARDVAULT_LARGE === '1' || process.env.SHARDVAULT_LARGE === 'true';
const N = LARGE ? 1_000_000 : 100_000;
const MB = 1024 * 1024;

const t = useTestApi();

function tweet(i: number): Record<string, unknown> {
  return {
    _id: i,
    user: `user${i % 5000}`,
    postDate: new Date(Date.UTC(2016, 0, 1) + i * 60_000).toISOString().slice(0, 19),
    message: `Tweet number ${i}: trying out shardvault, so far, so good... so what!`,
    likes: i % 97,
  };
}

/** A lazily generated NDJSON body: nothing is built ahead of what the reader pulls. */
function generatedBody(n: number): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i >= n) return controller.close();
      let text = '';
      for (const end = Math.min(n, i + 500); i < end; i++) text += `${JSON.stringify(tweet(i))}\n`;
      controller.enqueue(Buffer.from(text));
    },
  });
}

/**
 * Samples memory every 50 ms; `peak` holds the largest values seen. Once a second it collects
 * garbage first: `live` is then the largest heap still referenced, which is what would grow
 * with the number of documents if anything held them (the plain heap peak also counts garbage
 * not yet collected).
 */
function memorySampler() {
  collectGarbage();
  const base = process.memoryUsage();
  const peak = { rss: base.rss, heapUsed: base.heapUsed, live: base.heapUsed, external: base.external + base.arrayBuffers };
  const sample = (collect = false) => {
    if (collect) collectGarbage();
    const m = process.memoryUsage();
    peak.rss = Math.max(peak.rss, m.rss);
    peak.heapUsed = Math.max(peak.heapUsed, m.heapUsed);
    if (collect) peak.live = Math.max(peak.live, m.heapUsed);
    peak.external = Math.max(peak.external, m.external + m.arrayBuffers);
  };
  let ticks = 0;
  const timer = setInterval(() => sample(++ticks % 20 === 0), 50);
  return {
    base,
    peak,
    stop() {
      clearInterval(timer);
      sample();
    },
  };
}

function post(path: string, body: ReadableStream<Uint8Array> | null, headers: Record<string, string>): Promise<Response> {
  return Promise.resolve(t.api.app.request(path, { method: 'POST', body, headers, duplex: 'half' } as RequestInit));
}

describe(`online round trip of ${N.toLocaleString('en-US')} documents`, () => {
  it('restores, dumps and restores again with flat memory', { timeout: LARGE ? 600_000 : 180_000 }, async () => {
    const memory = memorySampler();
    const times: Record<string, number> = {};
    const timed = async <T>(label: string, fn: () => Promise<T>): Promise<T> => {
      const started = performance.now();
      try {
        return await fn();
      } finally {
        times[label] = (performance.now() - started) / 1000;
      }
    };

    try {
      const seeded = await timed('restore ndjson', async () =>
        (await post('/big/:restore', generatedBody(N), { 'content-type': 'application/x-ndjson' })).json());
      expect(seeded).toEqual({ processed: N, indexed: N, total: N, items: [] });

      // The dump's response body is the next restore's request body: nothing in between.
      const copied = await timed('dump json → restore json', async () => {
        const dump = await post('/big/:dump', null, { accept: 'application/json' });
        expect(dump.status).toBe(200);
        return (await post('/big_copy/:restore', dump.body, { 'content-type': 'application/json' })).json();
      });
      expect(copied).toEqual({ processed: N, indexed: N, total: N, items: [] });

      const packed = await timed('dump msgpack → restore msgpack', async () => {
        const dump = await post('/big_copy/:dump', null, { accept: 'application/x-msgpack' });
        return (await post('/big_msgpack/:restore', dump.body, { 'content-type': 'application/x-msgpack' })).json();
      });
      expect(packed).toEqual({ processed: N, indexed: N, total: N, items: [] });
    } finally {
      memory.stop();
    }

    for (const id of [0, 1, Math.floor(N / 2), N - 1]) {
      const doc = t.store.getDocument('big_msgpack', id);
      expect({ ...doc, postDate: (doc.postDate as Date).toISOString().slice(0, 19) }).toEqual(tweet(id));
    }
    expect(t.store.info('big_msgpack').docs).toBe(N);

    const { base, peak } = memory;
    const line =
      `[dump.large] ${N.toLocaleString('en-US')} documents: ` +
      Object.entries(times).map(([k, v]) => `${k} ${v.toFixed(1)}s`).join(', ') +
      `; peak rss ${(peak.rss / MB).toFixed(0)} MB (start ${(base.rss / MB).toFixed(0)} MB; rss counts LMDB's mapped pages), ` +
      `peak heap ${(peak.heapUsed / MB).toFixed(0)} MB (start ${(base.heapUsed / MB).toFixed(0)} MB), ` +
      `peak live heap after GC ${(peak.live / MB).toFixed(0)} MB, ` +
      `peak external+buffers ${(peak.external / MB).toFixed(0)} MB`;
    console.log(line);
    // Holding the documents (or the bodies) would keep tens of MB per 100 000 documents alive;
    // streaming keeps a batch or two, whatever N is.
    expect(peak.live - base.heapUsed).toBeLessThan(48 * MB);
  });
});
