/**
 * The image installs with `npm ci --omit=dev`: a process started on a terminal (`docker run -it`,
 * `tty: true`) must not need a development dependency. pino-pretty (pretty logs on a terminal) is
 * one: without it the logger writes JSON. script(1) gives the process a terminal.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { childEnv, ROOT } from '../support/process.ts';
import { tempDir } from '../support/temp.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

it('starts on a terminal without the development dependencies, logging JSON', async () => {
  const dir = tmp.dir;
  fs.cpSync(path.join(ROOT, 'dist'), path.join(dir, 'dist'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  for (const entry of fs.readdirSync(path.join(ROOT, 'node_modules'))) {
    if (entry !== 'pino-pretty' && entry !== '.bin') fs.symlinkSync(path.join(ROOT, 'node_modules', entry), path.join(dir, 'node_modules', entry));
  }
  // A node whose port is taken logs why through its logger and ends.
  const taken = net.createServer().listen(0, '127.0.0.1');
  await once(taken, 'listening');
  const port = (taken.address() as net.AddressInfo).port;
  try {
    const env = childEnv({
      NODE_NAME: 'node-1', CLUSTER_NODES: 'node-1=http://127.0.0.1:1', CLUSTER_SECRET: 's'.repeat(32), DATA_DIR: path.join(dir, 'data'), HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info',
    });
    delete env.NODE_ENV; // vitest's 'test' turns pretty logs off
    const child = spawn('script', ['-qec', `${JSON.stringify(process.execPath)} dist/node/main.js`, '/dev/null'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    await once(child, 'exit');
    expect(out).not.toContain('unable to determine transport target');
    expect(out).toMatch(/\{"level":50,.*"msg":"the node cannot start"/);
  } finally {
    taken.close();
  }
}, 60_000);
