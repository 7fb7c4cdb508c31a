import { connectChannel, type Channel } from '@trainer/comm';
import { TrainerError } from '@trainer/errors';
import { TOKEN_ENV } from '../cluster-token.js';
import { CONTROL_ROLE } from '../control-protocol.js';
import { cudaVisibleDevices, type GpuInfo } from '../devices.js';
import type { Logger } from '../logging.js';
import { AGENT_PROTOCOL_VERSION, agentMessage, ToAgentSchema, type FromAgent } from './agent-protocol.js';
import { WorkerGroup } from './worker-group.js';

/**
 * `trainer agent`: one per host of a multi-host launch (started over SSH or srun), like
 * torchrun's elastic agent. It connects to the coordinator, and for every rendezvous round
 * starts `slots` workers on this host (one per GPU with CUDA_VISIBLE_DEVICES, or per slot),
 * relays their logs, reports their exits, and stops them when the round fails. If the
 * coordinator goes away (its connection closes, or it falls silent) or the launcher does (the
 * SSH session's stdin closes), the agent kills its workers and exits: nothing is left behind.
 */
export interface AgentOptions {
  coordinator: { host: string; port: number };
  token: string;
  /** How this host is named in logs and failures (the hostfile's name). */
  hostName: string;
  slots: number;
  /** [node, script, 'worker'] */
  workerCommand: { execPath: string; args: string[] };
  gpus: readonly GpuInfo[];
  logger: Logger;
  pretty: boolean;
  /** Resolves when the launcher is gone (stdin closed): stop everything. */
  launcherGone?: Promise<void>;
  heartbeatIntervalMs?: number;
  /** The coordinator silent this long means it is gone (default 30 s). */
  coordinatorTimeoutMs?: number;
  /** Time workers get to exit after stop (3 s) or after the job ends (15 s) before they are killed. */
  graceMs?: number;
  /** How long to keep trying to reach the coordinator at start (default 30 s). */
  connectTimeoutMs?: number;
  /** Extra options for the control connection (TLS). */
  channel?: Record<string, unknown>;
}

/** Returns the agent's exit code: 0 when the coordinator ended the job, 1 otherwise. */
export async function runAgent(o: AgentOptions): Promise<number> {
  const log = o.logger;
  const ch = await connectWithRetry(o);
  log.info({ coordinator: `${o.coordinator.host}:${o.coordinator.port}`, slots: o.slots }, `agent on ${o.hostName} connected; ${o.slots} worker(s) per round`);
  let group: WorkerGroup | undefined;
  let lastHeard = Date.now();
  const send = (m: FromAgent) => {
    try {
      ch.send(agentMessage(m));
    } catch {
      // closed: the 'close' handler ends the agent
    }
  };
  // Rounds are handled one message at a time: a start waits for the previous round's workers to be gone.
  let queue = Promise.resolve();
  const then = (fn: () => Promise<void>) => (queue = queue.then(fn, fn));

  const startRound = (round: number) => {
    group = new WorkerGroup(o.slots, {
      command: { execPath: o.workerCommand.execPath, args: [...o.workerCommand.args, '--coordinator', `${o.coordinator.host}:${o.coordinator.port}`] },
      envFor: (localRank) => {
        const env: NodeJS.ProcessEnv = {
          ...process.env, [TOKEN_ENV]: o.token, LOCAL_RANK: String(localRank), TRAINER_ROUND: String(round), TRAINER_HOST_NAME: o.hostName, TRAINER_LOG_FORMAT: 'json',
        };
        delete env.RANK; // ranks come from the coordinator (by host, then local rank)
        const device = cudaVisibleDevices(localRank, o.gpus);
        if (device !== undefined) env.CUDA_VISIBLE_DEVICES = device;
        return env;
      },
      labelFor: (localRank) => `${o.hostName}/${localRank}`,
      pretty: o.pretty,
      onExit: (localRank, pid, code, signal) => {
        if (pid !== undefined) send({ type: 'worker-exited', round, localRank, pid, code, signal });
      },
      onSpawnError: (localRank, err) => log.error({ localRank }, `cannot start a worker: ${err.message}`),
    });
    log.info({ round, pids: group.pids }, `round ${round}: started ${o.slots} worker(s)`);
  };

  return new Promise<number>((resolve) => {
    let ended = false;
    const end = (code: number, why: string, graceMs: number) => {
      if (ended) return;
      ended = true;
      clearInterval(beat);
      (code === 0 ? log.info.bind(log) : log.error.bind(log))(`agent on ${o.hostName} exiting: ${why}`);
      void then(async () => {
        if (group) {
          await group.waitForExit(graceMs);
          await group.stop(0);
        }
        ch.close('agent exiting');
        resolve(code);
      });
    };
    const beat = setInterval(() => {
      send({ type: 'heartbeat', t: Date.now() });
      const timeout = o.coordinatorTimeoutMs ?? 30_000;
      if (Date.now() - lastHeard > timeout) end(1, `no word from the coordinator for ${timeout / 1000} s`, 0);
    }, o.heartbeatIntervalMs ?? 1000);
    ch.on('close', () => end(1, 'the connection to the coordinator closed', 0));
    void o.launcherGone?.then(() => end(1, 'the launcher is gone (the session closed)', 0));
    ch.on('message', (header: Record<string, unknown>) => {
      lastHeard = Date.now();
      const parsed = ToAgentSchema.safeParse(header);
      if (!parsed.success) return end(1, `invalid message from the coordinator: ${parsed.error.message}`, 0);
      const m = parsed.data;
      if (m.type === 'start') {
        void then(async () => {
          await group?.stop(o.graceMs ?? 3000);
          if (!ended) startRound(m.round);
        });
      } else if (m.type === 'stop') {
        void then(async () => {
          await group?.stop(o.graceMs ?? 3000);
          send({ type: 'stopped', round: m.round });
        });
      } else if (m.type === 'exit') {
        end(0, m.reason, 15_000);
      }
    });
  });
}

async function connectWithRetry(o: AgentOptions): Promise<Channel> {
  const deadline = Date.now() + (o.connectTimeoutMs ?? 30_000);
  for (;;) {
    try {
      return await connectChannel({
        ...o.channel, host: o.coordinator.host, port: o.coordinator.port, token: o.token, role: CONTROL_ROLE, logger: o.logger,
        hello: { kind: 'agent', protocol: AGENT_PROTOCOL_VERSION, host: o.hostName, pid: process.pid, slots: o.slots },
      });
    } catch (err) {
      const code = err instanceof TrainerError ? err.code : '';
      if (code !== 'TRAINER_ERR_CONNECT_FAILED' || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
