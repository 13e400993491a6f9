/**
 * How a named error crosses the cluster's internal HTTP: a node answers the error envelope
 * with the error's class name in `kind`, and the caller rebuilds the same class, so a 404 of a
 * document, a clash, or damage found on a node are the same errors there as here.
 */
import {
  BadRequestError,
  CancelledError,
  ConflictError,
  IntegrityError,
  NotFoundError,
  PayloadTooLargeError,
  PermanentBackendError,
  UnauthorizedError,
  UnavailableError,
  ValidationError,
  ShardvaultError,
} from '../errors.ts';

const KINDS = {
  BadRequestError,
  CancelledError,
  ConflictError,
  IntegrityError,
  NotFoundError,
  PayloadTooLargeError,
  PermanentBackendError,
  UnauthorizedError,
  UnavailableError,
  ValidationError,
} as const;

export type ErrorKind = keyof typeof KINDS;

/** The body a node answers for an error. */
export interface WireError {
  error: { message: string }[];
  kind?: ErrorKind;
}

export function wireError(err: unknown): WireError {
  const message = err instanceof ShardvaultError ? err.message : 'internal error';
  const kind = err instanceof ShardvaultError && err.name in KINDS ? (err.name as ErrorKind) : undefined;
  return { error: [{ message }], ...(kind ? { kind } : {}) };
}

/** The named error a node answered, or an UnavailableError for anything unnamed (5xx). */
export function errorFromWire(body: Partial<WireError> | undefined, fallback: string): ShardvaultError {
  const message = body?.error?.[0]?.message ?? fallback;
  const Kind = body?.kind && body.kind in KINDS ? KINDS[body.kind] : UnavailableError;
  return new Kind(message);
}
