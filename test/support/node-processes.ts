/**
 * Storage nodes as real processes on their own "hosts" (`node/main.ts`, as `npm run node`
 * runs it), each over its own data directory and port, for end-to-end tests; and the
 * CLUSTER_NODES/CLUSTER_SECRET every other process of that cluster gets.
 */
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from '../../shared/redis-server.ts';
import { TEST_CLUSTER_SECRET } from './nodes.ts';
import { spawnNode, type NodeProcess } from './process.ts';

export interface NodeHost {
  name: string;
  dataDir: string;
  url: string;
  proc: NodeProcess;
  /** Start the node again after it was killed (same directory, same port). */
  restart(): Promise<void>;
}

export interface NodeHosts {
  hosts: NodeHost[];
  /** CLUSTER_NODES and CLUSTER_SECRET for the API and workers of this cluster. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** `entry`: the sources for tests (default), the build (`dist/node/main.js`) for the bench. */
export async function startNodeHosts(root: string, names: string[], entry = 'node/main.ts'): Promise<NodeHosts> {
  const ports = await Promise.all(names.map(() => freePort()));
  const clusterNodes = names.map((n, i) => `${n}=http://127.0.0.1:${ports[i]}`).join(',');
  const hosts = names.map((name, i): NodeHost => {
    const dataDir = path.join(root, name);
    fs.mkdirSync(dataDir, { recursive: true });
    const spawn = () =>
      spawnNode(entry, [], {
        NODE_NAME: name,
        DATA_DIR: dataDir,
        PORT: String(ports[i]),
        HOST: '127.0.0.1',
        CLUSTER_NODES: clusterNodes,
        CLUSTER_SECRET: TEST_CLUSTER_SECRET,
      });
    const host: NodeHost = {
      name,
      dataDir,
      url: `http://127.0.0.1:${ports[i]}`,
      proc: spawn(),
      restart: async () => {
        host.proc = spawn();
        await host.proc.waitFor(/"msg":"node listening"/, 60_000);
      },
    };
    return host;
  });
  await Promise.all(hosts.map((h) => h.proc.waitFor(/"msg":"node listening"/, 60_000)));
  return {
    hosts,
    env: { CLUSTER_NODES: clusterNodes, CLUSTER_SECRET: TEST_CLUSTER_SECRET },
    stop: async () => {
      await Promise.all(hosts.map((h) => h.proc.kill('SIGTERM')));
    },
  };
}
