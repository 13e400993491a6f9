import type { Config } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import type { Store } from '../shared/store/store.ts';

/** What a storage node's routes are given. */
export interface NodeDeps {
  config: Config;
  /** This node's name (NODE_NAME). */
  node: string;
  /** The store over this node's own DATA_DIR: its shards and its copy of the cluster metadata. */
  store: Store;
  logger: Logger;
}
