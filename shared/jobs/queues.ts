/**
 * Handles on the queues of the job catalog, the one place they are opened: every queue of a
 * cluster for the dashboard and the metrics (`openQueues`), and the producer's queues, opened
 * by name as they are needed, with the FlowProducer that adds flows (`openProducer`).
 */
import { FlowProducer, Queue, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { COORDINATOR_QUEUES, nodeQueue, PREFIX, queueOf, SCHEDULES_QUEUE, type FlowJobSpec } from './catalog.ts';
import { operationKey, type OperationRef } from './operation.ts';

/** Every queue name of a cluster with these nodes, coordinators first, scheduled runs last. */
function queueNames(nodes: readonly string[]): string[] {
  return [...COORDINATOR_QUEUES, ...nodes.map(nodeQueue), SCHEDULES_QUEUE];
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

export interface Producer {
  /** The queue of this name, opened on first use and kept. */
  queue(name: string): Queue;
  /** Add one flow (a parent and its children) built by `flowJob()`. */
  addFlow(parent: FlowJobSpec): Promise<void>;
  /** The coordinator job (the flow's parent) of an operation, while BullMQ keeps it. */
  coordinatorJob(op: OperationRef): Promise<Job | undefined>;
  close(): Promise<void>;
}

/** What the backup service adds jobs and looks jobs up with, on a shared connection. */
export function openProducer(connection: Redis): Producer {
  const flows = new FlowProducer({ connection, prefix: PREFIX });
  const queues = new Map<string, Queue>();
  const queue = (name: string): Queue => {
    let q = queues.get(name);
    if (!q) {
      q = new Queue(name, { connection, prefix: PREFIX });
      queues.set(name, q);
    }
    return q;
  };
  return {
    queue,
    coordinatorJob: async (op) => queue(queueOf(op.kind === 'backup' ? 'commit-backup' : 'commit-restore')).getJob(operationKey(op)),
    async addFlow(parent) {
      await flows.add(parent as Parameters<FlowProducer['add']>[0]);
    },
    async close() {
      await flows.close();
      await Promise.all([...queues.values()].map((q) => q.close()));
    },
  };
}
