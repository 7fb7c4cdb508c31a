import type { Logger } from '../logging.js';

/**
 * Ctrl-C / SIGTERM during a launch: the coordinator aborts every worker, and the launch exits
 * with the shell's code for the signal (130 for SIGINT, 143 for SIGTERM). `dispose` removes the
 * handlers when the launch ends.
 */
export class SignalAbort {
  /** The exit code of the signal received, if any. */
  exitCode: number | undefined;

  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.exitCode = signal === 'SIGINT' ? 130 : 143;
    this.logger.warn(`${signal} received: stopping all workers`);
    this.coordinator.abort(`the launcher received ${signal}`);
  };

  constructor(private readonly coordinator: { abort(reason: string): void }, private readonly logger: Logger) {
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
  }

  dispose(): void {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
  }
}
