import { describe, expect, it } from 'vitest';
import { describeShard, operationKey, parseJobId, parseOperationKey, shardJobId, type OperationRef } from '../../shared/jobs/operation.ts';

const op: OperationRef = { kind: 'backup', backend: 'filesystem', id: 'nightly-1' };

describe('operation reference', () => {
  it('has one encoding, free of ":", that parses back to the same operation', () => {
    expect(operationKey(op)).toBe('backup.filesystem.nightly-1');
    expect(parseOperationKey(operationKey(op))).toEqual(op);
    const restore: OperationRef = { kind: 'restore', backend: 'gcs', id: 'a_b-c' };
    expect(parseOperationKey(operationKey(restore))).toEqual(restore);
  });

  it('names a shard job by its operation and shard, and reads both back', () => {
    const id = shardJobId(op, { node: 'node-3', index: 'Article', shard: 4 });
    expect(id).toBe('backup.filesystem.nightly-1.node-3.Article.4');
    expect(id).not.toContain(':');
    expect(parseJobId(id)).toEqual({ op, shard: { node: 'node-3', index: 'Article', shard: 4 } });
    expect(parseJobId(operationKey(op))).toEqual({ op });
    expect(describeShard({ node: 'node-3', index: 'Article', shard: 4 })).toBe('shard Article/4 on node-3');
  });

  it('refuses strings it could not have written', () => {
    for (const bad of ['', 'backup', 'backup.tape.x', 'copy.filesystem.x', 'backup.filesystem.x.extra', 'backup.filesystem.']) {
      expect(() => parseOperationKey(bad), bad).toThrow(/not an operation key/);
    }
    for (const bad of ['backup.filesystem.x.node-1', 'backup.filesystem.x.node-1.A.one', 'backup.filesystem.x.node-1.A.1.2']) {
      expect(() => parseJobId(bad), bad).toThrow(/not/);
    }
  });
});
