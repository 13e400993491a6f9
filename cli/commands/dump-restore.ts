/**
 * Xapiand's command-line dump and restore, working on the data directory directly (also
 * while the server runs: LMDB lets several processes share it):
 *
 *     shardvault --dump-metadata=twitter --out=twitter.meta
 *     shardvault --dump-schema=twitter --out=twitter.schm
 *     shardvault --dump=twitter --out=twitter.docs
 *     shardvault --restore=twitter --in=twitter.docs
 */
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { loadConfig, type Config } from '../../shared/config.ts';
import { dumpIndex, encodeDump } from '../../shared/dump/dump-index.ts';
import type { RestoreItemError } from '../../shared/dump/restore-documents.ts';
import { restoreDumpFile, spoolToFile, type DumpRestoreResult } from '../../shared/dump/restore-dump.ts';
import { ConfigError, isShardvaultError } from '../../shared/errors.ts';
import type { DumpKind } from '../../shared/formats/dump-codec.ts';
import { LocalData } from '../../shared/cluster/data.ts';
import { Store } from '../../shared/store/store.ts';
import { EXIT } from '../exit-codes.ts';
import type { CliIo } from '../command.ts';
import { DUMP_RESTORE_HELP } from './dump-restore-help.ts';
import { createProgress } from '../progress.ts';

/** Refused documents printed one per line; the rest are counted. */
const MAX_REFUSED_LINES = 100;


interface Flags {
  action: { kind: DumpKind; index: string } | { restore: string };
  out?: string;
  in?: string;
  strict: boolean;
  quiet: boolean;
  dataDir?: string;
  nodes?: string;
}

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
  const kind: DumpKind = which === 'dump-metadata' ? 'meta' : which === 'dump-schema' ? 'schema' : 'docs';
  return {
    action: which === 'restore' ? { restore: index } : { kind, index },
    out: values.out,
    in: values.in,
    strict: values.strict,
    quiet: values.quiet,
    dataDir: values['data-dir'],
    nodes: values.nodes,
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

async function dump(data: LocalData, flags: Flags & { action: { kind: DumpKind; index: string } }, io: CliIo): Promise<number> {
  const { kind, index } = flags.action;
  const toStdout = flags.out === undefined || flags.out === '-';
  if (toStdout && io.stdout.isTTY) {
    io.stderr.write('shardvault: a dump is binary; write it with --out=FILE or pipe stdout to a file\n');
    return EXIT.USAGE;
  }
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
    if (toStdout) {
      await pipeline(encoder, io.stdout, { end: false });
    } else {
      const out = path.resolve(flags.out!);
      const tmp = `${out}.tmp-${process.pid}`;
      try {
        await pipeline(encoder, createWriteStream(tmp, { flags: 'wx' }));
        await fs.rename(tmp, out);
      } catch (err) {
        await fs.rm(tmp, { force: true });
        throw err;
      }
    }
  } finally {
    progress.done();
  }
  const trailer = await encoder.trailer;
  if (!flags.quiet) {
    io.stderr.write(
      `shardvault: dumped ${plural(trailer.count, KIND_WORD[kind])} of index ${index} to ${toStdout ? 'stdout' : flags.out} ` +
        `(${plural(bytes, 'byte')}, sha256 ${trailer.sha256})\n`,
    );
  }
  return EXIT.OK;
}

function describeRefused(item: RestoreItemError): string {
  const id = item._id === undefined ? 'no _id' : `_id ${JSON.stringify(item._id)}`;
  return `shardvault: refused document #${item.position} (${id}) of index ${item.index}: ${item.error}\n`;
}

async function restore(data: LocalData, flags: Flags & { action: { restore: string } }, io: CliIo): Promise<number> {
  const target = flags.action.restore;
  const fromStdin = flags.in === undefined || flags.in === '-';
  if (fromStdin && io.stdin.isTTY) {
    io.stderr.write('shardvault: --restore reads a dump file: give --in=FILE or pipe the file into stdin\n');
    return EXIT.USAGE;
  }
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
    file = path.resolve(flags.in!);
    await fs.access(file).catch(() => {
      throw new UsageError(`cannot read ${flags.in}: no such file`);
    });
  }
  let printed = 0;
  let result: DumpRestoreResult;
  try {
    let phase = '';
    result = await restoreDumpFile(data, target, file, {
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
  } finally {
    progress.done();
    await cleanup();
  }
  if (result.refused > MAX_REFUSED_LINES) {
    io.stderr.write(`shardvault: … and ${plural(result.refused - MAX_REFUSED_LINES, 'more refused document')}\n`);
  }
  if (!flags.quiet) {
    const { header } = result;
    io.stderr.write(
      `shardvault: restored ${plural(result.indexed, KIND_WORD[header.kind])} into index ${target} ` +
        `from ${fromStdin ? 'stdin' : flags.in} (a ${header.kind} dump of index ${header.index} made ${header.createdAt})` +
        `${header.kind === 'docs' ? `; ${plural(result.refused, 'document')} refused; the index holds ${plural(result.total, 'document')}` : ''}\n`,
    );
  }
  return result.refused > 0 ? EXIT.PARTIAL : EXIT.OK;
}

export const dumpRestoreCommand = {
  async run(argv: string[], io: CliIo): Promise<number> {
    let flags: Flags | 'help';
    let config: Config;
    try {
      flags = parseFlags(argv);
      if (flags === 'help') {
        io.stdout.write(DUMP_RESTORE_HELP);
        return EXIT.OK;
      }
      config = configFor(flags, io.env);
    } catch (err) {
      if (err instanceof UsageError || err instanceof ConfigError) {
        io.stderr.write(`shardvault: ${err.message}\nRun "shardvault --help" for the options.\n`);
        return EXIT.USAGE;
      }
      throw err;
    }
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
      return isDump
        ? await dump(new LocalData(store), flags as Flags & { action: { kind: DumpKind; index: string } }, io)
        : await restore(new LocalData(store), flags as Flags & { action: { restore: string } }, io);
    } catch (err) {
      if (err instanceof UsageError) {
        io.stderr.write(`shardvault: ${err.message}\n`);
        return EXIT.USAGE;
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
    } finally {
      await store.close();
    }
  },
};
