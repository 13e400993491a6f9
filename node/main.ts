/**
 * `npm run node`: one storage node (NODE_NAME of CLUSTER_NODES, given as name=URL pairs) over
 * its own DATA_DIR. It needs no Redis: the API and the workers come to it.
 */
import { guardProcess } from '../shared/bootstrap.ts';
import { NodeClient } from '../shared/cluster/node-client.ts';
import { configOrExit, exitOnConfigError } from '../shared/config.ts';
import { ConfigError } from '../shared/errors.ts';
import { createLogger } from '../shared/logger.ts';
import { Shutdown } from '../shared/shutdown.ts';
import { clearScratch, otherNodesHeld } from '../shared/store/shard-files.ts';
import { Store } from '../shared/store/store.ts';
import { createNode } from './app.ts';

const { config, node, peers } = configOrExit((config) => {
  if (!config.nodeName) throw new ConfigError('invalid configuration: NODE_NAME: required by npm run node');
  if (!config.nodeUrls) throw new ConfigError('invalid configuration: CLUSTER_NODES: npm run node needs name=URL pairs');
  return { config, node: config.nodeName, peers: new NodeClient(config.nodeUrls, config.clusterSecret ?? '') };
});
const logger = createLogger(config.logLevel, `shardvault-${node}`);
guardProcess(logger);
const shutdown = new Shutdown(logger);
const others = await otherNodesHeld(config.dataDir, node, config.nodes);
if (others.length) {
  exitOnConfigError(
    new ConfigError(`invalid configuration: DATA_DIR ${config.dataDir} holds the shards of ${others.join(', ')}, not only ${node}'s: a node's data directory holds its own shards only (start ${others[0]} on it, or give ${node} its own)`),
  );
}
await clearScratch(config.dataDir, node);
const store = new Store({ dataDir: config.dataDir, nodes: config.nodes });
shutdown.add('store', () => store.close());
const server = createNode({ config, node, store, logger });
shutdown.add('node', server.stop);
shutdown.onSignals(10_000);
await server.start().catch((err: unknown) => shutdown.fail(err, 'the node cannot start'));
const catchingUp = new AbortController();
shutdown.add('metadata catch-up', async () => catchingUp.abort());
void server.catchUp(peers, catchingUp.signal).catch((err: unknown) => logger.error({ err }, "the node could not take the cluster's metadata from its peers"));
