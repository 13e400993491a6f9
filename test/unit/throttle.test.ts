import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { throttleStream } from '../../shared/formats/throttle.ts';

async function pass(bytes: Buffer, bytesPerSecond: number): Promise<{ out: Buffer; ms: number }> {
  const chunks: Buffer[] = [];
  const started = Date.now();
  const source = Readable.from(Array.from({ length: bytes.length / 16_384 }, (_, i) => bytes.subarray(i * 16_384, (i + 1) * 16_384)));
  await pipeline(source, throttleStream(bytesPerSecond), async function* (input) {
    for await (const chunk of input) chunks.push(chunk as Buffer);
  });
  return { out: Buffer.concat(chunks), ms: Date.now() - started };
}

describe('throttleStream (WORKER_MAX_BYTES_PER_SECOND)', () => {
  const data = Buffer.from(Array.from({ length: 16_384 * 20 }, (_, i) => i % 251));

  it('passes every byte unchanged, and never faster than the rate beyond one second of burst', async () => {
    // 320 KiB at 100 KiB/s: the first 100 KiB go at once, the rest take at least 2.2 s.
    const { out, ms } = await pass(data, 100 * 1024);
    expect(out.equals(data)).toBe(true);
    expect(ms).toBeGreaterThanOrEqual(2100);
  });

  it('0 means unlimited', async () => {
    const { out } = await pass(data, 0);
    expect(out.equals(data)).toBe(true);
  });
});
