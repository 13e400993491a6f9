/**
 * The content-addressed repository (shared/repository, docs/formats.md §3) on the three real
 * backends: a physical LMDB copy round-trips byte for byte; a second copy after 1 % of the
 * documents changed stores a small share of new bytes; an incremental snapshot reads each blob
 * once; damage to a pack fails the read naming the chunk and the file, and a missing pack
 * names the pack.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { open } from 'lmdb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IntegrityError } from '../../shared/errors.ts';
import { allButEvery, appendRange, withoutRanges } from '../../shared/formats/ranges.ts';
import { decodeObject, encodeObject } from '../../shared/repository/codec.ts';
import { CHUNK_SIZE, CHUNKS_PER_BLOB, INDEX_PREFIX, indexFileSchema, REPOSITORY_ROOT, snapshotSchema } from '../../shared/repository/format.ts';
import { collectGarbage } from '../../shared/repository/collect.ts';
import { Repository, type BaseRequest, type StreamedSource } from '../../shared/repository/repository.ts';
import { BACKEND_FIXTURES, type BackendFixture } from '../support/backend-fixtures.ts';
import { counting } from '../support/counting-backend.ts';
import { tempDir } from '../support/temp.ts';

const DOCS = 6000;
const text = (i: number, v: number) => `document ${i} version ${v} `.repeat(20 + (i % 40));

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of stream) parts.push(p as Buffer);
  return Buffer.concat(parts);
}

describe.each(['filesystem', 's3', 'gcs'] as const)('repository on %s', (name) => {
  let tmp: ReturnType<typeof tempDir>;
  let fixture: BackendFixture;
  const copies: string[] = [];

  beforeAll(async () => {
    tmp = tempDir();
    fixture = await BACKEND_FIXTURES[name](tmp.dir);
    // One shard as the store keeps it, and two physical copies: before and after 1 % updates,
    // 0.5 % deletes and 1 % additions.
    const db = open({ path: path.join(tmp.dir, 'shard', 'data.mdb') });
    await db.transaction(() => {
      for (let i = 0; i < DOCS; i++) db.put(`doc-${i}`, { _id: `doc-${i}`, text: text(i, 1) });
    });
    copies.push(path.join(tmp.dir, 'copy-1.mdb'));
    await db.backup(copies[0]!, false);
    await db.transaction(() => {
      for (let i = 0; i < DOCS; i += 100) db.put(`doc-${i}`, { _id: `doc-${i}`, text: text(i, 2) });
      for (let i = 50; i < DOCS; i += 200) db.remove(`doc-${i}`);
      for (let i = DOCS; i < DOCS * 1.01; i++) db.put(`doc-${i}`, { _id: `doc-${i}`, text: text(i, 1) });
    });
    copies.push(path.join(tmp.dir, 'copy-2.mdb'));
    await db.backup(copies[1]!, false);
    await db.close();
  }, 120_000);

  afterAll(async () => {
    await fixture?.stop();
    tmp?.cleanup();
  }, 30_000);

  it('stores a shard file once by content and rebuilds it byte for byte; an unchanged file stores only its snapshot', async () => {
    const repo = new Repository(fixture.backend);
    const first = await repo.write(fs.createReadStream(copies[0]!), 'b1/node-1/A/0', { level: 'BestSpeed' });
    const bytes = fs.readFileSync(copies[0]!);
    expect(first).toMatchObject({ size: bytes.length, newChunks: expect.any(Number) });
    expect(first.stored).toBeLessThan(bytes.length);
    const { stream } = await repo.open('b1/node-1/A/0', 'shard A/0', { sha256: first.snapshotSha256 });
    expect((await collect(stream)).equals(bytes)).toBe(true);

    // Another process (a fresh Repository) finds every chunk through the index files alone.
    const again = await new Repository(fixture.backend).write(fs.createReadStream(copies[0]!), 'b2/node-1/A/0', { level: 'BestSpeed' });
    expect(again.newChunks).toBe(0);
    expect(again.stored).toBeLessThan(first.stored / 50);
  }, 60_000);

  it('reuses every chunk, and stores and learns new ones, with its table of the location on disk', async () => {
    // A process allowed 100 chunks in memory: the location's ~1,500 move its table to disk.
    const repo = new Repository(fixture.backend, undefined, 100);
    const bytes = Buffer.concat([fs.readFileSync(copies[0]!), randomBytes(3 * CHUNK_SIZE)]);
    const first = await repo.write(Readable.from([bytes]), 'd1/node-1/A/0', { level: 'BestSpeed' });
    expect(first.newChunks).toBe(3);
    // The index file it wrote is learned into the table on disk: nothing is stored twice.
    const again = await repo.write(Readable.from([bytes]), 'd2/node-1/A/0', { level: 'BestSpeed' });
    expect(again.newChunks).toBe(0);
    const { stream } = await repo.open('d2/node-1/A/0', 'shard A/0', { sha256: again.snapshotSha256 });
    expect((await collect(stream)).equals(bytes)).toBe(true);
  }, 60_000);

  it('writes the same snapshot from a local file, read in place by the threads, as from a stream of it, under the byte-rate limit', async () => {
    const repo = new Repository(fixture.backend);
    const size = fs.statSync(copies[1]!).size;
    const started = Date.now();
    // A third of the file per second beyond one second of burst: at least two seconds.
    const fromFile = await repo.write({ file: copies[1]!, size }, 'f1/node-1/A/0', { level: 'DefaultCompression', bytesPerSecond: Math.ceil(size / 3) });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1950);
    // Its new chunks (the pages that changed since copies[0], scattered over the file) were read
    // by the threads from their places in the file; the snapshot rebuilds the file exactly.
    expect(fromFile.newChunks).toBeGreaterThan(0);
    const { stream } = await new Repository(fixture.backend).open('f1/node-1/A/0', 'shard A/0');
    expect((await collect(stream)).equals(fs.readFileSync(copies[1]!))).toBe(true);
    // The same file as a stream in odd-sized buffers names the same chunks, and finds them all stored.
    const fromStream = await new Repository(fixture.backend).write(fs.createReadStream(copies[1]!, { highWaterMark: 40_000 }), 'f2/node-1/A/0', { level: 'DefaultCompression' });
    expect(fromStream).toMatchObject({ size, sha256: fromFile.sha256, chunks: fromFile.chunks, newChunks: 0 });
    // A file shorter than the size it was given for fails the write, naming it.
    await expect(repo.write({ file: copies[1]!, size: size + CHUNK_SIZE }, 'f3/node-1/A/0', { level: 'BestSpeed' })).rejects.toThrow(`${copies[1]!} ends before byte`);
  }, 60_000);

  it("writes a shard read in place with its head given apart (a snapshot's meta pages) and its free pages as zeros as the bytes it stands for, from a descriptor", async () => {
    const repo = new Repository(fixture.backend);
    const rest = fs.readFileSync(copies[1]!);
    // The other copy's first two pages: bytes the file itself does not hold there.
    const head = fs.readFileSync(copies[0]!).subarray(0, 2 * CHUNK_SIZE);
    expect(head.equals(rest.subarray(0, head.length))).toBe(false);
    // Pages taken as zeros: two early ones, and three across the end of the first 1 MiB that a thread reads.
    const span = 1024 * 1024;
    expect(rest.length).toBeGreaterThan(span + 2 * CHUNK_SIZE);
    const zeros = [3 * CHUNK_SIZE, 2 * CHUNK_SIZE, span - CHUNK_SIZE, 3 * CHUNK_SIZE];
    const expected = Buffer.concat([head, rest.subarray(head.length)]);
    for (let i = 0; i < zeros.length; i += 2) {
      expect(expected.subarray(zeros[i]!, zeros[i]! + zeros[i + 1]!).some((b) => b !== 0)).toBe(true);
      expected.fill(0, zeros[i]!, zeros[i]! + zeros[i + 1]!);
    }
    const handle = await fs.promises.open(copies[1]!, 'r');
    try {
      const written = await repo.write({ file: handle.fd, size: rest.length, head, zeros }, 'h1/node-1/A/0', { level: 'BestSpeed' });
      const { stream } = await new Repository(fixture.backend).open('h1/node-1/A/0', 'shard A/0');
      expect((await collect(stream)).equals(expected)).toBe(true);
      const fromStream = await new Repository(fixture.backend).write(Readable.from([expected]), 'h2/node-1/A/0', { level: 'BestSpeed' });
      expect(fromStream).toMatchObject({ size: written.size, sha256: written.sha256, chunks: written.chunks, newChunks: 0 });
    } finally {
      await handle.close();
    }
  }, 60_000);

  it('stores a stream of many spans exactly, whether a span is stored whole or only its new chunks (span buffers handed back and used again)', async () => {
    // 24 spans (more than the buffers kept for reuse): every third repeats an earlier span's
    // chunks but for its last 64, so that only those are taken from it; the others are all new.
    const spans = 24;
    const span = CHUNKS_PER_BLOB * CHUNK_SIZE;
    const bytes = Buffer.alloc(spans * span);
    for (let c = 0; c < spans * CHUNKS_PER_BLOB; c++) bytes.writeUInt32BE(c, c * CHUNK_SIZE + 100);
    for (let s = 2; s < spans; s += 3) bytes.copy(bytes, s * span, 0, span - 64 * CHUNK_SIZE);
    // In pieces of odd sizes, as a socket delivers them.
    const pieces: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += 100_003) pieces.push(Buffer.from(bytes.subarray(at, at + 100_003)));
    const written = await new Repository(fixture.backend).write(Readable.from(pieces), 'm1/node-1/A/0', { level: 'BestSpeed' });
    expect(written).toMatchObject({ size: bytes.length, chunks: spans * CHUNKS_PER_BLOB });
    expect(written.newChunks).toBeLessThan(spans * CHUNKS_PER_BLOB);
    const rebuilt = path.join(tmp.dir, 'rebuilt-m1.mdb');
    await new Repository(fixture.backend).rebuild('m1/node-1/A/0', 'shard A/0', { file: rebuilt });
    expect(fs.readFileSync(rebuilt).equals(bytes)).toBe(true);
  }, 60_000);

  it('stores a local file whose spans are all new chunks span by span as they are, a chunk a span repeats named once, and rebuilds it exactly', async () => {
    const bytes = Buffer.alloc(3 * CHUNKS_PER_BLOB * CHUNK_SIZE);
    for (let c = 0; c < 3 * CHUNKS_PER_BLOB; c++) bytes.writeUInt32BE(0x7a000000 + c, c * CHUNK_SIZE);
    // The second span repeats its own first chunk at its end.
    bytes.copy(bytes, (2 * CHUNKS_PER_BLOB - 1) * CHUNK_SIZE, CHUNKS_PER_BLOB * CHUNK_SIZE, (CHUNKS_PER_BLOB + 1) * CHUNK_SIZE);
    const file = path.join(tmp.dir, 'all-new.mdb');
    fs.writeFileSync(file, bytes);
    const written = await new Repository(fixture.backend).write({ file, size: bytes.length }, 'n1/node-1/A/0', { level: 'BestSpeed' });
    expect(written).toMatchObject({ size: bytes.length, chunks: 3 * CHUNKS_PER_BLOB });
    const rebuilt = path.join(tmp.dir, 'rebuilt-n1.mdb');
    await new Repository(fixture.backend).rebuild('n1/node-1/A/0', 'shard A/0', { file: rebuilt });
    expect(fs.readFileSync(rebuilt).equals(bytes)).toBe(true);
    // Another process finds every chunk stored.
    expect((await new Repository(fixture.backend).write({ file, size: bytes.length }, 'n2/node-1/A/0', { level: 'BestSpeed' })).newChunks).toBe(0);
  }, 60_000);

  it('stores a span that holds a few chunks already stored whole, one that holds many chunk by chunk, and rebuilds both exactly', async () => {
    const span = CHUNKS_PER_BLOB * CHUNK_SIZE;
    const known = Buffer.alloc(span);
    for (let c = 0; c < CHUNKS_PER_BLOB; c++) known.writeUInt32BE(0x7b000000 + c, c * CHUNK_SIZE);
    const knownFile = path.join(tmp.dir, 'known.mdb');
    fs.writeFileSync(knownFile, known);
    const repo = new Repository(fixture.backend);
    await repo.write({ file: knownFile, size: span }, 'k1/node-1/A/0', { level: 'BestSpeed' });
    // Two spans of new chunks: the first repeats 10 stored ones (at most 1/16 of a span), the
    // second 100.
    const bytes = Buffer.alloc(2 * span);
    for (let c = 0; c < 2 * CHUNKS_PER_BLOB; c++) bytes.writeUInt32BE(0x7c000000 + c, c * CHUNK_SIZE);
    for (let c = 0; c < 10; c++) known.copy(bytes, (5 + 20 * c) * CHUNK_SIZE, c * CHUNK_SIZE, (c + 1) * CHUNK_SIZE);
    for (let c = 0; c < 100; c++) known.copy(bytes, span + (2 * c + 1) * CHUNK_SIZE, (100 + c) * CHUNK_SIZE, (101 + c) * CHUNK_SIZE);
    const file = path.join(tmp.dir, 'mostly-new.mdb');
    fs.writeFileSync(file, bytes);
    const written = await repo.write({ file, size: bytes.length }, 'k2/node-1/A/0', { level: 'BestSpeed' });
    // The first span stored as it is, its 10 repeats with it; of the second only its 156 new chunks.
    expect(written).toMatchObject({ size: bytes.length, chunks: 2 * CHUNKS_PER_BLOB, newChunks: CHUNKS_PER_BLOB + (CHUNKS_PER_BLOB - 100) });
    const rebuilt = path.join(tmp.dir, 'rebuilt-k2.mdb');
    await new Repository(fixture.backend).rebuild('k2/node-1/A/0', 'shard A/0', { file: rebuilt });
    expect(fs.readFileSync(rebuilt).equals(bytes)).toBe(true);
  }, 60_000);

  it('stores the bytes it named from a local file, even when the file changes before they are compressed', async () => {
    const SPAN = 1024 * 1024;
    // Six spans of 50 distinct chunks and a filler (not zeros: other tests' files hold zero
    // chunks): the first blob fills (and is compressed) only in the sixth span, long after the
    // first span's chunks were named.
    const bytes = Buffer.alloc(6 * SPAN, 0x5a);
    for (let k = 0; k < 6; k++) for (let c = 0; c < 50; c++) bytes.fill((k * 50 + c) % 251 + 1, k * SPAN + c * CHUNK_SIZE, k * SPAN + (c + 1) * CHUNK_SIZE - 1);
    const file = path.join(tmp.dir, 'changing.mdb');
    fs.writeFileSync(file, bytes);
    const handle = await fs.promises.open(file, 'r+');
    try {
      let changed = false;
      await new Repository(fixture.backend).write({ file: handle.fd, size: bytes.length }, 'g1/node-1/A/0', {
        level: 'BestSpeed',
        // The first span is named: its bytes change in the file now (as free pages of a live
        // LMDB file may be reused while its snapshot is read).
        onProgress: (read) => {
          if (changed || read < SPAN) return;
          fs.writeSync(handle.fd, Buffer.alloc(50 * CHUNK_SIZE, 0xee), 0, 50 * CHUNK_SIZE, 0);
          changed = true;
        },
      });
      expect(changed).toBe(true);
    } finally {
      await handle.close();
    }
    const rebuilt = path.join(tmp.dir, 'rebuilt-g1.mdb');
    await new Repository(fixture.backend).rebuild('g1/node-1/A/0', 'shard A/0', { file: rebuilt });
    expect(fs.readFileSync(rebuilt).equals(bytes)).toBe(true);
  }, 60_000);

  it('stores a small share of new bytes for a copy after 1 % of the documents changed, and rebuilds it exactly', async () => {
    const repo = new Repository(fixture.backend);
    const full = await repo.write(fs.createReadStream(copies[0]!), 'c1/node-1/A/0', { level: 'BestSpeed' });
    const incremental = await repo.write(fs.createReadStream(copies[1]!), 'c2/node-1/A/0', { level: 'BestSpeed' });
    expect(incremental.newChunks / incremental.chunks).toBeLessThan(0.15);
    const { stream } = await new Repository(fixture.backend).open('c2/node-1/A/0', 'shard A/0');
    expect((await collect(stream)).equals(fs.readFileSync(copies[1]!))).toBe(true);
    expect(full.size).toBe(fs.statSync(copies[0]!).size);
  }, 60_000);

  it("names the chunks a file's source says are unchanged since the latest snapshot of its lineage as that snapshot names them, without naming them; and names the file whole when that account does not hold", async () => {
    const before = fs.readFileSync(copies[0]!);
    const after = fs.readFileSync(copies[1]!);
    // What the source says (the shard knows it from LMDB's page headers; here, by comparing): the chunks equal in both copies.
    const equal: number[] = [];
    for (let at = 0; at + CHUNK_SIZE <= Math.min(before.length, after.length); at += CHUNK_SIZE) {
      if (!after.subarray(at, at + CHUNK_SIZE).equals(before.subarray(at, at + CHUNK_SIZE))) continue;
      appendRange(equal, at, CHUNK_SIZE);
    }
    const equalChunks = equal.filter((_, i) => i % 2 === 1).reduce((a, b) => a + b, 0) / CHUNK_SIZE;
    const repo = new Repository(fixture.backend);
    const size = after.length;
    const [a, b, c] = ['a', 'b', 'c'].map((x) => x.repeat(32));
    const plain = await repo.write({ file: copies[1]!, size }, 'u0/node-1/A/0', { level: 'BestSpeed' });
    const asked: string[] = [];
    const says = (ranges: number[]) => async (generation: string) => (asked.push(generation), ranges);
    // The first snapshot of a lineage has nothing to compare with: its source is not asked.
    const first = await repo.write({ file: copies[0]!, size: before.length }, 'u1/node-1/A/0', { level: 'BestSpeed', origin: { lineage: a!, generation: '7' }, unchanged: says([]) });
    expect(first.unchangedChunks).toBe(0);
    expect(asked).toEqual([]);

    const told = await repo.write({ file: copies[1]!, size }, 'u2/node-1/A/0', { level: 'BestSpeed', origin: { lineage: a!, generation: '9' }, unchanged: says(equal) });
    expect(asked).toEqual(['7']);
    // All of them but the one in 32 read to check the base; the snapshot is the one the whole file makes.
    expect(told.unchangedChunks).toBeGreaterThan(equalChunks * 0.9);
    expect(told.unchangedChunks).toBeLessThan(equalChunks);
    expect(told).toMatchObject({ size, sha256: plain.sha256, chunks: plain.chunks });
    const rebuilt = path.join(tmp.dir, 'rebuilt-u2.mdb');
    await new Repository(fixture.backend).rebuild('u2/node-1/A/0', 'shard A/0', { file: rebuilt });
    expect(fs.readFileSync(rebuilt).equals(after)).toBe(true);

    // The latest snapshot of the lineage is the base now (generation 9). A source that says the
    // whole file is unchanged (another file under the same lineage, say): the chunks read to
    // check it differ, and the file is read whole.
    asked.length = 0;
    await repo.write({ file: copies[0]!, size: before.length }, 'u3/node-1/A/0', { level: 'BestSpeed', origin: { lineage: b!, generation: '1' } });
    const wrong = await repo.write({ file: copies[1]!, size }, 'u4/node-1/A/0', { level: 'BestSpeed', origin: { lineage: b!, generation: '2' }, unchanged: says([0, size - (size % CHUNK_SIZE)]) });
    expect(asked).toEqual(['1']);
    expect(wrong).toMatchObject({ unchangedChunks: 0, sha256: plain.sha256 });
    await new Repository(fixture.backend).rebuild('u4/node-1/A/0', 'shard A/0', { file: rebuilt });
    expect(fs.readFileSync(rebuilt).equals(after)).toBe(true);

    // A lineage whose latest snapshot was deleted: nothing to compare with, and a collection
    // removes the hint with it.
    await repo.write({ file: copies[0]!, size: before.length }, 'u5/node-1/A/0', { level: 'BestSpeed', origin: { lineage: c!, generation: '1' } });
    await fixture.backend.deletePrefix('u5/');
    asked.length = 0;
    const gone = await repo.write({ file: copies[1]!, size }, 'u6/node-1/A/0', { level: 'BestSpeed', origin: { lineage: c!, generation: '2' }, unchanged: says(equal) });
    expect(asked).toEqual([]);
    expect(gone).toMatchObject({ unchangedChunks: 0, sha256: plain.sha256 });
    await fixture.backend.deletePrefix('u6/');
    const lineages = async () => (await fixture.backend.list(`${REPOSITORY_ROOT}/lineages/`)).map((o) => o.key.split('/').pop()).sort();
    expect(await lineages()).toEqual([a, b, c]);
    await collectGarbage(fixture.backend, { owner: 'repository test' });
    expect(await lineages()).toEqual([a, b]);
  }, 60_000);

  it('a streamed source (a node on another host) is asked for what changed since the latest snapshot of its lineage: it leaves the rest out but a sample, the snapshot is the one the whole file makes; an account that does not hold is asked again whole', async () => {
    const before = fs.readFileSync(copies[0]!);
    const after = fs.readFileSync(copies[1]!);
    const equal: number[] = [];
    for (let at = 0; at + CHUNK_SIZE <= Math.min(before.length, after.length); at += CHUNK_SIZE) {
      if (after.subarray(at, at + CHUNK_SIZE).equals(before.subarray(at, at + CHUNK_SIZE))) appendRange(equal, at, CHUNK_SIZE);
    }
    const repo = new Repository(fixture.backend);
    const plain = await repo.write({ file: copies[1]!, size: after.length }, 's0/node-1/A/0', { level: 'BestSpeed' });
    // What each opening was asked (the base's generation, or none) and how many bytes it sent.
    const opened: { since: string | undefined; sent: number }[] = [];
    const node = (bytes: Buffer, lineage: string, generation: string, says: number[]): StreamedSource => ({
      lineage,
      open: async (base?: BaseRequest) => {
        const unchanged = base ? says : [];
        const sent = withoutRanges(bytes, 0, base ? allButEvery(unchanged, base.chunk, base.every) : []);
        opened.push({ since: base?.generation, sent: sent.length });
        // In pieces that do not fall on chunks, as a socket delivers them.
        const pieces = Array.from({ length: Math.ceil(sent.length / 10_007) }, (_, i) => sent.subarray(i * 10_007, (i + 1) * 10_007));
        return { stream: Readable.from(pieces), size: bytes.length, origin: { lineage, generation }, unchanged };
      },
    });
    const [d, e] = ['d', 'e'].map((x) => x.repeat(32));
    const first = await repo.write(node(before, d!, '3', []), 's1/node-1/A/0', { level: 'BestSpeed' });
    expect(opened).toEqual([{ since: undefined, sent: before.length }]);
    expect(first.unchangedChunks).toBe(0);

    opened.length = 0;
    const told = await repo.write(node(after, d!, '5', equal), 's2/node-1/A/0', { level: 'BestSpeed' });
    expect(opened.map((o) => o.since)).toEqual(['3']);
    expect(opened[0]!.sent).toBeLessThan(after.length / 2);
    expect(told.unchangedChunks).toBeGreaterThan(0);
    expect(told).toMatchObject({ size: after.length, sha256: plain.sha256, chunks: plain.chunks });
    const rebuilt = path.join(tmp.dir, 'rebuilt-s2.mdb');
    await new Repository(fixture.backend).rebuild('s2/node-1/A/0', 'shard A/0', { file: rebuilt });
    expect(fs.readFileSync(rebuilt).equals(after)).toBe(true);

    // A source that says its whole file is unchanged when it is not: the sample differs from
    // the base, and the file is asked for again, whole.
    await repo.write(node(before, e!, '1', []), 's3/node-1/A/0', { level: 'BestSpeed' });
    opened.length = 0;
    const wrong = await repo.write(node(after, e!, '2', [0, after.length - (after.length % CHUNK_SIZE)]), 's4/node-1/A/0', { level: 'BestSpeed' });
    expect(opened.map((o) => o.since)).toEqual(['1', undefined]);
    expect(opened[1]!.sent).toBe(after.length);
    expect(wrong).toMatchObject({ unchangedChunks: 0, sha256: plain.sha256 });
    await new Repository(fixture.backend).rebuild('s4/node-1/A/0', 'shard A/0', { file: rebuilt });
    expect(fs.readFileSync(rebuilt).equals(after)).toBe(true);
  }, 60_000);

  it('reads each blob of an incremental snapshot once, although its runs return to the new blob all across the file', async () => {
    // 48 blobs of unique chunks; then one chunk changed in every blob: the 48 new chunks share
    // one new blob, which the rebuilt file needs between every two old blobs.
    const blobs = 48;
    const file = Buffer.alloc(blobs * CHUNKS_PER_BLOB * CHUNK_SIZE);
    // (None of them all zeros: earlier tests stored that chunk, and its blob would be read too.)
    for (let c = 0; c < blobs * CHUNKS_PER_BLOB; c++) file.writeUInt32BE(c + 1, c * CHUNK_SIZE);
    const repo = new Repository(fixture.backend);
    // (A copy each time: a buffer handed to the repository travels to its hash thread.)
    await repo.write(Readable.from([Buffer.from(file)]), 'e1/node-1/C/0', { level: 'BestSpeed' });
    for (let b = 0; b < blobs; b++) file.writeUInt32BE(0xffffffff - b, (b * CHUNKS_PER_BLOB + 100) * CHUNK_SIZE + 4);
    const next = await repo.write(Readable.from([Buffer.from(file)]), 'e2/node-1/C/0', { level: 'BestSpeed' });
    expect(next.newChunks).toBe(blobs);

    const reads = counting(fixture.backend);
    const { stream } = await new Repository(reads.backend).open('e2/node-1/C/0', 'shard C/0');
    // open has read the snapshot and its index files; the stream reads blobs as it goes.
    reads.reset();
    expect((await collect(stream)).equals(file)).toBe(true);
    expect(reads.calls.read).toBe(blobs + 1);

    // Rebuilt in place, each blob is read once too, and blobs that lie together in a pack are
    // read together: the snapshot, its two index files, then one read of each pack (the 48 old
    // blobs, small here, in one; the new blob in the other) — or, where index files and packs
    // are files on this host, each found once and read there by the threads. The file is the same.
    const rebuilt = path.join(tmp.dir, 'rebuilt-e2.mdb');
    reads.reset();
    await new Repository(reads.backend).rebuild('e2/node-1/C/0', 'shard C/0', { file: rebuilt });
    expect(fs.readFileSync(rebuilt).equals(file)).toBe(true);
    if (fixture.backend.localFile) expect(reads.calls).toEqual({ read: 1, localFile: 2 + 2 });
    else expect(reads.calls.read).toBe(1 + 2 + 2);
  }, 60_000);

  it('rebuilds a file whose index files are more than it keeps, reading one again in its turn; an index file that changed since the check fails the rebuild, naming it', async () => {
    // Four blobs of unique chunks, then one chunk changed in each: the second snapshot names two
    // index files. A repository that keeps one index file at most reads one of them again.
    const blobs = 4;
    const file = Buffer.alloc(blobs * CHUNKS_PER_BLOB * CHUNK_SIZE);
    for (let c = 0; c < blobs * CHUNKS_PER_BLOB; c++) file.writeUInt32BE(0x10000000 + c, c * CHUNK_SIZE);
    const repo = new Repository(fixture.backend);
    await repo.write(Readable.from([Buffer.from(file)]), 'k1/node-1/C/0', { level: 'BestSpeed' });
    for (let b = 0; b < blobs; b++) file.writeUInt32BE(0xeeeeeeee - b, (b * CHUNKS_PER_BLOB + 7) * CHUNK_SIZE + 4);
    await repo.write(Readable.from([Buffer.from(file)]), 'k2/node-1/C/0', { level: 'BestSpeed' });

    const reads: string[] = [];
    const answers = new Map<string, Buffer>();
    // Every object through read, where it is watched (and answered): not as a file on this host.
    const watched = new Proxy(fixture.backend, {
      get(target, prop, receiver) {
        if (prop === 'localFile') return undefined;
        if (prop !== 'read') return Reflect.get(target, prop, receiver) as unknown;
        return async (key: string, options?: object) => {
          reads.push(key);
          const answer = answers.get(key);
          return answer ? Readable.from([answer]) : target.read(key, options);
        };
      },
    });
    const rebuilt = path.join(tmp.dir, 'rebuilt-k2.mdb');
    await new Repository(watched, 0).rebuild('k2/node-1/C/0', 'shard C/0', { file: rebuilt });
    expect(fs.readFileSync(rebuilt).equals(file)).toBe(true);
    const indexReads = reads.filter((k) => k.startsWith(INDEX_PREFIX));
    const names = [...new Set(indexReads)];
    expect(names).toHaveLength(2);
    expect(indexReads.length).toBeGreaterThan(2);

    // The same, with each index file answered, once the check has read both, with the SHA-256
    // of every chunk changed (a file that still decodes, describing the same blobs).
    reads.length = 0;
    const changedFiles = await Promise.all(
      names.map(async (key) => {
        const index = await decodeObject(await collect(await fixture.backend.read(key)), indexFileSchema, key);
        const blobs = index.blobs.map((blob) => ({ ...blob, hashes: Buffer.from(blob.hashes.map((byte) => byte ^ 1)) }));
        return [key, await encodeObject({ ...index, blobs })] as const;
      }),
    );
    const checked = new Proxy(watched, {
      get(target, prop, receiver) {
        if (prop !== 'read') return Reflect.get(target, prop, receiver) as unknown;
        return async (key: string, options?: object) => {
          const answer = await target.read(key, options);
          if (reads.filter((k) => names.includes(k)).length === 2) for (const [k, bytes] of changedFiles) answers.set(k, bytes);
          return answer;
        };
      },
    });
    const changed = await new Repository(checked, 0).rebuild('k2/node-1/C/0', 'shard C/0', { file: rebuilt }).catch((e: unknown) => e);
    expect(changed).toBeInstanceOf(IntegrityError);
    expect((changed as Error).message).toMatch(/^shard C\/0: index file .+ changed while it was read$/);
    expect(names.some((k) => (changed as Error).message.includes(fixture.backend.locate(k)))).toBe(true);
  }, 60_000);

  it("refuses a snapshot whose runs name the right chunks in the wrong order, whichever way it is read, although it may be one of format 2's first (whose sha256 is the file's bytes')", async () => {
    const repo = new Repository(fixture.backend);
    const bytes = Buffer.from(Array.from({ length: 3 * 4096 }, (_, i) => (i * 7 + (i >> 12) * 101) & 0xff));
    const key = 'reordered/node-1/R/0';
    await repo.write(Readable.from([bytes]), key, { level: 'NoCompression' });
    const snapshot = await decodeObject(await collect(await fixture.backend.read(key)), snapshotSchema, key);
    const run = Buffer.from(snapshot.runs);
    const [file, blob] = [run.readUInt32LE(0), run.readUInt32LE(4)];
    // The last chunk first, then the others: the same chunks and size (whole chunks), another file.
    const runs = Buffer.from(new Uint32Array([file, blob, 2, 1, file, blob, 0, 2]).buffer);
    await fixture.backend.write(key, Readable.from([await encodeObject({ ...snapshot, runs })]));
    const refusal = /^shard R\/0 on node-1 rebuilds as bytes with sha256 [0-9a-f]{64} \(and not the fingerprint the snapshot says\); the snapshot says [0-9a-f]{64}$/;
    await expect(collect((await new Repository(fixture.backend).open(key, 'shard R/0 on node-1')).stream)).rejects.toThrow(refusal);
    const rebuilt = path.join(tmp.dir, 'rebuilt-reordered.mdb');
    for (const target of [rebuilt, undefined]) {
      await expect(new Repository(fixture.backend).rebuild(key, 'shard R/0 on node-1', { file: target })).rejects.toThrow(refusal);
    }
    // As format 2's first versions wrote it (the sha256 of those bytes), it is that file.
    const legacy = createHash('sha256').update(Buffer.concat([bytes.subarray(2 * 4096), bytes.subarray(0, 2 * 4096)])).digest('hex');
    await fixture.backend.write(key, Readable.from([await encodeObject({ ...snapshot, runs, sha256: legacy })]));
    await new Repository(fixture.backend).rebuild(key, 'shard R/0 on node-1', { file: rebuilt });
    expect(fs.readFileSync(rebuilt)).toEqual(Buffer.concat([bytes.subarray(2 * 4096), bytes.subarray(0, 2 * 4096)]));
  });

  it('fails a read that meets a corrupt or a missing pack, naming the chunk or the pack and the file', async () => {
    const repo = new Repository(fixture.backend);
    const bytes = Buffer.from(Array.from({ length: 3 * 4096 + 17 }, (_, i) => (i * 31 + (i >> 8)) & 0xff));
    await repo.write(Readable.from([bytes]), 'd1/node-1/B/0', { level: 'NoCompression' });
    const packs = (await fixture.backend.list(`${REPOSITORY_ROOT}/packs/`)).map((o) => o.key);
    // The pack holding exactly these bytes (NoCompression stores them raw).
    let target: string | undefined;
    for (const key of packs) if ((await collect(await fixture.backend.read(key))).includes(bytes.subarray(0, 64))) target = key;
    expect(target).toBeDefined();
    const damaged = await collect(await fixture.backend.read(target!));
    const at = damaged.indexOf(bytes.subarray(0, 64)) + 4096 + 5;
    damaged[at] = damaged[at]! ^ 0xff;
    await fixture.backend.write(target!, Readable.from([damaged]));
    const corrupt = await collect((await new Repository(fixture.backend).open('d1/node-1/B/0', 'shard B/0 on node-1')).stream).catch((e: unknown) => e);
    expect(corrupt).toBeInstanceOf(IntegrityError);
    expect((corrupt as Error).message).toMatch(/^chunk [0-9a-f]{64} of shard B\/0 on node-1 is corrupt/);
    // Rebuilt in place (or only checked), the same chunk is named.
    for (const file of [path.join(tmp.dir, 'rebuilt-d1.mdb'), undefined]) {
      const inPlace = await new Repository(fixture.backend).rebuild('d1/node-1/B/0', 'shard B/0 on node-1', { file }).catch((e: unknown) => e);
      expect(inPlace).toBeInstanceOf(IntegrityError);
      expect((inPlace as Error).message).toBe((corrupt as Error).message);
    }

    await fixture.backend.deletePrefix(target!);
    const missing = await collect((await new Repository(fixture.backend).open('d1/node-1/B/0', 'shard B/0 on node-1')).stream).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(IntegrityError);
    expect((missing as Error).message).toContain('of shard B/0 on node-1 is missing');
    expect((missing as Error).message).toContain(fixture.backend.locate(target!));
    expect((await fixture.backend.list(INDEX_PREFIX)).length).toBeGreaterThan(0);
  }, 60_000);

  it('fails a read whose index file is damaged or missing, naming it (a file on this host read in place by a thread, like one read through the backend)', async () => {
    const repo = new Repository(fixture.backend);
    const bytes = Buffer.from(Array.from({ length: 2 * 4096 }, (_, i) => (i * 13 + (i >> 9) + 0x5a) & 0xff));
    await repo.write(Readable.from([bytes]), 'x1/node-1/X/0', { level: 'BestSpeed' });
    const known = new Set((await fixture.backend.list(INDEX_PREFIX)).map((o) => o.key));
    await repo.write(Readable.from([Buffer.concat([bytes, Buffer.alloc(4096, 0x77)])]), 'x2/node-1/X/0', { level: 'BestSpeed' });
    const [index] = (await fixture.backend.list(INDEX_PREFIX)).map((o) => o.key).filter((k) => !known.has(k));
    expect(index).toBeDefined();
    const rebuilt = path.join(tmp.dir, 'rebuilt-x2.mdb');
    await new Repository(fixture.backend).rebuild('x2/node-1/X/0', 'shard X/0', { file: rebuilt });
    expect(fs.readFileSync(rebuilt).subarray(bytes.length).equals(Buffer.alloc(4096, 0x77))).toBe(true);

    await fixture.backend.write(index!, Readable.from([Buffer.from('not an index file')]));
    const damaged = await new Repository(fixture.backend).rebuild('x2/node-1/X/0', 'shard X/0', { file: rebuilt }).catch((e: unknown) => e);
    expect(damaged).toBeInstanceOf(IntegrityError);
    expect((damaged as Error).message.startsWith(`${fixture.backend.locate(index!)} is not a readable repository object: `)).toBe(true);
    await fixture.backend.deletePrefix(index!);
    const missing = await new Repository(fixture.backend).rebuild('x2/node-1/X/0', 'shard X/0', { file: rebuilt }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(IntegrityError);
    expect((missing as Error).message).toBe(`index file ${fixture.backend.locate(index!)} is missing`);
  }, 60_000);
});
