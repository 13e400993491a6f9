/**
 * Planning: which jobs a backup or a restore runs, as one BullMQ flow (ARCHITECTURE.md §5).
 * Pure functions of what was requested and what the cluster or the backup holds — no Redis,
 * no backend, no clock — so every rule here is unit-tested on its own
 * (test/unit/backups.plan.test.ts). The service (service.ts) gathers the inputs, records the
 * operation and adds the flow.
 */
import { IntegrityError } from '../errors.ts';
import type { CompressionLevel } from '../formats/compression.ts';
import { flowJob, type FlowJobSpec, type IndexSnapshot, type RestoredIndex } from '../jobs/catalog.ts';
import { operationKey, shardJobId, type OperationRef } from '../jobs/operation.ts';
import { nodeManifestKey, shardObjectKey, type NodeManifest } from './manifest.ts';
import type { Overrides } from './validate.ts';

export interface Plan {
  /** The coordinator, with every shard job as a child. */
  parent: FlowJobSpec;
  shards: number;
}

export interface BackupPlanInput {
  op: OperationRef;
  overrides: Overrides;
  compression: CompressionLevel;
  /** Every node of this cluster, in its order. */
  nodes: string[];
  /** The selected classes, as they are now. */
  indexes: IndexSnapshot[];
  startedAt: string;
  incrementalBase?: string;
  /** The backup schedule that started it (recorded in its manifest for that schedule's retention). */
  schedule?: string;
}

/** One `snapshot-shard` per shard, on the queue of the node that holds it, under `commit-backup`. */
export function planBackup(input: BackupPlanInput): Plan {
  const { op, overrides, compression } = input;
  const children = input.indexes.flatMap((index) =>
    index.placement.map((node, shard) =>
      flowJob(
        'snapshot-shard',
        { op, overrides, node, index: index.name, uid: index.uid, shard, key: shardObjectKey(op.id, node, index.name, shard), compression },
        shardJobId(op, { node, index: index.name, shard }),
      ),
    ),
  );
  const parent = flowJob(
    'commit-backup',
    {
      op,
      overrides,
      nodes: input.nodes,
      classes: input.indexes.map((i) => i.name),
      compression,
      startedAt: input.startedAt,
      indexes: input.indexes,
      ...(input.incrementalBase ? { incrementalBase: input.incrementalBase } : {}),
      ...(input.schedule ? { schedule: input.schedule } : {}),
    },
    operationKey(op),
    children,
  );
  return { parent, shards: children.length };
}

export interface RestorePlanInput {
  op: OperationRef;
  overrides: Overrides;
  /** The selected classes of the backup. */
  classes: string[];
  /** Source node → target node, for every source node of the backup. */
  mapping: Record<string, string>;
  /** The backup's per-node manifests, by source node. */
  nodeManifests: ReadonlyMap<string, NodeManifest>;
}

/**
 * One `restore-shard` per shard of each class, on the queue of its target node, under
 * `commit-restore`. A backup whose manifests do not describe every shard of a selected class
 * is refused (IntegrityError naming what is missing) before any job exists.
 */
export function planRestore(input: RestorePlanInput): Plan & { indexes: RestoredIndex[] } {
  const { op, overrides, mapping, nodeManifests } = input;
  const where = `backup ${JSON.stringify(op.id)}`;
  const indexes: RestoredIndex[] = [];
  const children: { job: FlowJobSpec; work: number }[] = [];
  for (const cls of input.classes) {
    const snap = [...nodeManifests.values()].flatMap((m) => m.indexes).find((i) => i.name === cls);
    if (!snap) throw new IntegrityError(`${where} is incomplete: no node manifest describes class ${cls}`);
    const placement = snap.placement.map((source) => {
      const target = mapping[source];
      if (!target) throw new IntegrityError(`${where} places a shard of ${cls} on ${source}, which is not one of its nodes`);
      return target;
    });
    indexes.push({ name: cls, shards: snap.shards, placement, schema: snap.schema, effectiveSchema: snap.effectiveSchema, metadata: snap.metadata });
    snap.placement.forEach((source, shard) => {
      const object = nodeManifests.get(source)?.shards.find((s) => s.index === cls && s.shard === shard);
      if (!object) throw new IntegrityError(`${where} is incomplete: ${nodeManifestKey(op.id, source)} lists no object for shard ${cls}/${shard}`);
      const node = placement[shard]!;
      children.push({
        // What the restore reads and writes: the shard's file (format 2), its dump object (format 1).
        work: object.file?.size ?? object.bytes,
        job: flowJob(
          'restore-shard',
          {
            op,
            overrides,
            sourceNode: source,
            node,
            index: cls,
            shard,
            key: object.key,
            sha256: object.sha256,
            bytes: object.bytes,
            docs: object.docs,
            ...(object.file ? { file: object.file } : {}),
          },
          shardJobId(op, { node, index: cls, shard }),
        ),
      });
    });
  }
  // Largest first: each node's queue is taken in order, so the last jobs a restore waits for
  // are small ones instead of a large shard left running alone.
  children.sort((a, b) => b.work - a.work);
  const parent = flowJob(
    'commit-restore',
    { op, overrides, classes: input.classes, nodeMapping: mapping, indexes },
    operationKey(op),
    children.map((c) => c.job),
  );
  return { parent, shards: children.length, indexes };
}
