/**
 * The few named errors shardvault uses. Each says whether trying again can help (`retryable`:
 * workers retry a job, and the request path a backend call, only then) and carries the HTTP
 * status it maps to, so the API's single error envelope can answer without knowing where the
 * error came from. Anything else thrown is wrapped as an InternalError and never shown to a
 * client verbatim.
 */
export class ShardvaultError extends Error {
  readonly status: number = 500;
  /** Whether the same call may succeed later. An error of no more precise kind may pass. */
  readonly retryable: boolean = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Input that is well-formed but not acceptable (Weaviate answers 422 for these). */
export class ValidationError extends ShardvaultError {
  override readonly status: number;
  override readonly retryable = false;
  constructor(message: string, status = 422) {
    super(message);
    this.status = status;
  }
}

/** Input that cannot even be parsed: malformed JSON, wrong content type, truncated body. */
export class BadRequestError extends ValidationError {
  constructor(message: string) {
    super(message, 400);
  }
}

export class PayloadTooLargeError extends ValidationError {
  constructor(message: string) {
    super(message, 413);
  }
}

export class NotFoundError extends ShardvaultError {
  override readonly status = 404;
  override readonly retryable = false;
}

/** The request clashes with current state: id already used, operation in progress, class exists. */
export class ConflictError extends ShardvaultError {
  override readonly status = 422;
  override readonly retryable = false;
}

export class UnauthorizedError extends ShardvaultError {
  override readonly status = 401;
  override readonly retryable = false;
}

/** Stored bytes are not what was written: checksum, header or trailer mismatch. */
export class IntegrityError extends ShardvaultError {
  override readonly status = 422;
  override readonly retryable = false;
}

/** A dependency (Redis, a backend) is away; the caller may retry. */
export class UnavailableError extends ShardvaultError {
  override readonly status = 503;
  override readonly retryable = true;
}

/** Configuration that cannot start the process; the message names the variable. */
export class ConfigError extends ShardvaultError {
  override readonly retryable = false;
}

/** The operation was cancelled through its AbortSignal. */
export class CancelledError extends ShardvaultError {
  override readonly status = 409;
  override readonly retryable = false;
}

export function isShardvaultError(err: unknown): err is ShardvaultError {
  return err instanceof ShardvaultError;
}

/**
 * A backend failure that retrying cannot fix: the bucket does not exist, the credentials are
 * refused, the filesystem root is not writable. The message names the cause in words an
 * operator can act on (`s3 bucket "x" does not exist`) and never contains a credential.
 *
 * Answers 422 like Weaviate does when a backup cannot start on a misconfigured backend.
 */
export class PermanentBackendError extends ShardvaultError {
  override readonly status = 422;
  override readonly retryable = false;
}

/** Whether trying again may help: anything but a shardvault error that says it cannot. */
export function retryCanHelp(err: unknown): boolean {
  return !(err instanceof ShardvaultError) || err.retryable;
}
