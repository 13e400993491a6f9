/**
 * The few named errors shardvault uses. Each says what went wrong by its class and whether
 * trying again can help (`retryable`: workers retry a job, and the request path a backend
 * call, only then). What a caller sees is chosen where the caller is: the HTTP status by the
 * API (api/errors.ts), the exit code by the CLI (cli/exit-codes.ts). Anything else thrown is
 * an internal error, never shown to a client verbatim.
 */
export class ShardvaultError extends Error {
  /** Whether the same call may succeed later. An error of no more precise kind may pass. */
  readonly retryable: boolean = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Input that is well-formed but not acceptable (Weaviate answers 422 for these). */
export class ValidationError extends ShardvaultError {
  override readonly retryable = false;
}

/** Input that cannot even be parsed: malformed JSON, wrong content type, truncated body. */
export class BadRequestError extends ValidationError {}

/** A body or a value over its configured limit. */
export class PayloadTooLargeError extends ValidationError {}

export class NotFoundError extends ShardvaultError {
  override readonly retryable = false;
}

/** The request clashes with current state: id already used, operation in progress, class exists. */
export class ConflictError extends ShardvaultError {
  override readonly retryable = false;
}

export class UnauthorizedError extends ShardvaultError {
  override readonly retryable = false;
}

/** Stored bytes are not what was written: checksum, header or trailer mismatch. */
export class IntegrityError extends ShardvaultError {
  override readonly retryable = false;
}

/** A dependency (Redis, a backend) is away; the caller may retry. */
export class UnavailableError extends ShardvaultError {
  override readonly retryable = true;
}

/**
 * A shard its node should hold but does not: the node took the cluster's metadata after losing
 * its data directory. Waiting does not bring it back (a restore from a backup does), so it is
 * not retried; the API answers 503 as for any data that cannot be served.
 */
export class LostShardError extends ShardvaultError {
  override readonly retryable = false;
}

/** Configuration that cannot start the process; the message names the variable. */
export class ConfigError extends ShardvaultError {
  override readonly retryable = false;
}

/** The operation was cancelled through its AbortSignal. */
export class CancelledError extends ShardvaultError {
  override readonly retryable = false;
}

export function isShardvaultError(err: unknown): err is ShardvaultError {
  return err instanceof ShardvaultError;
}

/**
 * A backend failure that retrying cannot fix: the bucket does not exist, the credentials are
 * refused, the filesystem root is not writable. The message names the cause in words an
 * operator can act on (`s3 bucket "x" does not exist`) and never contains a credential.

 */
export class PermanentBackendError extends ShardvaultError {
  override readonly retryable = false;
}

/** Whether trying again may help: anything but a shardvault error that says it cannot. */
export function retryCanHelp(err: unknown): boolean {
  return !(err instanceof ShardvaultError) || err.retryable;
}
