/**
 * Which proxy a GCS request goes through (shared/backends/gcs.ts, proxyFor): the client's own
 * rule (gaxios 6), which the silenced agent the backend gives every request must follow — an
 * agent given to the client replaces its choice, so a wrong answer here would send requests
 * around a proxy a network requires, or into one NO_PROXY excludes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { proxyFor } from '../../shared/backends/gcs.ts';

const NAMES = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy'];
const saved = Object.fromEntries(NAMES.map((n) => [n, process.env[n]]));

function withEnv(env: Record<string, string>): void {
  for (const n of NAMES) delete process.env[n];
  Object.assign(process.env, env);
}

describe('the proxy of a GCS request', () => {
  afterEach(() => {
    for (const n of NAMES) {
      if (saved[n] === undefined) delete process.env[n];
      else process.env[n] = saved[n];
    }
  });

  it('is none without a proxy variable, and HTTPS_PROXY before HTTP_PROXY for any scheme', () => {
    withEnv({});
    expect(proxyFor('https://storage.googleapis.com')).toBeUndefined();
    withEnv({ HTTP_PROXY: 'http://plain:3128', HTTPS_PROXY: 'http://secure:3128' });
    expect(proxyFor('https://storage.googleapis.com')).toBe('http://secure:3128');
    expect(proxyFor('http://127.0.0.1:9199')).toBe('http://secure:3128');
    withEnv({ http_proxy: 'http://lower:3128' });
    expect(proxyFor('https://storage.googleapis.com')).toBe('http://lower:3128');
  });

  it('is none for a host, an origin or a domain NO_PROXY names, and the proxy for any other', () => {
    withEnv({ HTTPS_PROXY: 'http://proxy:3128', NO_PROXY: 'localhost, http://127.0.0.1:9199,.internal.example,*.corp.example' });
    expect(proxyFor('http://localhost:9199')).toBeUndefined();
    expect(proxyFor('http://127.0.0.1:9199')).toBeUndefined();
    expect(proxyFor('http://127.0.0.1:9200')).toBe('http://proxy:3128');
    expect(proxyFor('https://gcs.internal.example')).toBeUndefined();
    expect(proxyFor('https://storage.corp.example')).toBeUndefined();
    expect(proxyFor('https://storage.googleapis.com')).toBe('http://proxy:3128');
    withEnv({ HTTPS_PROXY: 'http://proxy:3128', no_proxy: 'storage.googleapis.com' });
    expect(proxyFor('https://storage.googleapis.com')).toBeUndefined();
  });
});
