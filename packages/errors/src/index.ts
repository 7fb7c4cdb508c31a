/**
 * The one error type every package throws for conditions a user can act on.
 *
 * Each error carries a stable `code` (`TRAINER_ERR_*`), a message saying what was wrong, and
 * a `hint` saying what to do about it. Codes are part of the public contract: scripts match on
 * them, so a code is never renamed or reused. The CLI prints `code: message` and the hint,
 * never a bare stack trace. The catalogue of codes lives in docs/ERRORS.md.
 */
export interface TrainerErrorOptions {
  /** What the user can do about it, in one sentence. */
  hint?: string;
  /** The underlying error, kept for logs and debugging. */
  cause?: unknown;
  /** Structured details (ranks, sizes, paths) for logs and machine-readable output. */
  details?: Record<string, unknown>;
}

export class TrainerError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, options: TrainerErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    if (!/^TRAINER_ERR_[A-Z0-9_]+$/.test(code)) throw new Error(`invalid error code ${code}`);
    this.name = 'TrainerError';
    this.code = code;
    this.hint = options.hint;
    this.details = options.details;
  }

  /** One or two lines for a terminal: `TRAINER_ERR_X: message` then `hint: ...`. */
  format(): string {
    return this.hint ? `${this.code}: ${this.message}\n  hint: ${this.hint}` : `${this.code}: ${this.message}`;
  }

  /** A plain object that survives msgpack/JSON, for sending an error to another process (absent fields left out, not undefined). */
  toJSON(): SerializedTrainerError {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint === undefined ? {} : { hint: this.hint }),
      ...(this.details === undefined ? {} : { details: this.details }),
    };
  }
}

export interface SerializedTrainerError {
  code: string;
  message: string;
  hint?: string | undefined;
  details?: Record<string, unknown> | undefined;
}

export function isTrainerError(err: unknown): err is TrainerError {
  return err instanceof TrainerError;
}

/** Rebuilds an error received from another process. */
export function trainerErrorFrom(data: SerializedTrainerError): TrainerError {
  return new TrainerError(data.code, data.message, { hint: data.hint, details: data.details });
}

/**
 * Wraps anything thrown into a TrainerError, keeping TrainerErrors as they are. For the last
 * line of defence (a worker's top level, the CLI): an unexpected error still gets a code.
 */
export function asTrainerError(err: unknown, code = 'TRAINER_ERR_INTERNAL'): TrainerError {
  if (err instanceof TrainerError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new TrainerError(code, message, {
    cause: err,
    hint: code === 'TRAINER_ERR_INTERNAL' ? 'this is a bug in trainer: please report it with the log above' : undefined,
  });
}

/**
 * What `fn` throws, as `CODE: message` for a TrainerError and String(error) for anything else;
 * undefined when it returns. For tests that compare a failure's code and message in one string.
 */
export function thrownSummary(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof TrainerError ? `${e.code}: ${e.message}` : String(e);
  }
  return undefined;
}
