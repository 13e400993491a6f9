/**
 * Repository locks, as restic keeps them: objects in the backend, `.repository/locks/<id>`.
 * A snapshot writer holds a shared lock from before it reads the index until its snapshot
 * object exists; the garbage collector holds an exclusive one for the whole collection. A lock
 * is taken by writing it and then listing the locks: if a conflicting live lock is there (an
 * exclusive one for a writer, any other for the collector), the new lock is removed again and
 * the taker waits and tries again — so at most one side of a race goes on. A holder refreshes
 * its lock every REFRESH_MS; a lock not refreshed for STALE_MS belongs to a process that died
 * and is ignored (and removed by the collector).
 */
import { Readable } from 'node:stream';
import { z } from 'zod';
import type { Backend, CallOptions } from '../backends/backend.ts';
import { readSmall } from '../backends/bodies.ts';
import { NotFoundError, UnavailableError } from '../errors.ts';
import { newId, REPOSITORY_ROOT } from './format.ts';

export const LOCK_PREFIX = `${REPOSITORY_ROOT}/locks/`;
export const REFRESH_MS = 30_000;
export const STALE_MS = 120_000;

const lockSchema = z.object({
  version: z.literal(1),
  exclusive: z.boolean(),
  /** Who holds it, for people reading the bucket: host, pid, purpose. */
  owner: z.string(),
  refreshedAt: z.string(),
});
type LockBody = z.infer<typeof lockSchema>;

export interface Lock {
  release(): Promise<void>;
}

export interface LockOptions extends CallOptions {
  owner: string;
  /** Give up after this long (UnavailableError naming the holder). */
  waitMs?: number;
  /** Locks not refreshed for this long are taken as dead (default STALE_MS). */
  staleMs?: number;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), reject(signal.reason)), { once: true });
  });

async function readLock(backend: Backend, key: string, options: CallOptions): Promise<LockBody | undefined> {
  try {
    const parsed = lockSchema.safeParse(JSON.parse((await readSmall(await backend.read(key, options), 64 * 1024, 'lock')).toString()));
    return parsed.success ? parsed.data : undefined;
  } catch (err) {
    if (err instanceof NotFoundError || err instanceof SyntaxError) return undefined;
    throw err;
  }
}

/** The live locks other than `own`, with their keys. */
async function liveLocks(backend: Backend, options: CallOptions, own: string, staleMs: number): Promise<{ key: string; lock: LockBody }[]> {
  const found: { key: string; lock: LockBody }[] = [];
  for (const { key } of await backend.list(LOCK_PREFIX, options)) {
    if (key === own) continue;
    const lock = await readLock(backend, key, options);
    if (lock && Date.now() - Date.parse(lock.refreshedAt) < staleMs) found.push({ key, lock });
  }
  return found;
}

/** Remove the locks of processes that died (not refreshed for STALE_MS). */
export async function removeStaleLocks(backend: Backend, options: CallOptions, staleMs = STALE_MS): Promise<void> {
  for (const { key } of await backend.list(LOCK_PREFIX, options)) {
    const lock = await readLock(backend, key, options);
    if (lock && Date.now() - Date.parse(lock.refreshedAt) >= staleMs) await backend.deletePrefix(key, options);
  }
}

/** Take a lock; resolves once it is held. */
export async function acquireLock(backend: Backend, exclusive: boolean, options: LockOptions): Promise<Lock> {
  const key = `${LOCK_PREFIX}${newId()}`;
  const write = () =>
    backend.write(key, Readable.from([JSON.stringify({ version: 1, exclusive, owner: options.owner, refreshedAt: new Date().toISOString() } satisfies LockBody)]), options);
  const deadline = Date.now() + (options.waitMs ?? 10 * 60_000);
  for (let attempt = 0; ; attempt++) {
    await write();
    const others = await liveLocks(backend, options, key, options.staleMs ?? STALE_MS);
    const conflict = others.find((o) => exclusive || o.lock.exclusive);
    if (!conflict) break;
    await backend.deletePrefix(key, options);
    if (Date.now() > deadline) {
      throw new UnavailableError(`the repository at ${backend.locate(REPOSITORY_ROOT)} is locked by ${conflict.lock.owner} (${conflict.lock.exclusive ? 'exclusive' : 'shared'}); try again later`);
    }
    await sleep(Math.min(5000, 200 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random()), options.signal);
  }
  const timer = setInterval(() => void write().catch(() => undefined), REFRESH_MS);
  timer.unref();
  return {
    async release() {
      clearInterval(timer);
      await backend.deletePrefix(key).catch(() => undefined);
    },
  };
}
