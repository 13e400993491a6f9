/**
 * How backup code gets a Backend: one factory, so tests and other entry points can hand in
 * their own, and so one process reuses a backend (and its HTTP client) per location.
 */
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { createBackend, enabledBackends, type Backend, type BackendName, type BackendOverrides } from '../backends/index.ts';

/** The Backend for a name and Weaviate's per-request overrides; throws ValidationError (422) when unusable. */
export type BackendFactory = (name: BackendName, overrides?: BackendOverrides) => Backend;

/** createBackend over the configured backends, cached per (name, bucket, path). */
export function configuredBackends(config: Config, logger?: Logger): BackendFactory {
  const cache = new Map<string, Backend>();
  return (name, overrides = {}) => {
    const key = JSON.stringify([name, overrides.bucket ?? '', overrides.path ?? '']);
    let backend = cache.get(key);
    if (!backend) {
      backend = createBackend(name, config.backends, overrides, logger);
      cache.set(key, backend);
    }
    return backend;
  };
}

/**
 * checkAccess, remembered for a while after it passes: a create request checks that its
 * backend is writable, but a marker write, fsync, read-back and delete on every request
 * was the largest cost of POST /v1/backups under load. Backends are cached per location
 * (configuredBackends), so one success covers every request to that location for ttlMs.
 */
export function rememberedAccessCheck(ttlMs = 60_000): (backend: Backend) => Promise<void> {
  const passedUntil = new WeakMap<Backend, number>();
  return async (backend) => {
    if ((passedUntil.get(backend) ?? 0) > Date.now()) return;
    await backend.checkAccess();
    passedUntil.set(backend, Date.now() + ttlMs);
  };
}

/**
 * The start-up access check: every enabled backend writes, reads back and deletes a marker.
 * A failure is logged with its reason (the process still starts: the filesystem, or a
 * backend that comes back later, may still be used), and requests to it fail then.
 */
export async function checkEnabledBackends(config: Config, logger: Logger, timeoutMs = 15_000): Promise<Record<string, boolean>> {
  const results: Record<string, boolean> = {};
  await Promise.all(
    enabledBackends(config.backends).map(async (name) => {
      try {
        await createBackend(name, config.backends, {}, logger).checkAccess({ signal: AbortSignal.timeout(timeoutMs) });
        logger.info({ backend: name }, 'backup backend reachable');
        results[name] = true;
      } catch (err) {
        logger.error({ backend: name, reason: (err as Error).message }, `backup backend ${name} failed its access check`);
        results[name] = false;
      }
    }),
  );
  return results;
}
