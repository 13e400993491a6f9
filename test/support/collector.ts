/**
 * A repository garbage collection in a process of its own, so a test can SIGKILL it part-way:
 * `node --import tsx test/support/collector.ts BACKEND [STALE_MS]` with the backend's variables in
 * the environment; STALE_MS takes locks not refreshed for that long as dead (a test's stand-in
 * for waiting out the locks of collectors it killed). Prints `collecting` once it starts and the
 * result when it ends.
 */
import { createBackend, parseBackendName } from '../../shared/backends/index.ts';
import { loadConfig } from '../../shared/config.ts';
import { collectGarbage } from '../../shared/repository/collect.ts';

const backend = createBackend(parseBackendName(process.argv[2] ?? 'filesystem'), loadConfig(process.env).backends);
process.stdout.write('collecting\n');
const staleMs = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
const result = await collectGarbage(backend, { owner: `test collector pid ${process.pid}`, ...(staleMs === undefined ? {} : { staleMs }) });
process.stdout.write(`${JSON.stringify(result)}\n`);
