/** Exit codes every shardvault command uses. */
export const EXIT = {
  OK: 0,
  /** The operation failed; nothing was changed. */
  FAILED: 1,
  /** Bad arguments or configuration. */
  USAGE: 2,
  /** A restore finished, but some documents were refused (they are listed on stderr). */
  PARTIAL: 3,
  /** The reader of the output went away (`| head`): 128 + SIGPIPE, as other Unix tools end then. */
  READER_GONE: 141,
} as const;
