/**
 * What every CLI command is given and answers. Its own module so that commands and the
 * dispatcher (cli/main.ts) depend on it, not on each other.
 */
import type { Readable, Writable } from 'node:stream';

/** The process's streams and environment, passed in so tests (and other callers) can swap them. */
export interface CliIo {
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean; columns?: number };
  env: NodeJS.ProcessEnv;
}

export interface Command {
  /** The word that selects it (`shardvault <name> …`). */
  name: string;
  /** One line for `shardvault --help`. */
  summary: string;
  /** Runs with the arguments after the name; answers the exit code. */
  run(argv: string[], io: CliIo): Promise<number>;
}
