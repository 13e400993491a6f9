/**
 * The few named errors shardvault uses. Each carries the HTTP status it maps to, so the
 * API's single error envelope can answer without knowing where the error came from.
 * Anything else thrown is wrapped as an InternalError and never shown to a client verbatim.
 */
export class ShardvaultError extends Error {
  readonly status: number = 500;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Input that is well-formed but not acceptable (Weaviate answers 422 for these). */
export class ValidationError extends ShardvaultError {
  override readonly status: number;
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
}

/** The request clashes with current state: id already used, operation in progress, class exists. */
export class ConflictError extends ShardvaultError {
  override readonly status = 422;
}

export class UnauthorizedError extends ShardvaultError {
  override readonly status = 401;
}

/** Stored bytes are not what was written: checksum, header or trailer mismatch. */
export class IntegrityError extends ShardvaultError {
  override readonly status = 422;
}

/** A dependency (Redis, a backend) is away; the caller may retry. */
export class UnavailableError extends ShardvaultError {
  override readonly status = 503;
}

/** Configuration that cannot start the process; the message names the variable. */
export class ConfigError extends ShardvaultError {}

/** The operation was cancelled through its AbortSignal. */
export class CancelledError extends ShardvaultError {
  override readonly status = 409;
}

export function isShardvaultError(err: unknown): err is ShardvaultError {
  return err instanceof ShardvaultError;
}
