/**
 * What a dump of one index holds (docs/formats.md §2), read from the cluster's data: its metadata
 * (`meta`: `{key, value}` records), its schema (`schema`: one record, the body
 * `PUT /{index}/:schema` accepts) or its documents (`docs`, shard after shard, each shard
 * read in one LMDB read transaction, so it is a consistent snapshot while writes go on).
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { createDumpEncoder, type DumpEncoder, type DumpHeaderInput, type DumpKind, type MetaRecord } from '../formats/dump-codec.ts';
import type { Document } from '../store/schema.ts';
import type { ClusterData } from '../cluster/data.ts';
import { SCHEMAS_INDEX, type IndexRecord } from '../store/store.ts';

/** Every document of an index, shard by shard. */
export async function* indexDocuments(data: ClusterData, rec: IndexRecord): AsyncGenerator<Document> {
  for (let shard = 0; shard < rec.shards; shard++) yield* data.shardDocuments(rec, shard);
}

/**
 * The schema as a `PUT /{index}/:schema` body. A foreign schema keeps its `_endpoint` and
 * carries the shared schema (and its description) along, so restoring it into an empty data
 * directory recreates the `.schemas` document as well.
 */
async function schemaBody(data: ClusterData, rec: IndexRecord): Promise<Record<string, unknown>> {
  if (rec.schema._type !== 'foreign/object') return { ...rec.schema };
  const endpoint = (rec.schema as { _endpoint: string })._endpoint;
  const id = endpoint.slice(`${SCHEMAS_INDEX}/`.length);
  const holder = (await data.getDocument(SCHEMAS_INDEX, id)) as { description?: unknown };
  return {
    _type: 'foreign/object',
    _endpoint: endpoint,
    ...(typeof holder.description === 'string' ? { description: holder.description } : {}),
    schema: await data.effectiveSchema(rec),
  };
}

export interface IndexDump {
  header: DumpHeaderInput;
  /** How many records will follow (documents are counted before the read starts). */
  expected: number;
  records: AsyncIterable<unknown>;
}

/** The header and records of one kind of dump of an index; throws NotFoundError for an unknown index. */
export async function dumpIndex(data: ClusterData, index: string, kind: DumpKind): Promise<IndexDump> {
  const rec = await data.requireIndex(index);
  const header: DumpHeaderInput = { kind, index: rec.name, shards: rec.shards };
  switch (kind) {
    case 'meta': {
      const records: MetaRecord[] = Object.entries(await data.listMetadata(index)).map(([key, value]) => ({ key, value }));
      return { header, expected: records.length, records: Readable.from(records) };
    }
    case 'schema':
      return { header, expected: 1, records: Readable.from([await schemaBody(data, rec)]) };
    case 'docs':
      return { header, expected: (await data.info(index)).docs, records: indexDocuments(data, rec) };
  }
}

/** The dump file bytes of `records`: the shared codec (the same stream is a backup's shard object). */
export function encodeDump(dump: IndexDump): DumpEncoder {
  const encoder = createDumpEncoder(dump.header);
  pipeline(Readable.from(dump.records), encoder, () => {
    // Errors reach the encoder (it is destroyed with them); its reader sees them.
  });
  return encoder;
}
