/**
 * What the commands that work through a running API (`shardvault backup …`, `shardvault
 * schedule …`) share: bad arguments end with exit 2 and a pointer to the command's help; an
 * API that refuses or cannot be reached ends with exit 1 and its one line.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ApiError } from './client.ts';
import type { CliIo } from './command.ts';
import { EXIT } from './exit-codes.ts';

/** Bad arguments, found before or while calling the API. */
export class UsageError extends Error {}

/** The command line's options and positionals; an unknown or malformed option is a UsageError. */
export function parseCommandLine<const O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
}

/** Run `shardvault <command> …`, answering its exit code; other errors are the caller's. */
export async function runApiCommand(command: string, io: CliIo, run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`shardvault ${command}: ${err.message}\nRun "shardvault ${command} --help" for usage.\n`);
      return EXIT.USAGE;
    }
    if (err instanceof ApiError) {
      io.stderr.write(`shardvault: ${err.message}\n`);
      return EXIT.FAILED;
    }
    throw err;
  }
}
