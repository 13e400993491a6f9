/**
 * A child process for the restore durability test: writes an LMDB environment of `docs`
 * documents at `source`, stages a copy of it as a restore does (fillShardFile) in `staged` and
 * publishes it at `to` (publishStagedShard); prints the documents the staged file held.
 */
import fs from 'node:fs';
import { open } from 'lmdb';
import { fillShardFile, publishStagedShard } from '../../shared/store/shard-files.ts';

const [source, staged, to, docs] = process.argv.slice(2);
const db = open({ path: source! });
for (let i = 0; i < Number(docs); i++) await db.put(`d-${i}`, { i });
await db.close();
fs.mkdirSync(staged!, { recursive: true });
const count = await fillShardFile(staged!, (file) => fs.promises.copyFile(source!, file));
await publishStagedShard(staged!, to!, 'Durable/0 on node-1');
console.log(count);
