/**
 * The identity of one backup or restore: `{ kind, backend, id }`, one value carried in every
 * job payload and handed to every function that acts on an operation. Its only string
 * encoding is the operation key, `<kind>.<backend>.<id>` (the coordinator job's id, the
 * cancel message, the root of its shard jobs' ids); `parseOperationKey` and `parseJobId` are
 * the only places that read one back.
 *
 * Deterministic and free of `:` (BullMQ's separator). Backend names, backup ids, node names
 * and index names never contain `.`, so `.` separates the parts unambiguously.
 */
import { z } from 'zod';
import { BACKEND_NAMES, type BackendName } from '../backends/backend.ts';

export const OPERATION_KINDS = ['backup', 'restore'] as const;
export type OperationKind = (typeof OPERATION_KINDS)[number];

const part = z.string().min(1).regex(/^[^.:]+$/, 'must not contain "." or ":"');

export const operationRefSchema = z.object({
  kind: z.enum(OPERATION_KINDS),
  backend: z.enum(BACKEND_NAMES),
  /** The backup's id (a restore is named by the backup it restores). */
  id: part,
});
export type OperationRef = z.infer<typeof operationRefSchema>;

/** Where one shard job works: its node, index and shard number. */
export interface ShardRef {
  node: string;
  index: string;
  shard: number;
}

export function operationRef(kind: OperationKind, backend: BackendName, id: string): OperationRef {
  return { kind, backend, id };
}

/** `backup.<backend>.<id>` / `restore.<backend>.<id>`. */
export function operationKey(op: OperationRef): string {
  return `${op.kind}.${op.backend}.${op.id}`;
}

/** The operation an operation key names; throws on anything operationKey could not have written. */
export function parseOperationKey(key: string): OperationRef {
  const [kind, backend, id, ...rest] = key.split('.');
  const parsed = operationRefSchema.safeParse({ kind, backend, id });
  if (rest.length > 0 || !parsed.success) throw new Error(`${JSON.stringify(key)} is not an operation key`);
  return parsed.data;
}

/** A shard job's id: `<operation key>.<node>.<index>.<shard>`. */
export function shardJobId(op: OperationRef, s: ShardRef): string {
  return `${operationKey(op)}.${s.node}.${s.index}.${s.shard}`;
}

/** The operation of a coordinator's or a shard job's id, and the shard for a shard job. */
export function parseJobId(jobId: string): { op: OperationRef; shard?: ShardRef } {
  const parts = jobId.split('.');
  const op = parseOperationKey(parts.slice(0, 3).join('.'));
  if (parts.length === 3) return { op };
  const [node, index, shard] = parts.slice(3);
  if (parts.length !== 6 || !node || !index || !/^\d+$/.test(shard ?? '')) throw new Error(`${JSON.stringify(jobId)} is not a job id of shardvault`);
  return { op, shard: { node, index, shard: Number(shard) } };
}

/** `shard Article/2 on node-3`, how messages name a shard. */
export function describeShard(s: ShardRef): string {
  return `shard ${s.index}/${s.shard} on ${s.node}`;
}
