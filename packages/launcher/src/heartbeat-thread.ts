import { workerData } from 'node:worker_threads';
import { connectChannel } from '@trainer/comm';
import { CONTROL_PROTOCOL_VERSION, CONTROL_ROLE } from './control-protocol.js';

/**
 * Runs in a worker thread of every worker process: its own control connection, its own event
 * loop. It beats while the main thread is busy in synchronous TF.js work, and if the coordinator
 * falls silent (crashed, killed, unreachable) it kills this process, so no worker outlives its
 * job as an orphan.
 */
export interface HeartbeatThreadData {
  host: string;
  port: number;
  token: string;
  rank: number;
  pid: number;
  intervalMs: number;
  coordinatorTimeoutMs: number;
  /** PEM strings when the control port uses TLS. */
  tls?: { cert: string; key: string; ca: string };
}

const data = workerData as HeartbeatThreadData;

function die(reason: string): never {
  process.stderr.write(JSON.stringify({ level: 50, time: Date.now(), rank: data.rank, msg: `heartbeat: ${reason}; stopping this worker` }) + '\n');
  process.kill(data.pid, 'SIGKILL');
  throw new Error('unreachable');
}

async function main(): Promise<void> {
  const ch = await connectChannel({
    host: data.host, port: data.port, token: data.token, role: CONTROL_ROLE,
    hello: { kind: 'heartbeat', protocol: CONTROL_PROTOCOL_VERSION, rank: data.rank, pid: data.pid },
    ...(data.tls ? { tls: data.tls } : {}),
  });
  let lastHeard = Date.now();
  ch.on('message', () => (lastHeard = Date.now()));
  ch.on('close', () => die('the coordinator closed the heartbeat connection'));
  setInterval(() => {
    ch.send({ type: 'heartbeat', t: Date.now() });
    if (Date.now() - lastHeard > data.coordinatorTimeoutMs) die(`no heartbeat from the coordinator for ${data.coordinatorTimeoutMs / 1000} s`);
  }, data.intervalMs);
}

main().catch((err: unknown) => die(`cannot reach the coordinator (${err instanceof Error ? err.message : String(err)})`));
