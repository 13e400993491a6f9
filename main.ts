/** `npm start`: the embedded default — the API and the workers of every node in one process. */
import { createApi } from './api/app.ts';
import { bootstrap } from './shared/bootstrap.ts';
import { createWorker } from './worker/worker.ts';

const rt = await bootstrap({ embeddedRedis: true, name: 'shardvault' });
if (rt.config.apiProcesses > 1) rt.logger.warn({ apiProcesses: rt.config.apiProcesses }, 'API_PROCESSES applies to npm run api: npm start runs one process');
// One process: the API and the workers share the data (its catalog is the workers' too).
const worker = createWorker({ config: rt.config, logger: rt.logger, redisUrl: rt.redisUrl, catalog: rt.data, shards: rt.shards, nodes: rt.config.nodes });
rt.shutdown.add('worker', worker.stop);
const api = createApi(rt);
// Cleanups run newest first: the API stops taking requests, then the workers finish their jobs.
rt.shutdown.add('api', api.stop);
rt.shutdown.onSignals(rt.config.workerShutdownMs + 5000);
await worker.start();
await api.start().catch((err: unknown) => rt.shutdown.fail(err, 'the API cannot start'));
