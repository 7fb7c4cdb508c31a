import { TrainerError } from '@trainer/errors';
import { loseDevice } from '@trainer/model';

/**
 * Deliberate faults for testing failure handling, set by the environment of the launch:
 *
 *   TRAINER_FAULT="rank=1,step=3,kind=exit"     the worker exits with code 3 at that step
 *   kind=kill    SIGKILL itself (as the OOM killer would)
 *   kind=throw   raise a TrainerError (an ordinary failure with a message)
 *   kind=hang    block the main thread forever (a hung process; heartbeats keep beating)
 *   kind=silent  stop the heartbeat thread too, by blocking every thread (a frozen host)
 *   kind=desync  start an all-reduce of another size while the others run the step's (a desynchronized collective)
 *   kind=device-lost  destroy the WebGPU device (as a GPU reset loses it); the step then fails
 *                with TRAINER_ERR_DEVICE_LOST (webgpu backend only)
 *   kind=pause   wait ms=N milliseconds (default 15000) before the step, the event loop free (a slow
 *                rank; keeps a short run in progress while a test does something to it)
 *   round=R      only in rendezvous round R (default 0: the first workers, not their restarts);
 *                round=any in every round (a failure that a restart reproduces)
 *
 * Unset (the normal case) it costs one comparison per step.
 */
export interface Fault {
  rank: number;
  step: number;
  kind: 'exit' | 'kill' | 'throw' | 'hang' | 'silent' | 'desync' | 'pause' | 'device-lost';
  /** The round it fires in; undefined: every round. */
  round: number | undefined;
  /** How long kind=pause waits. */
  ms?: number;
}

const KINDS: readonly Fault['kind'][] = ['exit', 'kill', 'throw', 'hang', 'silent', 'desync', 'pause', 'device-lost'];

export function parseFault(spec: string | undefined): Fault | undefined {
  if (!spec) return undefined;
  const fields = Object.fromEntries(spec.split(',').map((kv) => kv.split('=').map((s) => s.trim()) as [string, string]));
  const rank = Number(fields.rank);
  const step = Number(fields.step);
  const kind = fields.kind as Fault['kind'];
  const round = fields.round === undefined ? 0 : fields.round === 'any' ? undefined : Number(fields.round);
  const ms = fields.ms === undefined ? undefined : Number(fields.ms);
  if (!Number.isInteger(rank) || !Number.isInteger(step) || !KINDS.includes(kind) || (round !== undefined && !Number.isInteger(round))
    || (ms !== undefined && (kind !== 'pause' || !Number.isInteger(ms) || ms < 0))) {
    throw new TrainerError('TRAINER_ERR_BAD_ENV', `TRAINER_FAULT=${JSON.stringify(spec)} is not "rank=R,step=S,kind=exit|kill|throw|hang|silent|desync|pause|device-lost[,ms=N][,round=N|any]"`, { hint: 'unset TRAINER_FAULT' });
  }
  return kind === 'pause' ? { rank, step, kind, round, ms: ms ?? 15_000 } : { rank, step, kind, round };
}

/**
 * Injects the fault when it is due; returns 'desync' when the caller must issue the stray
 * collective, and a promise to await for kind=pause.
 */
export function maybeInjectFault(fault: Fault | undefined, rank: number, step: number, round = 0): 'desync' | Promise<void> | undefined {
  if (!fault || fault.rank !== rank || fault.step !== step || (fault.round !== undefined && fault.round !== round)) return undefined;
  process.stderr.write(`injecting fault ${fault.kind} at rank ${rank}, step ${step}, round ${round} (TRAINER_FAULT) at ${Date.now()}\n`);
  switch (fault.kind) {
    case 'exit':
      process.exit(3);
    case 'kill':
      process.kill(process.pid, 'SIGKILL');
      return undefined;
    case 'throw':
      throw new TrainerError('TRAINER_ERR_INJECTED_FAULT', `fault injected at rank ${rank}, step ${step}`);
    case 'hang':
      for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
    case 'silent':
      process.kill(process.pid, 'SIGSTOP');
      return undefined;
    case 'desync':
      return 'desync';
    case 'pause':
      return new Promise((resolve) => setTimeout(resolve, fault.ms ?? 15_000));
    case 'device-lost':
      if (!loseDevice()) throw new TrainerError('TRAINER_ERR_BAD_ENV', 'TRAINER_FAULT kind=device-lost needs the webgpu backend', { hint: 'run with --backend webgpu' });
      return undefined;
  }
}
