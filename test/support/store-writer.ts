/**
 * A child process for the multi-process store test: writes ids [from, to) into an index in
 * batches of ten (many small commits, so the writers' transactions interleave), marks itself
 * done in `barrier` (a directory), waits until `writers` writers have, and then must see all
 * `expected` documents at once — every writer's acknowledged writes, with no waiting for them.
 * How long the others take to start and write (a loaded machine) only the test's timeout bounds.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Store } from '../../shared/store/store.ts';

const [dataDir, index, from, to, expected, barrier, writers] = process.argv.slice(2);
const store = new Store({ dataDir: dataDir!, nodes: ['node-1', 'node-2', 'node-3'] });
const docs = [];
for (let i = Number(from); i < Number(to); i++) docs.push({ _id: i, writer: process.pid, n: i });
for (let i = 0; i < docs.length; i += 10) {
  const results = await store.putDocuments(index!, docs.slice(i, i + 10));
  const failed = results.find((r) => !r.ok);
  if (failed && !failed.ok) throw failed.error;
}
fs.writeFileSync(path.join(barrier!, `${from}-${to}`), '');
while (fs.readdirSync(barrier!).length < Number(writers)) await new Promise((r) => setTimeout(r, 20));
const seen = store.info(index!).docs;
if (seen !== Number(expected)) throw new Error(`all writers are done but this one sees ${seen} documents, not ${expected}`);
for (let i = 0; i < Number(expected); i++) {
  if (store.getDocument(index!, i).n !== i) throw new Error(`document ${i} is wrong`);
}
await store.close();
console.log(`writer ${from}-${to} saw ${expected}`);
