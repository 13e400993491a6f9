/** `npm run api`: the API alone (docker-compose runs it beside `npm run worker`). */
import { bootstrap } from '../shared/bootstrap.ts';
import { createApi } from './app.ts';

const rt = await bootstrap({ embeddedRedis: false, name: 'shardvault-api' });
const api = createApi(rt);
rt.shutdown.add('api', api.stop);
rt.shutdown.onSignals(10_000);
await api.start();
