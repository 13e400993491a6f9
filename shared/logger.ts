import { AsyncLocalStorage } from 'node:async_hooks';
import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Fields every line logged inside `logContext.run(fields, fn)` carries, whichever logger
 * writes it: the worker puts a job's id, name, queue and operation there, the API a request's id.
 */
export const logContext = new AsyncLocalStorage<Record<string, unknown>>();

/**
 * pino-pretty is a development dependency: an image installed without them (`npm ci --omit=dev`)
 * logs JSON on a terminal too, instead of failing to start.
 */
function prettyInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

/**
 * Structured JSON logs; pretty only when a terminal is attached (and pino-pretty is installed).
 * Credentials are redacted wherever they might appear in a logged object.
 */
export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info', name = 'shardvault', destination?: DestinationStream): Logger {
  const pretty = !destination && process.stdout.isTTY && process.env.NODE_ENV !== 'test' && prettyInstalled();
  const options = {
    name,
    level,
    mixin: () => logContext.getStore() ?? {},
    redact: {
      paths: [
        '*.secretAccessKey', '*.accessKeyId', '*.AWS_SECRET_ACCESS_KEY', '*.AWS_ACCESS_KEY_ID',
        '*.authorization', '*.headers.authorization', '*.apiKeys', '*.password', '*.credentials',
        '*.clusterSecret', '*.CLUSTER_SECRET', 'clusterSecret', 'config.clusterSecret',
      ],
      censor: '[redacted]',
    },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true } } } : {}),
  };
  return destination ? pino(options, destination) : pino(options);
}
