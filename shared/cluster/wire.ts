/**
 * How a named error crosses the cluster's internal HTTP: a node answers the error envelope
 * with the error's class name in `kind`, and the caller rebuilds the same class, so a 404 of a
 * document, a clash, or damage found on a node are the same errors there as here.
 */
import * as errors from '../errors.ts';
import { ShardvaultError, UnavailableError } from '../errors.ts';

type ErrorClass = new (message: string) => ShardvaultError;

/** Every named error class of shared/errors.ts, by name. */
const KINDS = new Map<string, ErrorClass>(
  (Object.values(errors) as unknown[])
    .filter((v): v is ErrorClass => typeof v === 'function' && v.prototype instanceof ShardvaultError)
    .map((k): [string, ErrorClass] => [k.name, k]),
);

/** The body a node answers for an error. */
export interface WireError {
  error: { message: string }[];
  kind?: string;
}

export function wireError(err: unknown): WireError {
  const message = err instanceof ShardvaultError ? err.message : 'internal error';
  const kind = err instanceof ShardvaultError && KINDS.has(err.name) ? err.name : undefined;
  return { error: [{ message }], ...(kind ? { kind } : {}) };
}

/** The named error a node answered, or an UnavailableError for anything unnamed (5xx). */
export function errorFromWire(body: Partial<WireError> | undefined, fallback: string): ShardvaultError {
  const message = body?.error?.[0]?.message ?? fallback;
  const Kind = (body?.kind && KINDS.get(body.kind)) || UnavailableError;
  return new Kind(message);
}
