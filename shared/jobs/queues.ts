/**
 * Read-side handles on every queue of the job catalog (`backups`, `restores`, `node-<name>`
 * for each cluster node), for the dashboard and the metrics. They never add jobs: producers
 * go through the backup service, which opens its own.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { COORDINATOR_QUEUES, nodeQueue, PREFIX } from './catalog.ts';

/** Every queue name of a cluster with these nodes, coordinators first. */
function queueNames(nodes: readonly string[]): string[] {
  return [...COORDINATOR_QUEUES, ...nodes.map(nodeQueue)];
}

export interface QueueSet {
  readonly queues: readonly Queue[];
  close(): Promise<void>;
}

/**
 * One Queue per catalog queue on a shared connection (closing them leaves the connection
 * open). Opened on first use, so an API that nobody monitors makes no extra Redis calls.
 */
export function openQueues(connection: Redis, nodes: readonly string[]): QueueSet & { readonly names: string[] } {
  const names = queueNames(nodes);
  let queues: Queue[] | undefined;
  return {
    names,
    get queues() {
      queues ??= names.map((name) => new Queue(name, { connection, prefix: PREFIX }));
      return queues;
    },
    async close() {
      await Promise.all((queues ?? []).map((q) => q.close()));
    },
  };
}
