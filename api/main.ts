/**
 * `npm run api`: the API alone (docker-compose runs it beside `npm run worker`), in
 * API_PROCESSES processes that share its ports (api/processes.ts). The primary of several only
 * supervises: it loads none of the API's modules (each API process does).
 */
import cluster from 'node:cluster';
import { configOrExit } from '../shared/config.ts';
import { createLogger } from '../shared/logger.ts';
import { announceListening, isOneOfMany, superviseApiProcesses } from './processes.ts';

const NAME = 'shardvault-api';
const SHUTDOWN_MS = 10_000;
const config = configOrExit();
if (cluster.isPrimary && config.apiProcesses > 1) {
  superviseApiProcesses(config.apiProcesses, createLogger(config.logLevel, NAME), SHUTDOWN_MS);
} else {
  const { bootstrap } = await import('../shared/bootstrap.ts');
  const { createApi } = await import('./app.ts');
  const rt = await bootstrap({ embeddedRedis: false, name: NAME, config });
  const api = createApi(rt);
  rt.shutdown.add('api', api.stop);
  if (isOneOfMany()) {
    // The primary stops it with SIGTERM; a terminal's Ctrl-C reaches the primary too.
    process.on('SIGINT', () => undefined);
    rt.shutdown.onSignals(SHUTDOWN_MS, ['SIGTERM']);
  } else {
    rt.shutdown.onSignals(SHUTDOWN_MS);
  }
  await api.start().catch((err: unknown) => rt.shutdown.fail(err, 'the API cannot start'));
  announceListening();
}
