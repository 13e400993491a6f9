/**
 * How backup code gets a Backend: one factory, so tests and other entry points can hand in
 * their own, and so one process reuses a backend (and its HTTP client) per location.
 */
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { createBackend, type Backend, type BackendName, type BackendOverrides } from '../backends/index.ts';

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
