import type { Coordinator } from '../coordinator.js';
import { cudaVisibleDevices, type GpuInfo } from '../devices.js';
import { TOKEN_ENV } from '../cluster-token.js';
import type { RoundLauncher } from './restart-supervisor.js';
import { WorkerGroup, type WorkerExit } from './worker-group.js';

/**
 * The local launcher's workers, round by round: `world` children on this machine with RANK =
 * LOCAL_RANK = i, restarted as a whole group for every round (torchrun's local agent). Exits are
 * reported to the coordinator with the round they belong to, so a straggler of a failed round
 * is never taken for a failure of the next.
 */
export interface LocalWorkersOptions {
  coordinator: Coordinator;
  /** [node, script, 'worker', ...] */
  command: { execPath: string; args: string[] };
  gpus: readonly GpuInfo[];
  token: string;
  env?: NodeJS.ProcessEnv;
  pretty: boolean;
  /** Where the workers' log lines go (stdout by default; stderr keeps stdout for a command's own output). */
  logTo?: 'stdout' | 'stderr';
  /** Time a failed round's workers get to exit after the abort before they are killed (3 s). */
  graceMs?: number;
}

export class LocalWorkers implements RoundLauncher {
  private group: WorkerGroup | undefined;

  constructor(private readonly o: LocalWorkersOptions) {}

  /** The current round's exits (local rank = rank). */
  get exits(): WorkerExit[] {
    return this.group?.exits ?? [];
  }

  startRound(round: number, world: number): void {
    const { coordinator } = this.o;
    this.group = new WorkerGroup(world, {
      command: { execPath: this.o.command.execPath, args: [...this.o.command.args, '--coordinator', `127.0.0.1:${coordinator.address.port}`] },
      envFor: (localRank) => {
        const env: NodeJS.ProcessEnv = {
          ...process.env, ...this.o.env, [TOKEN_ENV]: this.o.token, LOCAL_RANK: String(localRank), RANK: String(localRank),
          WORLD_SIZE: String(world), TRAINER_ROUND: String(round), TRAINER_LOG_FORMAT: 'json',
        };
        const device = cudaVisibleDevices(localRank, this.o.gpus);
        if (device !== undefined) env.CUDA_VISIBLE_DEVICES = device;
        return env;
      },
      labelFor: (localRank) => `rank ${localRank}`,
      pretty: this.o.pretty,
      ...(this.o.logTo === 'stderr' ? { out: (t: string) => void process.stderr.write(t) } : {}),
      // Local workers are started with RANK = local rank, so the rank is known here.
      onExit: (localRank, pid, code, signal) => coordinator.processExited(localRank, pid, code, signal, round),
      onSpawnError: (_localRank, err) => coordinator.abort(`cannot start a worker: ${err.message}`),
    });
  }

  async stopRound(): Promise<void> {
    await this.group?.stop(this.o.graceMs ?? 3000);
  }

  /** After the job: workers get `graceMs` to exit on their own, then are killed. */
  async finish(graceMs: number): Promise<void> {
    if (!this.group) return;
    await this.group.waitForExit(graceMs);
    await this.group.stop(0);
  }

  kill(): void {
    this.group?.kill();
  }
}
