/** `npm start`: the embedded default — the API and the workers of every node in one process. */
import { createApi } from './api/app.ts';
import { bootstrap } from './shared/bootstrap.ts';

const rt = await bootstrap({ embeddedRedis: true, name: 'shardvault' });
const api = createApi(rt);
rt.shutdown.add('api', api.stop);
rt.shutdown.onSignals(rt.config.workerShutdownMs + 5000);
await api.start();
