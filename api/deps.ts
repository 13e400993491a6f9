import type { Redis } from 'ioredis';
import type { BackupService } from '../shared/backups/service.ts';
import type { ClusterData } from '../shared/cluster/data.ts';
import type { Config } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';

/** What the API's routes are given; built by the entry points (and by tests). */
export interface ApiDeps {
  config: Config;
  /** Indexes, documents and metadata: this process's Store, or the nodes that own them. */
  data: ClusterData;
  logger: Logger;
  /** A connection used for readiness; the API never waits forever on it. */
  redis: Redis;
  /** Backups and restores (/v1/backups); created from the deps above on first use when absent. */
  backups?: BackupService;
}
