import type { ChildProcess } from 'node:child_process';
import { Coordinator, type CoordinatorOptions } from '../coordinator.js';
import type { JobOutcome } from '../failure-attribution.js';
import { relayWorkerOutput, wantsPrettyLogs } from '../logging.js';
import { AgentPool } from './agent-pool.js';
import type { HostEntry } from './hostfile.js';
import { spawnSrunAgents, spawnSshAgent } from './remote-shell.js';
import { RestartSupervisor, type RestartSummary } from './restart-supervisor.js';
import { SignalAbort } from './signal-abort.js';

/**
 * `trainer launch --hostfile FILE` (or inside a Slurm allocation): the coordinator here, one
 * agent per host (over SSH, or one srun for all nodes), and the agents start the workers of
 * every round. Hosts were probed before (probeHosts), so an unreachable one has already been
 * named. Whatever happens, every agent is told to exit and every ssh/srun process this launcher
 * started is gone before this returns.
 */
export interface HostLaunchOptions extends Omit<CoordinatorOptions, 'host' | 'port'> {
  hosts: readonly (HostEntry & { slots: number })[];
  /** Address to listen on (0.0.0.0) and port (0: any free port). */
  bindHost: string;
  port: number;
  /** The coordinator's address as the hosts reach it. */
  advertiseHost: string;
  /** 'ssh' (with these extra options) or 'srun'. */
  via: { kind: 'ssh'; sshOptions: readonly string[] } | { kind: 'srun' };
  execPath: string;
  cliPath: string;
  cwd: string;
  /** The environment that travels to the hosts (remote-shell.ts). */
  env: Record<string, string>;
  /** Extra arguments for every agent (TLS files). */
  agentArgs?: string[];
  maxRestarts: number;
  onCoordinator?: (c: Coordinator) => void;
}

export interface HostLaunchResult {
  outcome: JobOutcome;
  exitCode: number;
  restarts: RestartSummary;
}

export async function launchOnHosts(opts: HostLaunchOptions): Promise<HostLaunchResult> {
  const log = opts.logger;
  const coordinator = await Coordinator.start({ ...opts, host: opts.bindHost, port: opts.port });
  opts.onCoordinator?.(coordinator);
  const pool = new AgentPool(coordinator, { logger: log });
  const supervisor = new RestartSupervisor(coordinator, { maxRestarts: opts.maxRestarts, job: opts.job, world: opts.world, launcher: pool, logger: log });
  const pretty = wantsPrettyLogs();
  const sessions: ChildProcess[] = [];
  const signals = new SignalAbort(coordinator, log);

  const agentArgv = (h?: HostEntry & { slots: number }) => [
    opts.execPath, opts.cliPath, 'agent', '--coordinator', `${opts.advertiseHost}:${coordinator.address.port}`,
    ...(h ? ['--host-name', h.host, '--slots', String(h.slots)] : ['--slots', String(opts.hosts[0].slots)]), ...(opts.agentArgs ?? []),
  ];
  const watch = (child: ChildProcess, label: string) => {
    sessions.push(child);
    relayWorkerOutput(child.stdout!, label, pretty, (t) => process.stdout.write(t));
    relayWorkerOutput(child.stderr!, label, pretty, (t) => process.stderr.write(t));
    child.on('exit', (code, signal) => {
      if (!coordinator.isOver) log.warn({ host: label, code, signal }, `the agent session on ${label} ended (${signal ?? `exit code ${code}`}) while the job runs`);
    });
    child.on('error', (err) => log.error({ host: label }, `cannot start the agent session on ${label}: ${err.message}`));
  };
  try {
    if (opts.via.kind === 'ssh') {
      for (const h of opts.hosts) watch(spawnSshAgent(h, { sshOptions: opts.via.sshOptions, cwd: opts.cwd, env: opts.env, agentArgv: agentArgv(h), token: opts.token }), h.host);
    } else {
      watch(spawnSrunAgents(opts.hosts.length, { cwd: opts.cwd, env: opts.env, agentArgv: agentArgv(), token: opts.token }), 'srun');
    }
    void pool.waitForAgents(opts.hosts.length, 30_000).then(() => {
      const missing = opts.hosts.map((h) => h.host).filter((h) => !pool.hosts.includes(h));
      if (missing.length && !coordinator.isOver && opts.via.kind === 'ssh') log.warn({ missing }, `no agent connected from ${missing.join(', ')} within 30 s (their log lines above say why)`);
    });
    const outcome = await coordinator.done;
    pool.exitAll(outcome.ok ? 'the job finished' : 'the job failed');
    // Sessions of hosts still answering get time to finish; a host cut off would only make us wait.
    const answering = new Set(pool.responsiveHosts(5000));
    const waitFor = opts.via.kind === 'srun' ? sessions : sessions.filter((_, i) => answering.has(opts.hosts[i].host));
    await Promise.race([Promise.all(waitFor.map(exited)), sleep(outcome.ok ? 20_000 : 5000)]);
    const exitCode = signals.exitCode ?? supervisor.exitCode(outcome);
    return { outcome, exitCode, restarts: supervisor.summary() };
  } finally {
    for (const s of sessions) if (s.exitCode === null && s.signalCode === null) s.kill('SIGTERM');
    await Promise.race([Promise.all(sessions.map(exited)), sleep(2000)]);
    for (const s of sessions) if (s.exitCode === null && s.signalCode === null) s.kill('SIGKILL');
    signals.dispose();
    pool.close();
    // A connection to a host that was cut off closes only after its close handshake times out (30 s): not worth waiting for.
    await Promise.race([coordinator.close(), sleep(5000)]);
  }
}

function exited(c: ChildProcess): Promise<void> {
  return c.exitCode !== null || c.signalCode !== null || c.pid === undefined ? Promise.resolve() : new Promise<void>((resolve) => c.once('exit', () => resolve()));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
