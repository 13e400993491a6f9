import { describe, expect, it } from 'vitest';
import {
  assertProcessors,
  CATALOG,
  flowJob,
  JOB_NAMES,
  jobsOn,
  PREFIX,
  queueOf,
} from '../../shared/jobs/catalog.ts';

const noop = async () => ({}) as never;

describe('job catalog', () => {
  it('names every queue and job, with the hash-tagged prefix', () => {
    expect(PREFIX).toBe('{shardvault}');
    expect(JOB_NAMES.sort()).toEqual(['commit-backup', 'commit-restore', 'restore-shard', 'snapshot-shard']);
    expect(jobsOn('backups')).toEqual(['commit-backup']);
    expect(jobsOn('restores')).toEqual(['commit-restore']);
    expect(jobsOn('node').sort()).toEqual(['restore-shard', 'snapshot-shard']);
    expect(queueOf('snapshot-shard', 'node-2')).toBe('node-node-2');
    expect(() => queueOf('restore-shard')).toThrow(/name the node/);
  });

  it('lets children continue their parent on failure, and retries with backoff', () => {
    for (const name of ['snapshot-shard', 'restore-shard'] as const) {
      expect(CATALOG[name].options).toMatchObject({ continueParentOnFailure: true, attempts: 3, backoff: { type: 'exponential' } });
    }
    for (const name of JOB_NAMES) expect(CATALOG[name].options.removeOnComplete).toBeTruthy();
  });

  it('refuses to start without a processor for every job', () => {
    expect(() => assertProcessors({ 'commit-backup': noop, 'snapshot-shard': noop, 'commit-restore': noop })).toThrow(/no processor for job restore-shard/);
    expect(() => assertProcessors({ 'commit-backup': noop, 'snapshot-shard': noop, 'commit-restore': noop, 'restore-shard': noop, extra: noop })).toThrow(
      /processor for extra, which the job catalog does not know/,
    );
    expect(() => assertProcessors({ 'commit-backup': noop, 'snapshot-shard': noop, 'commit-restore': noop, 'restore-shard': noop })).not.toThrow();
  });

  it('parses payloads when building flow jobs', () => {
    const job = flowJob(
      'snapshot-shard',
      { op: { kind: 'backup', backend: 'filesystem', id: 'b' }, overrides: {}, node: 'node-1', index: 'A', uid: 'u', shard: 0, key: 'b/node-1/A/0', compression: 'BestSpeed' },
      'backup.filesystem.b.node-1.A.0',
    );
    expect(job).toMatchObject({ name: 'snapshot-shard', queueName: 'node-node-1', opts: { jobId: 'backup.filesystem.b.node-1.A.0', continueParentOnFailure: true } });
    expect(() => flowJob('snapshot-shard', { op: { kind: 'backup', backend: 'tape', id: 'b' } } as never, 'x')).toThrow();
  });
});
