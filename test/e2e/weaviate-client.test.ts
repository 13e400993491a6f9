/**
 * shardvault driven by Weaviate's current TypeScript client (`weaviate-client` 3.x), as a user
 * of Weaviate would (issue 11, items 2 and 3): connect with the default init checks (version
 * from /v1/meta, then gRPC health), read collections, and create, watch, list, cancel and
 * restore backups — with the client's own error types for shardvault's 422, 404 and 401.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import weaviate, { ApiKey, type WeaviateClient } from 'weaviate-client';
import { UNIMPLEMENTED_MESSAGE } from '../../api/grpc-health.ts';
import { startCluster, type Cluster } from '../support/cluster.ts';
import { tempDir } from '../support/temp.ts';

const KEY = 'client-key';

/** The client's error classes are not exported: they are told apart by their class name. */
const errorClass = (err: unknown) => (err as Error | undefined)?.constructor.name;
const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as Error & { code?: number });
const NODES = ['node-1', 'node-2', 'node-3'];

describe('weaviate-client 3.x against shardvault', () => {
  const tmp = tempDir('shardvault-weaviate-client-');
  let A: Cluster;
  let client: WeaviateClient;
  const connect = (key: string) =>
    weaviate.connectToCustom({
      httpHost: '127.0.0.1',
      httpPort: Number(new URL(A.url).port),
      grpcHost: '127.0.0.1',
      grpcPort: A.grpcPort,
      authCredentials: new ApiKey(key),
    });

  beforeAll(async () => {
    A = await startCluster({
      name: 'weaviate-client',
      dataDir: path.join(tmp.dir, 'data'),
      nodes: NODES,
      backendEnv: { BACKUP_FILESYSTEM_PATH: path.join(tmp.dir, 'backups') },
      workers: 1,
      env: { AUTHENTICATION_APIKEY_ENABLED: 'true', AUTHENTICATION_APIKEY_ALLOWED_KEYS: KEY },
    });
    client = await connect(KEY);
  }, 180_000);

  afterAll(async () => {
    await client?.close();
    await A?.stop();
    tmp.cleanup();
  });

  it('connects with the default init checks: the version is accepted and gRPC health answers SERVING', async () => {
    expect(await client.isReady()).toBe(true);
    const meta = await client.getMeta();
    expect(meta.version).toBe('1.27.0');
  });

  it('a wrong key is refused at connect time (401) with the reason', async () => {
    const err = await failure(connect('wrong-key'));
    expect(errorClass(err)).toBe('WeaviateStartUpError');
    // The client names a 401 "Unauthenticated" and quotes shardvault's error envelope.
    expect(String(err?.message)).toMatch(/Unauthenticated: .*invalid API key/);
  });

  it('collections: create, exists, listAll and export read every class as Weaviate returns it', async () => {
    await client.collections.create({
      name: 'Book',
      properties: [
        { name: 'title', dataType: 'text' },
        { name: 'pages', dataType: 'int' },
      ],
    });
    const books = client.collections.use('Book');
    for (let i = 0; i < 30; i++) await books.data.insert({ title: `Book ${i}`, pages: 100 + i });
    expect(await client.collections.exists('Book')).toBe(true);
    expect(await client.collections.exists('Nope')).toBe(false);
    const all = await client.collections.listAll();
    expect(all.map((c) => c.name)).toEqual(['Book']);
    const exported = await client.collections.export('Book');
    expect(exported.name).toBe('Book');
    expect(exported.properties.map((p) => [p.name, p.dataType])).toEqual([
      ['title', 'text'],
      ['pages', 'int'],
    ]);
    expect(exported.vectorizers.default?.vectorizer.name).toBe('none');
    expect(exported.sharding.actualCount).toBe(NODES.length);
    expect(exported.replication.factor).toBe(1);
    expect(exported.multiTenancy.enabled).toBe(false);
  });

  it('objects one by one: insert, exists, replace, update, deleteById; the nodes', async () => {
    await client.collections.create({ name: 'Note', properties: [{ name: 'text', dataType: 'text' }, { name: 'stars', dataType: 'int' }] });
    const notes = client.collections.use('Note');
    const id = await notes.data.insert({ text: 'first', stars: 1 });
    expect(await notes.data.exists(id)).toBe(true);
    await notes.data.replace({ id, properties: { text: 'replaced', stars: 2 } });
    await notes.data.update({ id, properties: { stars: 3 } });
    const one = await A.call('GET', `/v1/objects/Note/${id}`, undefined, { headers: { authorization: `Bearer ${KEY}` } });
    expect(((await one.json()) as { properties: unknown }).properties).toEqual({ text: 'replaced', stars: 3 });
    expect(await notes.data.deleteById(id)).toBe(true);
    expect(await notes.data.exists(id)).toBe(false);
    const nodes = await client.cluster.nodes();
    expect(nodes.map((n) => [n.name, n.status])).toEqual(NODES.map((n) => [n, 'HEALTHY']));
    await client.collections.delete('Note');
  });

  it('backups: create with waitForCompletion, status, list, restore with waitForCompletion, restore status', async () => {
    // Weaviate's zstd level names are accepted (every level is zstd here).
    const created = await client.backup.create({ backupId: 'client-1', backend: 'filesystem', includeCollections: ['Book'], waitForCompletion: true, config: { compressionLevel: 'ZstdBestSpeed' } });
    expect(created).toMatchObject({ id: 'client-1', backend: 'filesystem', status: 'SUCCESS', collections: ['Book'] });
    expect(await client.backup.getCreateStatus({ backupId: 'client-1', backend: 'filesystem' })).toMatchObject({ id: 'client-1', status: 'SUCCESS' });
    const listed = (await client.backup.list('filesystem')) as unknown as { id: string; status: string; classes: string[] }[];
    expect(listed).toEqual([expect.objectContaining({ id: 'client-1', status: 'SUCCESS', classes: ['Book'] })]);

    await client.collections.delete('Book');
    const restored = await client.backup.restore({ backupId: 'client-1', backend: 'filesystem', waitForCompletion: true });
    expect(restored).toMatchObject({ id: 'client-1', status: 'SUCCESS', collections: ['Book'] });
    expect(await client.backup.getRestoreStatus({ backupId: 'client-1', backend: 'filesystem' })).toMatchObject({ status: 'SUCCESS' });
    const count = await A.call('GET', '/Book/:info', undefined, { headers: { authorization: `Bearer ${KEY}` } });
    expect(((await count.json()) as { docs: number }).docs).toBe(30);
  }, 120_000);

  it('cancel: a running backup is cancelled; cancelling an unknown one answers false (404)', async () => {
    await client.backup.create({ backupId: 'client-2', backend: 'filesystem' });
    expect(await client.backup.cancel({ backupId: 'client-2', backend: 'filesystem' })).toBe(true);
    expect(await client.backup.cancel({ backupId: 'never-made', backend: 'filesystem' })).toBe(false);
    // The list as Weaviate orders it: newest first, or oldest first when the client asks.
    const ids = async (startedAtAsc?: boolean) => ((await client.backup.list('filesystem', startedAtAsc ? { startedAtAsc } : undefined)) as unknown as { id: string }[]).map((b) => b.id);
    expect(await ids()).toEqual(['client-2', 'client-1']);
    expect(await ids(true)).toEqual(['client-1', 'client-2']);
  });

  it("the client's own errors for 422 (id already used, unknown backend) and 404 (unknown backup)", async () => {
    const used = await failure(client.backup.create({ backupId: 'client-1', backend: 'filesystem' }));
    expect(errorClass(used)).toBe('WeaviateBackupFailed');
    expect(used?.message).toMatch(/422.*already exists/);
    const unknownBackend = await failure(client.backup.create({ backupId: 'client-3', backend: 'azure' as 'filesystem' }));
    expect(errorClass(unknownBackend)).toBe('WeaviateBackupFailed');
    expect(unknownBackend?.message).toMatch(/422/);
    const notFound = await failure(client.backup.getCreateStatus({ backupId: 'never-made', backend: 'filesystem' }));
    expect(errorClass(notFound)).toBe('WeaviateUnexpectedStatusCodeError');
    expect(notFound?.code).toBe(404);
  });

  it('gRPC: Weaviate\'s own service answers UNIMPLEMENTED saying what shardvault serves', async () => {
    const raw = new grpc.Client(`127.0.0.1:${A.grpcPort}`, grpc.credentials.createInsecure());
    try {
      const err = await new Promise<grpc.ServiceError>((resolve) =>
        raw.makeUnaryRequest('/weaviate.v1.Weaviate/Search', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (e) => resolve(e!)),
      );
      expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
      expect(err.details).toBe(UNIMPLEMENTED_MESSAGE);
    } finally {
      raw.close();
    }
  });
});
