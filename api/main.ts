/** `npm run api`: the API alone (docker-compose runs it beside `npm run worker`). */
import { bootstrap } from '../shared/bootstrap.ts';
import { LocalData } from '../shared/cluster/data.ts';
import { createApi } from './app.ts';

const rt = await bootstrap({ embeddedRedis: false, name: 'shardvault-api' });
const api = createApi({ ...rt, data: new LocalData(rt.store) });
rt.shutdown.add('api', api.stop);
rt.shutdown.onSignals(10_000);
await api.start();
