/**
 * Xapiand's command-line dump and restore, working on the data directory directly (also
 * while the server runs: LMDB lets several processes share it):
 *
 *     shardvault --dump-metadata=twitter --out=twitter.meta
 *     shardvault --dump-schema=twitter --out=twitter.schm
 *     shardvault --dump=twitter --out=twitter.docs
 *     shardvault --restore=twitter --in=twitter.docs
 *
 * or, with `--url`, through a running cluster's API (its nodes may be on other hosts; nothing
 * local is opened): `POST /{index}/:dump` streamed to the file, the file streamed to
 * `POST /{index}/:restore`, and `GET /{index}/:schema` / `:metadata` written as the same dump
 * files, so either kind of file restores either way.
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline as pipelineCallback, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { loadConfig, type Config } from '../../shared/config.ts';
import { fromWebStream } from '../../shared/dump/byte-streams.ts';
import { dumpIndex, encodeDump } from '../../shared/dump/dump-index.ts';
import type { RestoreItemError } from '../../shared/dump/restore-documents.ts';
import { restoreDumpFile, spoolToFile } from '../../shared/dump/restore-dump.ts';
import { ConfigError, isShardvaultError } from '../../shared/errors.ts';
import { decompressStream } from '../../shared/formats/compression.ts';
import { createDumpDecoder, readDumpHeader, type DumpHeader, type DumpKind, type DumpTrailer } from '../../shared/formats/dump-codec.ts';
import { LocalData } from '../../shared/cluster/data.ts';
import { Store } from '../../shared/store/store.ts';
import { ApiError, apiKeyFromEnv, connect, type ApiConnection } from '../client.ts';
import { EXIT } from '../exit-codes.ts';
import type { CliIo } from '../command.ts';
import { DUMP_RESTORE_HELP } from './dump-restore-help.ts';
import { createProgress } from '../progress.ts';

/** Refused documents printed one per line; the rest are counted. */
const MAX_REFUSED_LINES = 100;

/** For the API's short JSON answers (:info, :schema, :metadata); the streamed ones take as long as they take. */
const ANSWER_TIMEOUT_MS = 30_000;

interface Flags {
  action: { kind: DumpKind; index: string } | { restore: string };
  out?: string;
  in?: string;
  strict: boolean;
  quiet: boolean;
  dataDir?: string;
  nodes?: string;
  /** Work through this API instead of a data directory. */
  url?: string;
}

type DumpFlags = Flags & { action: { kind: DumpKind; index: string } };
type RestoreFlags = Flags & { action: { restore: string } };

class UsageError extends Error {}

function parseFlags(argv: string[]): Flags | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        'dump-metadata': { type: 'string' },
        'dump-schema': { type: 'string' },
        dump: { type: 'string' },
        restore: { type: 'string' },
        out: { type: 'string' },
        in: { type: 'string' },
        strict: { type: 'boolean', default: false },
        quiet: { type: 'boolean', short: 'q', default: false },
        'data-dir': { type: 'string' },
        nodes: { type: 'string' },
        url: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return 'help';
  const actions = (['dump-metadata', 'dump-schema', 'dump', 'restore'] as const).filter((k) => values[k] !== undefined);
  if (actions.length !== 1) {
    throw new UsageError(actions.length === 0 ? 'say what to do: --dump-metadata, --dump-schema, --dump or --restore' : `choose one of --${actions.join(', --')}`);
  }
  const which = actions[0]!;
  const index = values[which]!;
  if (index === '') throw new UsageError(`--${which} needs an index name`);
  if (which === 'restore') {
    if (values.out !== undefined) throw new UsageError('--out is for dumps; --restore reads --in (or stdin)');
  } else {
    if (values.in !== undefined) throw new UsageError('--in is for --restore; dumps write --out (or stdout)');
    if (values.strict) throw new UsageError('--strict is for --restore');
  }
  if (values.url !== undefined) {
    if (values['data-dir'] !== undefined || values.nodes !== undefined) {
      throw new UsageError('--url works through the API; --data-dir and --nodes are for a local data directory: give one or the other');
    }
    // The API's :restore has no strict mode; refusing the flag beats silently ignoring it.
    if (values.strict) throw new UsageError('--strict works on a local data directory only, not with --url');
    if (!/^https?:\/\/[^/]/.test(values.url)) throw new UsageError(`--url must be an http:// or https:// URL, got ${JSON.stringify(values.url)}`);
  }
  const kind: DumpKind = which === 'dump-metadata' ? 'meta' : which === 'dump-schema' ? 'schema' : 'docs';
  return {
    action: which === 'restore' ? { restore: index } : { kind, index },
    out: values.out,
    in: values.in,
    strict: values.strict,
    quiet: values.quiet,
    dataDir: values['data-dir'],
    nodes: values.nodes,
    url: values.url,
  };
}

/** The server's configuration, with --data-dir and --nodes taking the place of DATA_DIR and CLUSTER_NODES. */
function configFor(flags: Flags, env: NodeJS.ProcessEnv): Config {
  return loadConfig({
    ...env,
    ...(flags.dataDir !== undefined ? { DATA_DIR: flags.dataDir } : {}),
    ...(flags.nodes !== undefined ? { CLUSTER_NODES: flags.nodes } : {}),
  });
}

const plural = (n: number, word: string) => `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;
const KIND_WORD: Record<DumpKind, string> = { meta: 'metadata key', schema: 'schema', docs: 'document' };

const writesStdout = (flags: Flags) => flags.out === undefined || flags.out === '-';
const readsStdin = (flags: Flags) => flags.in === undefined || flags.in === '-';

/** A dump is binary: refuse to print it on a terminal (answers the exit code, or undefined to go on). */
function refuseTerminalOutput(flags: Flags, io: CliIo): number | undefined {
  if (!writesStdout(flags) || !io.stdout.isTTY) return undefined;
  io.stderr.write('shardvault: a dump is binary; write it with --out=FILE or pipe stdout to a file\n');
  return EXIT.USAGE;
}

/** A restore reads a file: refuse to wait for one typed on a terminal. */
function refuseTerminalInput(flags: Flags, io: CliIo): number | undefined {
  if (!readsStdin(flags) || !io.stdin.isTTY) return undefined;
  io.stderr.write('shardvault: --restore reads a dump file: give --in=FILE or pipe the file into stdin\n');
  return EXIT.USAGE;
}

/**
 * Write a dump's bytes to stdout, or to --out through `<out>.tmp-<pid>` renamed once the last
 * byte is written: a dump that fails halfway leaves no file that looks like a dump behind.
 */
async function writeDump(bytes: Readable | AsyncIterable<Uint8Array>, flags: Flags, io: CliIo): Promise<void> {
  if (writesStdout(flags)) {
    await pipeline(bytes, io.stdout, { end: false });
    return;
  }
  const out = path.resolve(flags.out!);
  const tmp = `${out}.tmp-${process.pid}`;
  try {
    await pipeline(bytes, createWriteStream(tmp, { flags: 'wx' }));
    await fs.rename(tmp, out);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

function dumpSummary(flags: DumpFlags, trailer: DumpTrailer, bytes: number, from: string): string {
  const { kind, index } = flags.action;
  return (
    `shardvault: dumped ${plural(trailer.count, KIND_WORD[kind])} of index ${index}${from} to ${writesStdout(flags) ? 'stdout' : flags.out} ` +
    `(${plural(bytes, 'byte')}, sha256 ${trailer.sha256})\n`
  );
}

async function dump(data: LocalData, flags: DumpFlags, io: CliIo): Promise<number> {
  const { kind, index } = flags.action;
  const refused = refuseTerminalOutput(flags, io);
  if (refused !== undefined) return refused;
  const source = await dumpIndex(data, index, kind);
  const progress = createProgress(io.stderr, {
    label: `dumping ${index}`, unit: 'docs', total: source.expected, enabled: !flags.quiet && kind === 'docs',
  });
  let count = 0;
  const records = source.records;
  source.records = (async function* counted() {
    for await (const record of records) {
      yield record;
      progress.update(++count);
    }
  })();
  const encoder = encodeDump(source);
  let bytes = 0;
  encoder.on('data', (chunk: Buffer) => (bytes += chunk.length));
  try {
    await writeDump(encoder, flags, io);
  } finally {
    progress.done();
  }
  const trailer = await encoder.trailer;
  if (!flags.quiet) io.stderr.write(dumpSummary(flags, trailer, bytes, ''));
  return EXIT.OK;
}

function describeRefused(item: RestoreItemError): string {
  const id = item._id === undefined ? 'no _id' : `_id ${JSON.stringify(item._id)}`;
  return `shardvault: refused document #${item.position} (${id}) of index ${item.index}: ${item.error}\n`;
}

/** What a restore did, local or through the API. */
interface RestoreOutcome {
  header: DumpHeader;
  indexed: number;
  refused: number;
  total: number;
}

/** The summary line and exit code of a restore (refused documents were already listed). */
function finishRestore(flags: RestoreFlags, io: CliIo, outcome: RestoreOutcome, into: string): number {
  if (outcome.refused > MAX_REFUSED_LINES) {
    io.stderr.write(`shardvault: … and ${plural(outcome.refused - MAX_REFUSED_LINES, 'more refused document')}\n`);
  }
  if (!flags.quiet) {
    const { header } = outcome;
    io.stderr.write(
      `shardvault: restored ${plural(outcome.indexed, KIND_WORD[header.kind])} into ${into} ` +
        `from ${readsStdin(flags) ? 'stdin' : flags.in} (a ${header.kind} dump of index ${header.index} made ${header.createdAt})` +
        `${header.kind === 'docs' ? `; ${plural(outcome.refused, 'document')} refused; the index holds ${plural(outcome.total, 'document')}` : ''}\n`,
    );
  }
  return outcome.refused > 0 ? EXIT.PARTIAL : EXIT.OK;
}

/** The --in file, checked to exist (a usage mistake, not a failure). */
async function inputFile(flags: RestoreFlags): Promise<string> {
  const file = path.resolve(flags.in!);
  await fs.access(file).catch(() => {
    throw new UsageError(`cannot read ${flags.in}: no such file`);
  });
  return file;
}

async function restore(data: LocalData, flags: RestoreFlags, io: CliIo): Promise<number> {
  const target = flags.action.restore;
  const refusedInput = refuseTerminalInput(flags, io);
  if (refusedInput !== undefined) return refusedInput;
  const fromStdin = readsStdin(flags);
  const progress = createProgress(io.stderr, { label: `reading stdin`, unit: 'bytes', enabled: !flags.quiet });
  let file: string;
  let cleanup = async () => {};
  if (fromStdin) {
    let bytes = 0;
    const stdin = io.stdin;
    ({ file, cleanup } = await spoolToFile(
      (async function* counted() {
        for await (const chunk of stdin as AsyncIterable<Buffer>) {
          bytes += chunk.length;
          progress.update(bytes);
          yield chunk;
        }
      })(),
    ));
  } else {
    file = await inputFile(flags);
  }
  let printed = 0;
  try {
    let phase = '';
    const result = await restoreDumpFile(data, target, file, {
      strict: flags.strict,
      onProgress: (p) => {
        if (p.phase !== phase) {
          phase = p.phase;
          progress.label(`${p.phase} ${fromStdin ? 'stdin' : flags.in}`);
        }
        progress.update(p.bytes, p.totalBytes);
      },
      onRefused: (item) => {
        if (printed++ < MAX_REFUSED_LINES) {
          progress.done();
          io.stderr.write(describeRefused(item));
        }
      },
    });
    progress.done();
    return finishRestore(flags, io, result, `index ${target}`);
  } finally {
    progress.done();
    await cleanup();
  }
}

// ---------------------------------------------------------------------------------------------
// Through the API (--url)

const segment = encodeURIComponent;
const jsonObject = z.record(z.string(), z.unknown());
const indexInfoSchema = z.object({ name: z.string(), shards: z.number().int() });
/** `POST /{index}/:restore`'s answer (api/routes/dump.ts). */
const restoreAnswerSchema = z.object({
  processed: z.number(),
  indexed: z.number(),
  total: z.number(),
  items: z.array(z.object({ index: z.string(), position: z.number(), _id: z.unknown().optional(), status: z.number(), error: z.string() })),
  refused: z.number().optional(),
});

/** Counts the bytes that pass; `onEnd` runs once the last one has. */
function byteCounter(onBytes: (bytes: number) => void, onEnd: () => void = () => {}): Transform {
  let bytes = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      onBytes(bytes);
      callback(null, chunk);
    },
    flush(callback) {
      onEnd();
      callback();
    },
  });
}

/**
 * `GET /{index}/:schema` as the `PUT /{index}/:schema` body a schema dump holds (what the
 * local dump writes): a foreign schema's answer is its object schema with `_type` and
 * `_endpoint` on top, which becomes `{_type, _endpoint, schema}` so a restore recreates the
 * shared `.schemas` document. Its description is not part of the API's answer (`.schemas` is
 * not reachable through it), so a restore into a cluster without it recreates it without one.
 */
function schemaBodyOf(described: Record<string, unknown>): Record<string, unknown> {
  if (described._type !== 'foreign/object') return described;
  const { _type, _endpoint, ...fields } = described;
  return { _type, _endpoint, schema: { ...fields, _type: 'object' } };
}

/** The dump file of an index's metadata or schema, made of the API's JSON answers. */
async function smallDumpFromApi(api: ApiConnection, index: string, kind: 'meta' | 'schema'): Promise<Readable> {
  const at = `/${segment(index)}`;
  const info = await api.json(indexInfoSchema, 'GET', `${at}/:info`, { timeoutMs: ANSWER_TIMEOUT_MS });
  const records =
    kind === 'schema'
      ? [schemaBodyOf(await api.json(jsonObject, 'GET', `${at}/:schema`, { timeoutMs: ANSWER_TIMEOUT_MS }))]
      : Object.entries(await api.json(jsonObject, 'GET', `${at}/:metadata`, { timeoutMs: ANSWER_TIMEOUT_MS })).map(([key, value]) => ({ key, value }));
  return encodeDump({ header: { kind, index: info.name, shards: info.shards }, expected: records.length, records: Readable.from(records) });
}

/** The bytes of `POST /{index}/:dump` as the dump file, streamed; a connection lost halfway is an ApiError. */
async function* docsDumpFromApi(api: ApiConnection, index: string): AsyncGenerator<Uint8Array> {
  const res = await api.send('POST', `/${segment(index)}/:dump`, { headers: { accept: 'application/octet-stream' } });
  if (!res.body) throw new ApiError(`the API at ${api.url} answered POST /${index}/:dump without a body`);
  let received = 0;
  try {
    for await (const chunk of fromWebStream(res.body)) {
      received += chunk.length;
      yield chunk;
    }
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new ApiError(`the API at ${api.url} stopped sending the dump of ${index} after ${plural(received, 'byte')} (${cause?.code ?? cause?.message ?? (err as Error).message})`);
  }
}

/**
 * Pass dump bytes through while decoding them on the side: what reaches the file has been
 * checked as it went (header, framing, count, sha256), so an answer that ends early — even
 * one that ends cleanly — fails the dump instead of leaving a short file. Answers the trailer.
 */
function verifyDump(bytes: AsyncIterable<Uint8Array>, kind: DumpKind, onBytes: (bytes: number) => void): { bytes: AsyncGenerator<Uint8Array>; trailer: Promise<DumpTrailer> } {
  const decoder = createDumpDecoder({ expectKind: kind });
  let failure: Error | undefined;
  decoder.on('error', (err) => (failure ??= err));
  decoder.resume(); // the records are not needed, only their checking
  let count = 0;
  async function* checked(): AsyncGenerator<Uint8Array> {
    try {
      for await (const chunk of bytes) {
        if (failure) throw failure;
        onBytes((count += chunk.length));
        if (!decoder.write(chunk)) await once(decoder, 'drain');
        if (failure) throw failure;
        yield chunk;
      }
      decoder.end();
      await decoder.trailer;
    } finally {
      if (!decoder.writableFinished) decoder.destroy();
    }
  }
  return { bytes: checked(), trailer: decoder.trailer };
}

async function remoteDump(api: ApiConnection, flags: DumpFlags, io: CliIo): Promise<number> {
  const { kind, index } = flags.action;
  const refused = refuseTerminalOutput(flags, io);
  if (refused !== undefined) return refused;
  const source = kind === 'docs' ? docsDumpFromApi(api, index) : await smallDumpFromApi(api, index, kind);
  // Bytes, without a total: the API does not announce a dump's size.
  const progress = createProgress(io.stderr, { label: `dumping ${index} from ${api.url}`, unit: 'bytes', enabled: !flags.quiet && kind === 'docs' });
  let bytes = 0;
  const verified = verifyDump(source, kind, (n) => progress.update((bytes = n)));
  try {
    await writeDump(verified.bytes, flags, io);
  } finally {
    progress.done();
  }
  const trailer = await verified.trailer;
  if (!flags.quiet) io.stderr.write(dumpSummary(flags, trailer, bytes, ` at ${api.url}`));
  return EXIT.OK;
}

async function remoteRestore(api: ApiConnection, flags: RestoreFlags, io: CliIo): Promise<number> {
  const target = flags.action.restore;
  const refusedInput = refuseTerminalInput(flags, io);
  if (refusedInput !== undefined) return refusedInput;
  const fromStdin = readsStdin(flags);
  const name = fromStdin ? 'stdin' : flags.in!;
  const file = fromStdin ? undefined : await inputFile(flags);
  const total = file === undefined ? undefined : (await fs.stat(file)).size;
  const progress = createProgress(io.stderr, { label: `sending ${name} to ${api.url}`, unit: 'bytes', total, enabled: !flags.quiet });
  // Once everything is sent, the API verifies the whole file and applies it before it answers.
  const counter = byteCounter((n) => progress.update(n), () => progress.label(`restoring ${name} into ${target} at ${api.url}`));
  const input: Readable = file === undefined ? io.stdin : createReadStream(file);
  // Decompressed and its header read here: a file that is not a dump is refused before
  // anything is sent, and the summary can name its kind as a local restore does.
  const plain = pipelineCallback(input, counter, decompressStream(), () => {});
  try {
    const { header, stream } = await readDumpHeader(plain);
    const answer = await api.json(restoreAnswerSchema, 'POST', `/${segment(target)}/:restore`, {
      body: { stream, contentType: 'application/octet-stream' },
    });
    progress.done();
    answer.items.slice(0, MAX_REFUSED_LINES).forEach((item) => io.stderr.write(describeRefused(item)));
    return finishRestore(flags, io, { header, indexed: answer.indexed, total: answer.total, refused: answer.refused ?? answer.items.length }, `index ${target} at ${api.url}`);
  } finally {
    progress.done();
    input.destroy();
  }
}

/** Bad arguments and failures as one line and an exit code; anything else is an internal error. */
function reportFailure(err: unknown, isDump: boolean, io: CliIo): number {
  if (err instanceof UsageError) {
    io.stderr.write(`shardvault: ${err.message}\n`);
    return EXIT.USAGE;
  }
  // The API refused or could not be reached: the line the backup commands print too.
  if (err instanceof ApiError) {
    io.stderr.write(`shardvault: ${err.message}\n`);
    return EXIT.FAILED;
  }
  if (isShardvaultError(err) && !err.retryable) {
    const what = isDump ? 'dump failed' : 'restore refused, nothing was changed';
    io.stderr.write(`shardvault: ${what}: ${err.message}\n`);
    return EXIT.FAILED;
  }
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EEXIST' || code === 'EISDIR') {
    io.stderr.write(`shardvault: ${(err as Error).message}\n`);
    return EXIT.FAILED;
  }
  throw err;
}

async function runLocal(flags: Flags, config: Config, io: CliIo): Promise<number> {
  const isDump = !('restore' in flags.action);
  if (isDump) {
    // A dump only reads: do not create a data directory as a side effect of a typo.
    const exists = await fs.stat(path.join(config.dataDir, '_cluster')).then(() => true, () => false);
    if (!exists) {
      io.stderr.write(`shardvault: no data directory at ${config.dataDir} (set DATA_DIR or --data-dir)\n`);
      return EXIT.FAILED;
    }
  }
  const store = new Store({ dataDir: config.dataDir, nodes: config.nodes });
  try {
    return isDump ? await dump(new LocalData(store), flags as DumpFlags, io) : await restore(new LocalData(store), flags as RestoreFlags, io);
  } finally {
    await store.close();
  }
}

function runRemote(flags: Flags & { url: string }, io: CliIo): Promise<number> {
  const api = connect({ url: flags.url, apiKey: apiKeyFromEnv(io.env) });
  return 'restore' in flags.action ? remoteRestore(api, flags as RestoreFlags, io) : remoteDump(api, flags as DumpFlags, io);
}

export const dumpRestoreCommand = {
  async run(argv: string[], io: CliIo): Promise<number> {
    let flags: Flags | 'help';
    let config: Config | undefined;
    try {
      flags = parseFlags(argv);
      if (flags === 'help') {
        io.stdout.write(DUMP_RESTORE_HELP);
        return EXIT.OK;
      }
      // Through the API the server's configuration is not needed (and may not be there).
      if (flags.url === undefined) config = configFor(flags, io.env);
      // With nodes on their own hosts this host's data directory holds one node's shards (and
      // its copy of the cluster's metadata, which only that node may change).
      if (config?.nodeUrls) {
        throw new UsageError('CLUSTER_NODES names nodes on their own hosts: no data directory holds the whole index; dump or restore through the API with --url=http://<api host>:<port>');
      }
    } catch (err) {
      if (err instanceof UsageError || err instanceof ConfigError) {
        io.stderr.write(`shardvault: ${err.message}\nRun "shardvault --help" for the options.\n`);
        return EXIT.USAGE;
      }
      throw err;
    }
    try {
      return flags.url !== undefined ? await runRemote({ ...flags, url: flags.url }, io) : await runLocal(flags, config!, io);
    } catch (err) {
      return reportFailure(err, !('restore' in flags.action), io);
    }
  },
};
