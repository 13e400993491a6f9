/**
 * GCS downloads are made by the backend itself (gcs.ts, openMedia), not by the client's
 * `createReadStream`: what the client did for them must still hold. A whole object's bytes are
 * checked against the CRC32C its metadata records (`validation`, on by default), so bytes
 * damaged on the way fail the read as damage naming the object; a byte range has no checksum
 * of its own. The Cloud Storage emulator, behind the fault proxy (corruptBody).
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GcsBackend } from '../../shared/backends/gcs.ts';
import { IntegrityError } from '../../shared/errors.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { startGcsEmulator, type GcsEmulator } from '../support/gcs-emulator.ts';

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('gcs downloads', () => {
  let emulator: GcsEmulator;
  let proxy: FaultProxy;
  const make = (validation?: false) =>
    new GcsBackend({ bucket: emulator.bucket, path: 'downloads', projectId: emulator.projectId, emulatorHost: proxy.url, ...(validation === false ? { validation } : {}) });
  const isDownload = (key: string) => (r: { method: string; url: string }) =>
    r.method === 'GET' && r.url.includes('alt=media') && decodeURIComponent(r.url.split('?')[0]!).endsWith(`/${key}`);

  beforeAll(async () => {
    emulator = await startGcsEmulator();
    proxy = await startFaultProxy({ target: emulator.host, seed: 1 });
  }, 90_000);

  afterAll(async () => {
    await proxy?.close();
    await emulator?.stop();
  }, 30_000);

  it('a whole object whose bytes arrive damaged fails the read as damage naming it; a range, or validation off, reads them as they came', async () => {
    const backend = make();
    const bytes = randomBytes(3 * 1024 * 1024);
    await backend.write('object', Readable.from([bytes]));
    expect((await readAll(await backend.read('object'))).equals(bytes)).toBe(true);

    const corrupt = proxy.corruptBody(isDownload('object'));
    try {
      const err = await backend.read('object').then(readAll).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IntegrityError);
      expect((err as Error).message).toContain(backend.locate('object'));
      expect((err as Error).message).toMatch(/CRC32C/);
      // A range has no checksum to check against: its bytes come as they are.
      const part = await readAll(await backend.read('object', { range: { start: 0, length: 1024 } }));
      expect(part.subarray(1).equals(bytes.subarray(1, 1024))).toBe(true);
      expect(part[0]).toBe(bytes[0]! ^ 0xff);
      const unchecked = await readAll(await make(false).read('object'));
      expect(unchecked[0]).toBe(bytes[0]! ^ 0xff);
      expect(corrupt.corrupted()).toBe(3);
    } finally {
      corrupt.stop();
    }
    expect((await readAll(await backend.read('object'))).equals(bytes)).toBe(true);
  }, 60_000);
});
