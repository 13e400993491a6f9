import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { FilesystemBackend } from '../../shared/backends/filesystem.ts';
import { checkEnabledBackends, rememberedAccessCheck } from '../../shared/backups/backends.ts';
import { loadConfig } from '../../shared/config.ts';
import { startS3Server } from '../support/s3-server.ts';
import { tempDir } from '../support/temp.ts';

const tmp = tempDir();
let s3: Awaited<ReturnType<typeof startS3Server>>;

beforeAll(async () => {
  s3 = await startS3Server();
});
afterAll(async () => {
  await s3.stop();
  tmp.cleanup();
});

function capture() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({ write(chunk, _enc, done) { lines.push(JSON.parse(chunk.toString())); done(); } });
  return { logger: pino({ level: 'info' }, sink), lines };
}

const s3Env = (bucket: string) => ({
  BACKUP_FILESYSTEM_PATH: `${tmp.dir}/backups`,
  BACKUP_S3_BUCKET: bucket,
  BACKUP_S3_ENDPOINT: new URL(s3.endpoint).host,
  BACKUP_S3_USE_SSL: 'false',
  AWS_REGION: s3.region,
  AWS_ACCESS_KEY_ID: s3.accessKeyId,
  AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
});

describe('start-up access check of the enabled backends', () => {
  it('passes for reachable backends', async () => {
    const { logger, lines } = capture();
    expect(await checkEnabledBackends(loadConfig(s3Env(s3.bucket)), logger)).toEqual({ filesystem: true, s3: true });
    expect(lines.filter((l) => l.msg === 'backup backend reachable')).toHaveLength(2);
  });

  it('logs a clear error naming the backend and the reason, without credentials', async () => {
    const { logger, lines } = capture();
    expect(await checkEnabledBackends(loadConfig(s3Env('no-such-bucket')), logger)).toEqual({ filesystem: true, s3: false });
    const error = lines.find((l) => l.level === 50)!;
    expect(error.msg).toBe('backup backend s3 failed its access check');
    expect(String(error.reason)).toMatch(/no-such-bucket/);
    expect(JSON.stringify(lines)).not.toContain(s3.secretAccessKey);
  });
});

describe('the access check a create request runs', () => {
  it('is remembered after it passes, and asked again after it fails', async () => {
    const root = `${tmp.dir}/remembered`;
    const backend = new FilesystemBackend({ root });
    let calls = 0;
    const check = backend.checkAccess.bind(backend);
    backend.checkAccess = (options) => {
      calls++;
      return check(options);
    };
    const checkAccess = rememberedAccessCheck(60_000);
    await checkAccess(backend);
    await checkAccess(backend);
    expect(calls).toBe(1);

    const failing = new FilesystemBackend({ root: `${tmp.dir}/not-a-dir` });
    fs.writeFileSync(`${tmp.dir}/not-a-dir`, 'a file where the root should be');
    await expect(checkAccess(failing)).rejects.toThrow();
    fs.rmSync(`${tmp.dir}/not-a-dir`);
    await checkAccess(failing);

    const expired = rememberedAccessCheck(0);
    await expired(backend);
    await expired(backend);
    expect(calls).toBe(3);
  });
});
