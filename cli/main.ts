/**
 * `shardvault …`: the command-line entry point, a dispatcher. A first argument naming a
 * subcommand (`shardvault backup …`, added by the commands table below) runs that command
 * with the remaining arguments; anything else is Xapiand's flag style
 * (`--dump=twitter --out=twitter.docs`), handled by the dump/restore command.
 */
import type { CliIo, Command } from './command.ts';
import { DUMP_RESTORE_HELP } from './commands/dump-restore-help.ts';
import { EXIT } from './exit-codes.ts';

export { EXIT };

/**
 * Subcommands by name. The Xapiand-style flags (no subcommand) are the default command.
 * Another command registers here with one entry. A command's module is loaded only when it
 * runs, so `--help` loads no store, HTTP client or codec.
 */
const COMMANDS: readonly Command[] = [
  {
    name: 'backup',
    summary: 'create, list, show the status of, restore, cancel, verify and delete backups through a running API',
    run: async (argv, io) => (await import('./commands/backup.ts')).runBackupCommand(argv, io),
  },
  {
    name: 'schedule',
    summary: 'set, list, show, run and delete backup schedules (with retention) through a running API',
    run: async (argv, io) => (await import('./commands/schedule.ts')).runScheduleCommand(argv, io),
  },
];

export function usage(): string {
  const subcommands = COMMANDS.length
    ? `\nCommands:\n${COMMANDS.map((c) => `  shardvault ${c.name.padEnd(10)} ${c.summary}`).join('\n')}\n` +
      `  (run "shardvault <command> --help" for its options)\n`
    : '';
  return `${DUMP_RESTORE_HELP}${subcommands}`;
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    io.stderr.write(usage());
    return EXIT.USAGE;
  }
  if (first === 'help' || first === '--help' || first === '-h') {
    io.stdout.write(usage());
    return EXIT.OK;
  }
  const command = COMMANDS.find((c) => c.name === first);
  if (command) return command.run(rest, io);
  const hoisted = optionsBeforeCommand(argv);
  if (hoisted) return hoisted.command.run(hoisted.argv, io);
  if (!first.startsWith('-')) {
    io.stderr.write(`shardvault: unknown command ${JSON.stringify(first)}; run "shardvault --help"\n`);
    return EXIT.USAGE;
  }
  return (await import('./commands/dump-restore.ts')).dumpRestoreCommand.run(argv, io);
}

/**
 * `shardvault --url URL [--json] backup list …`: the options every API command takes, given
 * before the command as with other tools' global options, are handed to it after its own
 * arguments. Answers nothing when no command follows them (Xapiand's flags also take --url).
 */
function optionsBeforeCommand(argv: string[]): { command: Command; argv: string[] } | undefined {
  let i = 0;
  while (i < argv.length) {
    if (argv[i] === '--url') i += 2;
    else if (argv[i]!.startsWith('--url=') || argv[i] === '--json') i += 1;
    else break;
  }
  const command = i > 0 ? COMMANDS.find((c) => c.name === argv[i]) : undefined;
  return command && { command, argv: [...argv.slice(i + 1), ...argv.slice(0, i)] };
}

/** What bin/shardvault.js calls: runs with the real process and exits with the answer. */
export async function run(argv: string[] = process.argv.slice(2)): Promise<never> {
  // Node ignores SIGPIPE, so a reader that goes away (`shardvault backup list … | head`) is a
  // write error: the command ends quietly, as SIGPIPE would end it, instead of with a stack.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') process.stderr.write(`shardvault: cannot write the output: ${err.message}\n`);
    process.exit(err.code === 'EPIPE' ? EXIT.READER_GONE : EXIT.FAILED);
  });
  let code: number;
  try {
    code = await main(argv, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env });
  } catch (err) {
    process.stderr.write(`shardvault: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    code = EXIT.FAILED;
  }
  // Exit once what was written has been handed to the OS (a write's callback runs after it).
  await Promise.all([process.stdout, process.stderr].map((s) => new Promise<void>((resolve) => s.write('', () => resolve()))));
  process.exit(code);
}
