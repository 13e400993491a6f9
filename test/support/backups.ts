/**
 * Helpers shared by the backup tests: waiting on an operation's status (polling the status
 * endpoint, never sleeping a fixed time), deterministic documents, and reading every document
 * of an index straight from a data directory.
 */
import { Store } from '../../shared/store/store.ts';
import type { Document } from '../../shared/store/schema.ts';

export type Call = (method: string, path: string, body?: unknown) => Promise<{ status: number; json(): Promise<unknown> }>;

export interface StatusBody {
  id: string;
  status: string;
  error?: string;
  path?: string;
  classes?: string[];
  startedAt?: string;
  completedAt?: string;
  size?: number;
  progress?: { shardsDone: number; shardsTotal: number; docs: number; bytes: number };
}

const FINAL = ['SUCCESS', 'FAILED', 'CANCELED'];

/**
 * Poll `GET path` until `until(body)` holds (default: a final status), failing with the last
 * body seen when timeoutMs passes.
 */
export async function waitForStatus(
  call: Call,
  path: string,
  until: (body: StatusBody) => boolean = (b) => FINAL.includes(b.status),
  timeoutMs = 60_000,
): Promise<StatusBody> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const res = await call('GET', path);
    last = await res.json();
    if (res.status === 200 && until(last as StatusBody)) return last as StatusBody;
    if (Date.now() > deadline) throw new Error(`timed out waiting on ${path}; last answer ${res.status} ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A document whose `check` field is derived from the others, so a torn document is visible. */
export function makeDoc(cls: string, n: number, extra: Record<string, unknown> = {}): Document {
  const body = `${cls}-${n}-`.repeat(8);
  return { _id: `${cls.toLowerCase()}-${String(n).padStart(7, '0')}`, n, cls, body, check: `${cls}:${n}:${body.length}`, ...extra };
}

export function isConsistent(doc: Document): boolean {
  return doc.check === `${String(doc.cls)}:${String(doc.n)}:${String(doc.body).length}`;
}

/** Every document of an index (id → JSON text), read from a data directory by a fresh Store. */
export async function readIndex(dataDir: string, nodes: string[], index: string): Promise<Map<string, string>> {
  const store = new Store({ dataDir, nodes });
  try {
    const rec = store.requireIndex(index);
    const out = new Map<string, string>();
    for (let shard = 0; shard < rec.shards; shard++) {
      for (const { key, value } of store.shardDb(rec, shard).getRange()) out.set(String(key), JSON.stringify(value));
    }
    return out;
  } finally {
    await store.close();
  }
}
