import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../shared/config.ts';
import { ConfigError } from '../../shared/errors.ts';
import { createLogger } from '../../shared/logger.ts';
import { resolveRedis } from '../../shared/redis.ts';
import { freePort, NO_REDIS_MESSAGE, pingRedis } from '../../shared/redis-server.ts';
import { startTestRedis } from '../support/redis.ts';
import { tempDir } from '../support/temp.ts';

const tmp = tempDir();
const logger = createLogger('silent');
afterAll(() => tmp.cleanup());

// The default port is a parameter so these tests never depend on (or touch) a Redis that
// may be running on 6379 on a developer's machine.
describe('finding Redis for npm start', () => {
  it('uses REDIS_URL when set', async () => {
    const config = loadConfig({ REDIS_URL: 'redis://example.invalid:6390', DATA_DIR: `${tmp.dir}/a` });
    expect(await resolveRedis(config, { embedded: true, logger })).toEqual({ url: 'redis://example.invalid:6390' });
  });

  it('uses a Redis answering on the default port', async () => {
    const running = await startTestRedis();
    const config = loadConfig({ DATA_DIR: `${tmp.dir}/b` });
    const resolved = await resolveRedis(config, { embedded: true, logger, defaultPort: running.port });
    expect(resolved).toEqual({ url: `redis://127.0.0.1:${running.port}` });
    await running.stop();
  });

  it('starts a private redis-server under DATA_DIR/_redis when nothing answers, and stops it', async () => {
    const config = loadConfig({ DATA_DIR: `${tmp.dir}/c` });
    const resolved = await resolveRedis(config, { embedded: true, logger, defaultPort: await freePort() });
    expect(resolved.server).toBeDefined();
    expect(resolved.server!.dir).toBe(`${config.dataDir}/_redis`);
    expect(await pingRedis('127.0.0.1', resolved.server!.port)).toBe(true);
    await resolved.server!.stop();
    expect(await pingRedis('127.0.0.1', resolved.server!.port)).toBe(false);
  });

  it('says in one line how to get Redis when there is no binary', async () => {
    const config = loadConfig({ DATA_DIR: `${tmp.dir}/d` });
    const attempt = resolveRedis(config, { embedded: true, logger, defaultPort: await freePort(), binary: '/nonexistent/redis-server' });
    await expect(attempt).rejects.toThrow(ConfigError);
    await expect(attempt).rejects.toThrow(NO_REDIS_MESSAGE);
    expect(NO_REDIS_MESSAGE).not.toContain('\n');
    expect(NO_REDIS_MESSAGE).toMatch(/apt-get install redis-server/);
  });
});
