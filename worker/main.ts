/** `npm run worker`: the job processors alone, for the nodes of WORKER_NODES (default all). */
import { bootstrap } from '../shared/bootstrap.ts';
import { createWorker } from './worker.ts';

const rt = await bootstrap({ embeddedRedis: false, name: 'shardvault-worker' });
const worker = createWorker({ config: rt.config, logger: rt.logger, redisUrl: rt.redisUrl, catalog: rt.data, shards: rt.shards });
rt.shutdown.add('worker', worker.stop);
// Running jobs get WORKER_SHUTDOWN_SECONDS, then are aborted; the extra time is for hand-back.
rt.shutdown.onSignals(rt.config.workerShutdownMs + 5000);
await worker.start();
