/**
 * A child process for the multi-process store test: writes ids [from, to) into an index in
 * batches of ten (many small commits, so the writers' transactions interleave), then waits
 * until it can read `expected` documents (its own and the other writers').
 */
import { Store } from '../../shared/store/store.ts';

const [dataDir, index, from, to, expected] = process.argv.slice(2);
const store = new Store({ dataDir: dataDir!, nodes: ['node-1', 'node-2', 'node-3'] });
const docs = [];
for (let i = Number(from); i < Number(to); i++) docs.push({ _id: i, writer: process.pid, n: i });
for (let i = 0; i < docs.length; i += 10) {
  const results = await store.putDocuments(index!, docs.slice(i, i + 10));
  const failed = results.find((r) => !r.ok);
  if (failed && !failed.ok) throw failed.error;
}
const deadline = Date.now() + 20_000;
while (store.info(index!).docs < Number(expected)) {
  if (Date.now() > deadline) throw new Error(`saw only ${store.info(index!).docs} documents`);
  await new Promise((r) => setTimeout(r, 20));
}
for (let i = 0; i < Number(expected); i++) {
  if (store.getDocument(index!, i).n !== i) throw new Error(`document ${i} is wrong`);
}
await store.close();
console.log(`writer ${from}-${to} saw ${expected}`);
