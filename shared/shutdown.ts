/**
 * Cleanups registered as things start and released in reverse order on SIGTERM/SIGINT.
 * A second signal, or the deadline passing, exits at once.
 */
import type { Logger } from './logger.ts';

export class Shutdown {
  private readonly cleanups: { name: string; run: () => Promise<void> | void }[] = [];
  private stopping: Promise<void> | undefined;
  /** The deadline onSignals was given, for every way of stopping. */
  private deadlineMs: number | undefined;

  constructor(private readonly logger: Logger) {}

  add(name: string, run: () => Promise<void> | void): void {
    this.cleanups.push({ name, run });
  }

  /** Run every cleanup, newest first; errors are logged and do not stop the others. */
  run(): Promise<void> {
    this.stopping ??= (async () => {
      for (const { name, run } of this.cleanups.reverse()) {
        try {
          await run();
        } catch (err) {
          this.logger.error({ err, cleanup: name }, 'cleanup failed');
        }
      }
    })();
    return this.stopping;
  }

  /**
   * The process cannot do its work (a port it cannot listen on): log why, run every cleanup and
   * exit with code 1, instead of living on without serving.
   */
  async fail(err: unknown, msg: string): Promise<never> {
    this.logger.error({ err }, msg);
    this.exitAtDeadline();
    await this.run();
    process.exit(1);
  }

  /** Exit cleanly on `signals`, forcefully on a second signal or after deadlineMs (which `fail` keeps too). */
  onSignals(deadlineMs: number, signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT']): void {
    this.deadlineMs = deadlineMs;
    let signalled = false;
    const handler = (signal: NodeJS.Signals) => {
      if (signalled) {
        this.logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      signalled = true;
      this.logger.info({ signal }, 'shutting down');
      this.exitAtDeadline();
      void this.run().then(() => process.exit(0));
    };
    for (const signal of signals) process.on(signal, handler);
  }

  /** Exit with code 1 once the shutdown deadline passes, if one was set, whatever the cleanups are doing. */
  private exitAtDeadline(): void {
    if (this.deadlineMs === undefined) return;
    setTimeout(() => {
      this.logger.error('shutdown deadline passed: exiting');
      process.exit(1);
    }, this.deadlineMs).unref();
  }
}
