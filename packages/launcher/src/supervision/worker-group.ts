import { spawn, type ChildProcess } from 'node:child_process';
import { relayWorkerOutput } from '../logging.js';

/**
 * The worker processes of one rendezvous round on one machine: `trainer worker` children with
 * their environment (LOCAL_RANK, CUDA_VISIBLE_DEVICES, TRAINER_ROUND, ...), their output relayed
 * line by line with a label, their exits reported. Used by the local launcher and by the
 * per-host agent; `stop` asks (SIGTERM), waits, then kills, so nothing outlives a round.
 */
export interface WorkerGroupOptions {
  /** The CLI entry a worker runs: [node, script, 'worker', ...]. */
  command: { execPath: string; args: string[] };
  /** Environment of local rank i (on top of nothing: pass process.env in explicitly). */
  envFor(localRank: number): NodeJS.ProcessEnv;
  /** Output label of local rank i (`rank 2`, `host1/0`). */
  labelFor(localRank: number): string;
  pretty: boolean;
  /** Where relayed output goes (default: this process's stdout and stderr). */
  out?: (text: string) => void;
  err?: (text: string) => void;
  onExit(localRank: number, pid: number | undefined, code: number | null, signal: NodeJS.Signals | null): void;
  onSpawnError?(localRank: number, err: Error): void;
}

export interface WorkerExit { localRank: number; pid: number | undefined; code: number | null; signal: NodeJS.Signals | null }

export class WorkerGroup {
  readonly children: ChildProcess[] = [];
  readonly exits: WorkerExit[] = [];

  constructor(count: number, private readonly o: WorkerGroupOptions) {
    for (let localRank = 0; localRank < count; localRank++) this.start(localRank);
  }

  get pids(): number[] {
    return this.children.map((c) => c.pid).filter((p): p is number => p !== undefined);
  }

  get running(): number {
    return this.children.filter((c) => c.exitCode === null && c.signalCode === null).length;
  }

  /** Resolves when every child has exited on its own, or after `ms`. */
  async waitForExit(ms: number): Promise<void> {
    await Promise.race([Promise.all(this.children.map(exited)), sleep(ms)]);
  }

  /** SIGTERM, up to `graceMs` to exit, then SIGKILL; resolves when all are gone. */
  async stop(graceMs: number): Promise<void> {
    for (const c of this.children) if (alive(c)) c.kill('SIGTERM');
    await this.waitForExit(graceMs);
    this.kill();
    await Promise.all(this.children.map(exited));
  }

  /** SIGKILL whatever still runs (synchronous: for finally blocks and exit handlers). */
  kill(): void {
    for (const c of this.children) if (alive(c)) c.kill('SIGKILL');
  }

  private start(localRank: number): void {
    const child = spawn(this.o.command.execPath, this.o.command.args, { env: this.o.envFor(localRank), stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    const label = this.o.labelFor(localRank);
    relayWorkerOutput(child.stdout!, label, this.o.pretty, this.o.out ?? ((t) => process.stdout.write(t)));
    relayWorkerOutput(child.stderr!, label, this.o.pretty, this.o.err ?? ((t) => process.stderr.write(t)));
    child.on('exit', (code, signal) => {
      this.exits.push({ localRank, pid: child.pid, code, signal });
      this.o.onExit(localRank, child.pid, code, signal);
    });
    child.on('error', (err) => this.o.onSpawnError?.(localRank, err));
  }
}

function alive(c: ChildProcess): boolean {
  return c.exitCode === null && c.signalCode === null;
}

function exited(c: ChildProcess): Promise<void> {
  return alive(c) && c.pid !== undefined ? new Promise<void>((resolve) => c.once('exit', () => resolve())) : Promise.resolve();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
