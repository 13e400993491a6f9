import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES } from '../../shared/config.ts';
import { assertBackupId, mapNodes, parseCreateRequest, parseRestoreRequest, selectClasses } from '../../shared/backups/validate.ts';

describe('backup request validation', () => {
  it('accepts Weaviate request bodies', () => {
    expect(parseCreateRequest({ id: 'b-1', include: ['A'], config: { Bucket: 'x', Path: 'p', CompressionLevel: 'BestSpeed', CPUPercentage: 40 } })).toEqual({
      id: 'b-1',
      include: ['A'],
      exclude: [],
      overrides: { bucket: 'x', path: 'p' },
      compression: 'BestSpeed',
      notes: [expect.stringMatching(/^config\.CPUPercentage is not applied: .*WORKER_CONCURRENCY/)],
    });
    expect(parseCreateRequest({ id: 'b', include: null, exclude: null, config: null }).compression).toBe('DefaultCompression');
    // Weaviate's names of its zstd levels: every level is zstd here.
    expect(parseCreateRequest({ id: 'b', config: { CompressionLevel: 'ZstdBestSpeed' } }).compression).toBe('BestSpeed');
    expect(parseRestoreRequest({ node_mapping: { a: 'b' }, config: { path: 'p' } })).toEqual({ include: [], exclude: [], nodeMapping: { a: 'b' }, overrides: { path: 'p' }, notes: [] });
    expect(parseRestoreRequest(undefined)).toEqual({ include: [], exclude: [], nodeMapping: {}, overrides: {}, notes: [] });
    // Weaviate fields that are accepted but not applied are each named, with why.
    expect(parseRestoreRequest({ config: { Endpoint: 'minio:9000', ChunkSize: 128 } }).notes).toEqual([
      expect.stringMatching(/^config\.Endpoint is not applied: /),
      expect.stringMatching(/^config\.ChunkSize is not applied: /),
    ]);
    // A note that names a setting names one that exists.
    const notes = parseCreateRequest({ id: 'n', config: { Endpoint: 'x', CPUPercentage: 50, ChunkSize: 128 } }).notes;
    expect(notes).toHaveLength(3);
    for (const variable of notes.join(' ').match(/\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b/g) ?? []) expect(CONFIG_VARIABLES).toContain(variable);
  });

  it('checks ids', () => {
    expect(assertBackupId('a_b-9')).toBe('a_b-9');
    for (const bad of ['', 'A', 'a b', 'a/b', 'a.b', 'a:b', 'x'.repeat(129)]) expect(() => assertBackupId(bad)).toThrow();
  });

  it('selects classes with * and ?, exactly, or by Weaviate capitalisation', () => {
    const all = ['Alpha', 'Apple', 'Beta', 'twitter'];
    expect(selectClasses(all, ['A*'], [], 'c')).toEqual(['Alpha', 'Apple']);
    expect(selectClasses(all, ['?eta', 'twitter'], [], 'c')).toEqual(['Beta', 'twitter']);
    expect(selectClasses(all, ['beta'], [], 'c')).toEqual(['Beta']);
    expect(selectClasses(all, [], ['A*'], 'c')).toEqual(['Beta', 'twitter']);
    expect(selectClasses(all, [], [], 'c')).toEqual(all);
    expect(() => selectClasses(all, ['Gamma'], [], 'backup "b"')).toThrow('class "Gamma" does not exist in backup "b"');
    expect(() => selectClasses([], [], [], 'this cluster')).toThrow('nothing to select: this cluster has no classes');
  });

  it('maps source nodes to target nodes: named ones first, the rest in sorted order', () => {
    expect(mapNodes(['node-1', 'node-2', 'node-3'], ['c', 'a', 'b'], {})).toEqual({ 'node-1': 'a', 'node-2': 'b', 'node-3': 'c' });
    expect(mapNodes(['node-1', 'node-2', 'node-3'], ['alpha', 'beta', 'gamma'], { 'node-1': 'gamma', 'node-2': 'alpha' })).toEqual({
      'node-1': 'gamma',
      'node-2': 'alpha',
      'node-3': 'beta',
    });
    expect(() => mapNodes(['a', 'b', 'c'], ['x', 'y'], {})).toThrow(/taken on 3 nodes \(a, b, c\) and this cluster has 2 \(x, y\)/);
  });
});
