import { spawn, type ChildProcess } from 'node:child_process';
import { TrainerError } from '@trainer/errors';
import { Coordinator, type CoordinatorOptions, type JobOutcome } from './coordinator.js';
import { cudaVisibleDevices, type GpuInfo } from './devices.js';
import { relayWorkerOutput, wantsPrettyLogs, type Logger } from './logging.js';
import { TOKEN_ENV } from './cluster-token.js';

/**
 * `trainer launch` on one machine: a coordinator in this process and `world` worker processes
 * (`trainer worker`), their output relayed with rank labels. Whatever happens (the job ends, a
 * worker fails, Ctrl-C/SIGTERM, the coordinator fails) every child is stopped before this
 * returns: first asked (abort), then SIGKILLed after a grace period.
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
}

export interface LaunchResult {
  outcome: JobOutcome;
  /** Exit code for the launcher: 0 success, 1 failure, 128+n on signal n. */
  exitCode: number;
  /** Each worker's exit: code or signal. */
  exits: { rank: number; code: number | null; signal: NodeJS.Signals | null }[];
}

export async function launchLocal(opts: LocalLaunchOptions): Promise<LaunchResult> {
  const log = opts.logger;
  const coordinator = await Coordinator.start({ ...opts, host: '127.0.0.1', port: opts.port ?? 0 });
  opts.onCoordinator?.(coordinator);
  const pretty = wantsPrettyLogs();
  const children: ChildProcess[] = [];
  const exits: LaunchResult['exits'] = [];
  let signalExit: number | undefined;

  const exited = (child: ChildProcess) =>
    child.exitCode !== null || child.signalCode !== null
      ? Promise.resolve()
      : new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const onSignal = (signal: NodeJS.Signals) => {
    signalExit = signal === 'SIGINT' ? 130 : 143;
    log.warn(`${signal} received: stopping all workers`);
    coordinator.abort(`the launcher received ${signal}`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    for (let localRank = 0; localRank < opts.world; localRank++) {
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        ...opts.env,
        [TOKEN_ENV]: opts.token,
        LOCAL_RANK: String(localRank),
        RANK: String(localRank),
        WORLD_SIZE: String(opts.world),
        TRAINER_LOG_FORMAT: 'json',
      };
      const device = cudaVisibleDevices(localRank, opts.gpus);
      if (device !== undefined) env.CUDA_VISIBLE_DEVICES = device;
      const child = spawn(opts.workerCommand.execPath, [...opts.workerCommand.args, '--coordinator', `127.0.0.1:${coordinator.address.port}`], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      const label = `rank ${localRank}`;
      relayWorkerOutput(child.stdout!, label, pretty, (t) => process.stdout.write(t));
      relayWorkerOutput(child.stderr!, label, pretty, (t) => process.stderr.write(t));
      child.on('exit', (code, signal) => {
        exits.push({ rank: localRank, code, signal });
        // Local workers are started with RANK = local rank, so the rank is known here.
        coordinator.processExited(localRank, child.pid, code, signal);
      });
      child.on('error', (err) => coordinator.abort(`cannot start a worker: ${err.message}`));
    }

    const outcome = await coordinator.done;
    // Give workers time to exit on their own (they were told to finish or abort), then kill.
    await Promise.race([Promise.all(children.map(exited)), sleep(opts.exitGraceMs ?? (outcome.ok ? 10_000 : 3000))]);
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await Promise.all(children.map(exited));
    const exitCode = signalExit ?? (outcome.ok && exits.every((e) => e.code === 0) ? 0 : 1);
    return { outcome, exitCode, exits };
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await coordinator.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

export function assertWorldFitsGpus(world: number, gpus: readonly GpuInfo[], backend: string): void {
  if (gpus.length > 0 && world > gpus.length && (backend === 'cuda' || backend === 'auto')) {
    throw new TrainerError('TRAINER_ERR_NOT_ENOUGH_GPUS', `${world} workers were asked for but this machine has ${gpus.length} GPUs`, {
      hint: 'lower --nodes/--procs-per-node to the number of GPUs, or run on CPU with --backend wasm',
    });
  }
}
