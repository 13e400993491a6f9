import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs; pretty only when a terminal is attached. Credentials are redacted
 * wherever they might appear in a logged object.
 */
export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info', name = 'shardvault'): Logger {
  const pretty = process.stdout.isTTY && process.env.NODE_ENV !== 'test';
  return pino({
    name,
    level,
    redact: {
      paths: [
        '*.secretAccessKey', '*.accessKeyId', '*.AWS_SECRET_ACCESS_KEY', '*.AWS_ACCESS_KEY_ID',
        '*.authorization', '*.headers.authorization', '*.apiKeys', '*.password', '*.credentials',
      ],
      censor: '[redacted]',
    },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true } } } : {}),
  });
}
