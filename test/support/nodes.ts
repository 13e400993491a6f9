/**
 * Storage nodes on their own "hosts" inside the test process: each `createNode` (node/app.ts)
 * over its own temporary DATA_DIR, listening on a free port, with one cluster secret; and the
 * NodeClient the API and workers would use to reach them. A node can be stopped (its port
 * stops answering) and started again over the same directory.
 */
import { createNode, type NodeServer } from '../../node/app.ts';
import { NodeClient } from '../../shared/cluster/node-client.ts';
import { loadConfig } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';
import { Store } from '../../shared/store/store.ts';
import { tempDir } from './temp.ts';

export const TEST_CLUSTER_SECRET = 'test-cluster-secret-0123456789';

export interface TestNode {
  name: string;
  dataDir: string;
  url: string;
  store: Store;
  stop(): Promise<void>;
  /** Start again over the same directory, on the same port. */
  start(): Promise<void>;
  /** What `npm run node` does once it listens: take the peers' metadata if this copy is empty. */
  catchUp(peers: NodeClient): Promise<void>;
}

export interface TestNodes {
  nodes: TestNode[];
  client: NodeClient;
  /** CLUSTER_NODES for processes that reach these nodes (`name=url,…`). */
  clusterNodes: string;
  close(): Promise<void>;
}

/** Nodes `names` in this process; `env`, extra settings of each (e.g. MAX_BODY_BYTES). */
export async function startTestNodes(names: string[], env: Record<string, string> = {}): Promise<TestNodes> {
  const { dir, cleanup } = tempDir('shardvault-nodes-');
  // Ports are chosen by the first start and kept, so a node restarts at the same URL.
  const ports = new Map<string, number>();
  const nodes: TestNode[] = [];
  for (const name of names) {
    const dataDir = `${dir}/${name}`;
    let server: NodeServer | undefined;
    let store: Store | undefined;
    const node: TestNode = {
      name,
      dataDir,
      url: '',
      get store() {
        return store!;
      },
      start: async () => {
        const config = loadConfig({
          DATA_DIR: dataDir,
          PORT: String(ports.get(name) ?? 0),
          NODE_NAME: name,
          CLUSTER_NODES: names.map((n) => `${n}=http://127.0.0.1:1`).join(','),
          CLUSTER_SECRET: TEST_CLUSTER_SECRET,
          ...env,
        });
        store = new Store({ dataDir: config.dataDir, nodes: config.nodes });
        server = createNode({ config, node: name, store, logger: createLogger('silent') });
        const { port } = await server.start();
        ports.set(name, port);
        node.url = `http://127.0.0.1:${port}`;
      },
      catchUp: (peers) => server!.catchUp(peers, AbortSignal.timeout(30_000)),
      stop: async () => {
        await server?.stop();
        await store?.close();
        server = undefined;
      },
    };
    await node.start();
    nodes.push(node);
  }
  const urls = Object.fromEntries(nodes.map((n) => [n.name, n.url]));
  return {
    nodes,
    client: new NodeClient(urls, TEST_CLUSTER_SECRET),
    clusterNodes: nodes.map((n) => `${n.name}=${n.url}`).join(','),
    close: async () => {
      for (const n of nodes) await n.stop();
      cleanup();
    },
  };
}
