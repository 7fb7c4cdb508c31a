import { TrainerError } from '@trainer/errors';
import { Coordinator, type CoordinatorOptions, type JobOutcome } from './coordinator.js';
import type { GpuInfo } from './devices.js';
import { wantsPrettyLogs } from './logging.js';
import { LocalWorkers } from './supervision/local-workers.js';
import { RestartSupervisor, type RestartSummary } from './supervision/restart-supervisor.js';
import { SignalAbort } from './supervision/signal-abort.js';

/**
 * `trainer launch` on one machine: a coordinator in this process and `world` worker processes
 * (`trainer worker`), their output relayed with rank labels. Whatever happens (the job ends, a
 * worker fails, Ctrl-C/SIGTERM, the coordinator fails) every child is stopped before this
 * returns: first asked (abort), then SIGKILLed after a grace period. With --max-restarts a
 * failed round is followed by another (supervision/): all children are started again and
 * resume from the latest checkpoint.
 */
export interface LocalLaunchOptions extends Omit<CoordinatorOptions, 'host' | 'port'> {
  /** The CLI entry a worker runs: [node, script, 'worker', ...]. */
  workerCommand: { execPath: string; args: string[] };
  gpus: readonly GpuInfo[];
  port?: number;
  /** Time workers get to exit on their own after the job ends (10 s) or aborts (3 s). */
  exitGraceMs?: number;
  /** Extra environment for every worker. */
  env?: NodeJS.ProcessEnv;
  /** Called once ranks are assigned and whenever a worker reports metrics. */
  onCoordinator?: (c: Coordinator) => void;
  /** Restarts of the whole group after failures (default 0: a failure ends the run). */
  maxRestarts?: number;
  /** Where the workers' log lines go (default stdout). */
  workerLogs?: 'stdout' | 'stderr';
}

export interface LaunchResult {
  outcome: JobOutcome;
  /** Exit code for the launcher: 0 success, 1 failure, 3 stopped because a restart could not succeed, 128+n on signal n. */
  exitCode: number;
  /** Each worker's exit in the last round: code or signal. */
  exits: { rank: number; code: number | null; signal: NodeJS.Signals | null }[];
  /** Restarts, lost steps and their causes (summary.json). */
  restarts: RestartSummary;
}

export async function launchLocal(opts: LocalLaunchOptions): Promise<LaunchResult> {
  const log = opts.logger;
  const coordinator = await Coordinator.start({ ...opts, host: '127.0.0.1', port: opts.port ?? 0 });
  opts.onCoordinator?.(coordinator);
  const workers = new LocalWorkers({ coordinator, command: opts.workerCommand, gpus: opts.gpus, token: opts.token, env: opts.env, pretty: wantsPrettyLogs(), logTo: opts.workerLogs });
  const supervisor = new RestartSupervisor(coordinator, { maxRestarts: opts.maxRestarts ?? 0, job: opts.job, world: opts.world, launcher: workers, logger: log });
  const signals = new SignalAbort(coordinator, log);

  try {
    workers.startRound(0, opts.world);
    const outcome = await coordinator.done;
    // Give workers time to exit on their own (they were told to finish or abort), then kill.
    await workers.finish(opts.exitGraceMs ?? (outcome.ok ? 10_000 : 3000));
    const exits = workers.exits.map((e) => ({ rank: e.localRank, code: e.code, signal: e.signal }));
    const exitCode = signals.exitCode ?? (outcome.ok ? (exits.every((e) => e.code === 0) ? 0 : 1) : supervisor.exitCode(outcome));
    return { outcome, exitCode, exits, restarts: supervisor.summary() };
  } finally {
    workers.kill();
    signals.dispose();
    await coordinator.close();
  }
}

export function assertWorldFitsGpus(world: number, gpus: readonly GpuInfo[], backend: string): void {
  if (gpus.length > 0 && world > gpus.length && (backend === 'cuda' || backend === 'auto')) {
    throw new TrainerError('TRAINER_ERR_NOT_ENOUGH_GPUS', `${world} workers were asked for but this machine has ${gpus.length} GPUs`, {
      hint: 'lower --nodes/--procs-per-node to the number of GPUs, or run on CPU with --backend wasm',
    });
  }
}
