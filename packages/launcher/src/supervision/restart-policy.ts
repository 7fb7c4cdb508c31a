import type { WorkerFailure } from '../coordinator.js';

/**
 * When a failed round is worth restarting (torchrun's model: any failure restarts the whole
 * group, up to --max-restarts), and when a restart cannot succeed and the run stops instead of
 * looping: a failure whose cause a restart does not change (a configuration error, a diverged
 * loss, a rendezvous that timed out), or a failure before the first step that repeats.
 */
export interface RoundRecord {
  round: number;
  /** Workers the round was started for, and (once ranks were assigned) the world it ran with. */
  world: number;
  /** First step of the round: the step its checkpoint was saved at, or 0. */
  startStep: number;
  /** The checkpoint the round resumed from (null: from scratch). */
  resumedFrom: string | null;
  /** Highest step any rank completed in this round (0-based), if any. */
  lastStep?: number;
  /** Epoch milliseconds: the round began (rendezvous), ranks were assigned, its first step completed. */
  startedAt: number;
  assignedAt?: number;
  firstStepAt?: number;
  failure?: WorkerFailure;
  failedAt?: number;
}

export type RestartDecision =
  | { restart: true }
  | {
    restart: false;
    /** True when restarting could not have succeeded (the run stops with exit code 3, not 1). */
    futile: boolean;
    code: string;
    message: string;
    hint: string;
  };

/**
 * Failures a restart reproduces: configuration the workers reject, input that is not there,
 * a loss that diverged (the trajectory from the checkpoint is the same), a rendezvous that
 * already waited its timeout.
 */
const NOT_RESTARTABLE = new Set([
  'TRAINER_ERR_BACKEND_UNAVAILABLE', 'TRAINER_ERR_UNKNOWN_BACKEND', 'TRAINER_ERR_NOT_ENOUGH_GPUS', 'TRAINER_ERR_RANK_CONFLICT',
  'TRAINER_ERR_PROTOCOL', 'TRAINER_ERR_PROTOCOL_VERSION', 'TRAINER_ERR_AUTH_FAILED', 'TRAINER_ERR_ROLE_MISMATCH', 'TRAINER_ERR_BAD_ENV',
  'TRAINER_ERR_MODEL_CONFIG', 'TRAINER_ERR_MESH', 'TRAINER_ERR_TP_INDIVISIBLE', 'TRAINER_ERR_PP_TOO_DEEP', 'TRAINER_ERR_PP_SPLIT',
  'TRAINER_ERR_BATCH_INDIVISIBLE', 'TRAINER_ERR_CONTEXT_TOO_LONG', 'TRAINER_ERR_CHECKPOINT_CONFIG_MISMATCH', 'TRAINER_ERR_PARAM_SIZE',
  'TRAINER_ERR_NONFINITE', 'TRAINER_ERR_LOSS_SCALE', 'TRAINER_ERR_RENDEZVOUS_TIMEOUT', 'TRAINER_ERR_USAGE',
]);
/** Families of input errors (TRAINER_ERR_CORPUS_*, ..._TASK_*, ..._TOKENIZER_*, ..._TOKEN_*). */
const NOT_RESTARTABLE_PREFIXES = ['CORPUS', 'TASK', 'TOKENIZER', 'TOKEN'].map((family) => `TRAINER_ERR_${family}_`);

export function isRestartable(code: string): boolean {
  return !NOT_RESTARTABLE.has(code) && !NOT_RESTARTABLE_PREFIXES.some((p) => code.startsWith(p));
}

/** Decides after the last round of `history` failed. */
export function decideRestart(history: readonly RoundRecord[], maxRestarts: number): RestartDecision {
  const last = history[history.length - 1];
  const failure = last.failure;
  if (!failure) throw new Error('decideRestart: the last round did not fail');
  const cause = `${failure.error.code}: ${failure.error.message}`;
  if (failure.error.code === 'TRAINER_ERR_ABORTED') {
    return { restart: false, futile: false, code: failure.error.code, message: 'the run was stopped', hint: failure.error.hint ?? '' };
  }
  const restarts = history.length - 1;
  if (maxRestarts === 0) return { restart: false, futile: false, code: failure.error.code, message: cause, hint: failure.error.hint ?? 'pass --max-restarts N to restart the workers from the latest checkpoint after a failure' };
  if (!isRestartable(failure.error.code)) {
    return {
      restart: false, futile: true, code: 'TRAINER_ERR_NOT_RESTARTABLE',
      message: `a restart would fail the same way: ${cause}`,
      hint: failure.error.hint ?? 'fix the cause named above, then run again with --resume auto',
    };
  }
  const previous = history[history.length - 2];
  if (previous?.failure && previous.lastStep === undefined && last.lastStep === undefined && previous.failure.error.code === failure.error.code) {
    return {
      restart: false, futile: true, code: 'TRAINER_ERR_RESTART_FUTILE',
      message: `rounds ${previous.round} and ${last.round} both failed before completing a step, with the same cause: ${cause}`,
      hint: 'the failure happens while the workers start (a missing file, a bad environment on a host): fix it, then run again with --resume auto',
    };
  }
  if (restarts >= maxRestarts) {
    return {
      restart: false, futile: false, code: 'TRAINER_ERR_RESTARTS_EXHAUSTED',
      message: `${restarts} restart(s) used of --max-restarts ${maxRestarts}; the last failure: ${cause}`,
      hint: 'raise --max-restarts, or fix what keeps failing (each restart is listed in summary.json)',
    };
  }
  return { restart: true };
}

/** Steps trained in a failed round that the next round trains again: from its resume step to the last step completed. */
export function lostSteps(failed: RoundRecord, resumeStep: number): number {
  const reached = failed.lastStep === undefined ? failed.startStep : failed.lastStep + 1;
  return Math.max(0, reached - resumeStep);
}
