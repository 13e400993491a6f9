/**
 * Backup backends for end-to-end tests: the environment variables that point a cluster's
 * processes at the backend, and a Backend handle on the same location for the test itself
 * (to list, read or corrupt objects). The filesystem always; S3 (s3rver) and GCS (the
 * firebase emulator) start their own servers.
 *
 * SHARDVAULT_E2E_BACKENDS (comma list, default all three) picks which ones the e2e suite
 * runs on, e.g. `SHARDVAULT_E2E_BACKENDS=filesystem npx vitest run test/backups.e2e.test.ts`.
 */
import path from 'node:path';
import { createBackend, type Backend, type BackendName } from '../../shared/backends/index.ts';
import { loadConfig } from '../../shared/config.ts';
import { startGcsEmulator } from './gcs-emulator.ts';
import { startS3Server } from './s3-server.ts';

export interface BackendFixture {
  name: BackendName;
  /** BACKUP_* (and credential) variables for the cluster's processes. */
  env: Record<string, string>;
  /** The same location, from the test process. */
  backend: Backend;
  stop(): Promise<void>;
}

function fixture(name: BackendName, env: Record<string, string>, stop: () => Promise<void>): BackendFixture {
  return { name, env, backend: createBackend(name, loadConfig(env).backends), stop };
}

export const BACKEND_FIXTURES: Record<BackendName, (dir: string) => Promise<BackendFixture>> = {
  filesystem: async (dir) => fixture('filesystem', { BACKUP_FILESYSTEM_PATH: path.join(dir, 'backups') }, async () => {}),
  s3: async (dir) => {
    const server = await startS3Server();
    return fixture(
      's3',
      {
        BACKUP_FILESYSTEM_PATH: path.join(dir, 'backups'),
        BACKUP_S3_BUCKET: server.bucket,
        BACKUP_S3_PATH: 'e2e',
        BACKUP_S3_ENDPOINT: new URL(server.endpoint).host,
        BACKUP_S3_USE_SSL: 'false',
        AWS_REGION: server.region,
        AWS_ACCESS_KEY_ID: server.accessKeyId,
        AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
      },
      () => server.stop(),
    );
  },
  gcs: async (dir) => {
    const emulator = await startGcsEmulator();
    return fixture(
      'gcs',
      {
        BACKUP_FILESYSTEM_PATH: path.join(dir, 'backups'),
        BACKUP_GCS_BUCKET: emulator.bucket,
        BACKUP_GCS_PATH: 'e2e',
        GOOGLE_CLOUD_PROJECT: emulator.projectId,
        STORAGE_EMULATOR_HOST: emulator.host,
      },
      () => emulator.stop(),
    );
  },
};

/** The fixtures SHARDVAULT_E2E_BACKENDS asks for (default: every backend). */
export function selectedBackends(): { name: BackendName; make: (dir: string) => Promise<BackendFixture> }[] {
  const names = (process.env.SHARDVAULT_E2E_BACKENDS ?? 'filesystem,s3,gcs').split(',').map((s) => s.trim()).filter(Boolean);
  return names.map((name) => {
    const make = BACKEND_FIXTURES[name as BackendName];
    if (!make) throw new Error(`SHARDVAULT_E2E_BACKENDS: unknown backend ${name}; use filesystem, s3 or gcs`);
    return { name: name as BackendName, make };
  });
}
