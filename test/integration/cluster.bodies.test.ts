/**
 * Bodies of documents between the API and nodes on their own hosts: a node reads at most
 * nodeBodyLimit(MAX_BODY_BYTES) of them (413 beyond, naming the limit), and the API sends a
 * batch that would be larger in parts, so an online restore's 1000 large documents still land.
 * The nodes here take a small MAX_BODY_BYTES, so a few hundred kilobytes are "large".
 */
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteCatalog } from '../../shared/cluster/metadata.ts';
import { nodeBodyLimit } from '../../shared/cluster/node-client.ts';
import { RemoteData } from '../../shared/cluster/remote-data.ts';
import { packValue } from '../../shared/dump/msgpack-stream.ts';
import { PayloadTooLargeError } from '../../shared/errors.ts';
import { startTestNodes, type TestNodes } from '../support/nodes.ts';

const NODES = ['n1', 'n2'];
const MAX_BODY_BYTES = 16 * 1024;
const LIMIT = nodeBodyLimit(MAX_BODY_BYTES);

describe('bodies of documents sent to nodes', () => {
  let cluster: TestNodes;
  let data: RemoteData;
  beforeAll(async () => {
    cluster = await startTestNodes(NODES, { MAX_BODY_BYTES: String(MAX_BODY_BYTES) });
    data = new RemoteData(cluster.client, new RemoteCatalog(cluster.client), MAX_BODY_BYTES);
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it('a batch larger than a node reads in one body goes in parts: every document written, each outcome in its place', async () => {
    const docs = Array.from({ length: 400 }, (_, i) => ({ _id: `d-${String(i).padStart(3, '0')}`, n: i, text: `${i} `.repeat(300) }));
    expect(packValue(docs).length / NODES.length).toBeGreaterThan(2 * LIMIT);
    const outcomes = await data.putDocuments('big', docs);
    expect(outcomes.map((o) => (o.ok ? o.result._id : o.error.message))).toEqual(docs.map((d) => d._id));
    expect(outcomes.every((o) => o.ok && o.result.created)).toBe(true);
    expect((await data.info('big')).docs).toBe(400);
    const rec = (await data.getIndex('big'))!;
    for (const i of [0, 123, 399]) expect(await data.readDoc(rec, `d-${String(i).padStart(3, '0')}`)).toMatchObject({ n: i, text: `${i} `.repeat(300) });
  });

  it('a node refuses a body of documents over its limit with 413 naming the limit, and stores none of them', async () => {
    const rec = (await data.getIndex('big'))!;
    const docs = Array.from({ length: 100 }, (_, i) => ({ _id: `e-${i}`, text: 'y'.repeat(1000) }));
    const body = packValue({ uid: rec.uid, docs });
    expect(body.length).toBeGreaterThan(LIMIT);
    const sent = cluster.client.request('n1', `/internal/indexes/big/documents`, { method: 'POST', body: Readable.from([body]) });
    await expect(sent).rejects.toBeInstanceOf(PayloadTooLargeError);
    await expect(sent).rejects.toThrow(`node n1: request body is larger than the limit of ${LIMIT} bytes`);
    expect((await data.info('big')).docs).toBe(400);
  });
});
