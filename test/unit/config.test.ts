import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../shared/config.ts';

describe('config', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c.port).toBe(8080);
    expect(c.host).toBe('127.0.0.1');
    expect(c.nodes).toEqual(['node-1', 'node-2', 'node-3']);
    expect(c.workerNodes).toEqual(c.nodes);
    expect(c.dataDir).toBe(path.resolve('./data'));
    expect(c.backends.filesystem.path).toBe(path.resolve('./backups'));
    expect(c.backends.s3).toBeUndefined();
    expect(c.backends.gcs).toBeUndefined();
    expect(c.auth.enabled).toBe(false);
  });

  it('names the variable when a value is bad', () => {
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT/);
    expect(() => loadConfig({ CLUSTER_NODES: 'a,a' })).toThrow(/CLUSTER_NODES: node names must be unique/);
    expect(() => loadConfig({ CLUSTER_NODES: 'A B' })).toThrow(/CLUSTER_NODES/);
    expect(() => loadConfig({ WORKER_NODES: 'node-9' })).toThrow('WORKER_NODES: node-9 not in CLUSTER_NODES');
    expect(() => loadConfig({ AUTHENTICATION_APIKEY_ENABLED: 'true' })).toThrow(/AUTHENTICATION_APIKEY_ALLOWED_KEYS/);
    expect(() => loadConfig({ AUTHENTICATION_APIKEY_ENABLED: 'maybe' })).toThrow(/AUTHENTICATION_APIKEY_ENABLED/);
    expect(() => loadConfig({ LOG_LEVEL: 'loud' })).toThrow(/LOG_LEVEL/);
    expect(() => loadConfig({ REDIS_URL: 'not a url' })).toThrow(/REDIS_URL/);
  });

  it('enables a cloud backend only when its bucket is set', () => {
    const c = loadConfig({ BACKUP_S3_BUCKET: 'b', BACKUP_S3_ENDPOINT: 'localhost:9000', BACKUP_S3_USE_SSL: 'false', BACKUP_GCS_BUCKET: 'g' });
    expect(c.backends.s3).toMatchObject({ bucket: 'b', endpoint: 'localhost:9000', useSSL: false, region: 'us-east-1' });
    expect(c.backends.gcs).toMatchObject({ bucket: 'g', path: '' });
  });

  it('takes each cloud backend its own request timeout, in seconds, default 120', () => {
    const c = loadConfig({ BACKUP_S3_BUCKET: 'b', BACKUP_GCS_BUCKET: 'g', BACKUP_GCS_REQUEST_TIMEOUT_SECONDS: '7' });
    expect(c.backends.s3?.requestTimeoutMs).toBe(120_000);
    expect(c.backends.gcs?.requestTimeoutMs).toBe(7_000);
    expect(loadConfig({ BACKUP_GCS_BUCKET: 'g' }).backends.gcs?.requestTimeoutMs).toBe(120_000);
    expect(() => loadConfig({ BACKUP_GCS_REQUEST_TIMEOUT_SECONDS: '0' })).toThrow(/BACKUP_GCS_REQUEST_TIMEOUT_SECONDS/);
  });

  it('parses node lists and auth keys', () => {
    const c = loadConfig({ CLUSTER_NODES: 'a, b ,c', WORKER_NODES: 'b', AUTHENTICATION_APIKEY_ENABLED: 'true', AUTHENTICATION_APIKEY_ALLOWED_KEYS: 'k1,k2' });
    expect(c.nodes).toEqual(['a', 'b', 'c']);
    expect(c.workerNodes).toEqual(['b']);
    expect(c.auth).toEqual({ enabled: true, keys: ['k1', 'k2'] });
  });
});

describe('config of nodes on their own hosts', () => {
  const secret = 'a-cluster-secret-of-some-length';

  it('takes name=URL pairs, and then needs CLUSTER_SECRET', () => {
    const c = loadConfig({ CLUSTER_NODES: 'n1=http://h1:7001/,n2=https://h2:7001', CLUSTER_SECRET: secret, NODE_NAME: 'n2' });
    expect(c.nodes).toEqual(['n1', 'n2']);
    expect(c.nodeUrls).toEqual({ n1: 'http://h1:7001', n2: 'https://h2:7001' });
    expect(c.nodeName).toBe('n2');
    expect(loadConfig({ CLUSTER_NODES: 'n1,n2' }).nodeUrls).toBeUndefined();
    expect(() => loadConfig({ CLUSTER_NODES: 'n1=http://h1:7001' })).toThrow('CLUSTER_SECRET: required when CLUSTER_NODES gives node URLs');
  });

  it('refuses a list that mixes names with and without URLs, a bad URL, a short secret and an unknown NODE_NAME', () => {
    expect(() => loadConfig({ CLUSTER_NODES: 'n1=http://h1:7001,n2', CLUSTER_SECRET: secret })).toThrow(/CLUSTER_NODES: give a URL for every node or for none/);
    expect(() => loadConfig({ CLUSTER_NODES: 'n1=ftp://h1', CLUSTER_SECRET: secret })).toThrow(/CLUSTER_NODES/);
    expect(() => loadConfig({ CLUSTER_NODES: 'n1=http://h1:7001', CLUSTER_SECRET: 'short' })).toThrow(/CLUSTER_SECRET: .*16/);
    expect(() => loadConfig({ CLUSTER_NODES: 'n1=http://h1:7001', CLUSTER_SECRET: secret, NODE_NAME: 'n9' })).toThrow('NODE_NAME: n9 is not in CLUSTER_NODES');
  });

  it('never repeats the secret in an error', () => {
    const bad = 'x'.repeat(10);
    expect(() => loadConfig({ CLUSTER_NODES: 'n1=http://h1:7001', CLUSTER_SECRET: bad })).toThrow(expect.objectContaining({ message: expect.not.stringContaining(bad) }));
  });
});
