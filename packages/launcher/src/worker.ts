import { createSocket } from 'node:dgram';
import { hostname } from 'node:os';
import { Worker } from 'node:worker_threads';
import { connectChannel, DataPlane, DataPlaneThread, type Channel, type Communicator, type TlsOptions } from '@trainer/comm';
import { TrainerError, asTrainerError } from '@trainer/errors';
import { CONTROL_PROTOCOL_VERSION, CONTROL_ROLE, ToWorkerSchema, message, type MetricsRecord, type ToCoordinator, type WorkerHello } from './control-protocol.js';
import type { JobSpec } from './job-spec.js';
import type { Logger } from './logging.js';
import type { HeartbeatThreadData } from './heartbeat-thread.js';

/**
 * A worker process: joins the coordinator, learns its rank and peers, connects its data plane
 * to every peer, runs the job, reports the result, and exits. It obeys the coordinator's abort
 * at the next await, and a heartbeat thread keeps the coordinator informed (and kills this
 * process if the coordinator disappears) even while the main thread is inside a long
 * synchronous TF.js call.
 */
export interface JobContext {
  rank: number;
  world: number;
  /** The rendezvous round (0, then +1 for every restart of the group). */
  round: number;
  comm: Communicator;
  job: JobSpec;
  /** Bytes sent with the assignment (the tokenizer file). */
  payload: Uint8Array | undefined;
  logger: Logger;
  /** Sends a metrics record to the coordinator (metrics.jsonl, progress, dashboard). */
  report(record: MetricsRecord): void;
  /** Sends any other worker -> coordinator message (the checkpoint commit protocol). */
  send(message: ToCoordinator): void;
  /**
   * A data plane on its own thread, listening beside this worker's (same interface, token and
   * TLS); connect it to its peers' with connectThreads. The worker closes it after the job.
   */
  startDataPlaneThread(): Promise<DataPlaneThread>;
}

export type JobRunner = (ctx: JobContext) => Promise<MetricsRecord>;

export interface WorkerOptions {
  coordinator: { host: string; port: number };
  token: string;
  localRank: number;
  requestedRank?: number;
  /** The round this worker was started for (TRAINER_ROUND, set by whoever restarts workers). */
  round?: number;
  /** How failures name this host (default: the OS hostname; agents pass the hostfile's name). */
  hostName?: string;
  /** Address peers use to reach this worker's data plane (default: the interface that routes to the coordinator). */
  advertiseHost?: string;
  device: string;
  logger: Logger;
  runJob: JobRunner;
  heartbeatIntervalMs?: number;
  /** The coordinator silent this long means it is gone: the worker stops itself. */
  coordinatorTimeoutMs?: number;
  collectiveTimeoutMs?: number;
  /** TLS (wss) for the control connection and every data channel (then also between peers on one machine). */
  tls?: TlsOptions;
}

/**
 * TRAINER_MACHINES=a,a,b,b: the machine of each rank, by rank (hierarchical all-reduce groups
 * ranks by it), for when data-plane addresses do not tell machines apart; the same on every
 * worker. Default: each rank's data-plane address.
 */
function machinesFromEnv(world: number): { machines?: string[] } {
  const text = process.env.TRAINER_MACHINES;
  if (!text) return {};
  const machines = text.split(',').map((m) => m.trim());
  if (machines.length !== world || machines.some((m) => m === '')) {
    throw new TrainerError('TRAINER_ERR_USAGE', `TRAINER_MACHINES names ${machines.length} machine(s) for ${world} ranks`, { hint: 'give one non-empty machine name per rank, by rank, e.g. TRAINER_MACHINES=a,a,b,b for 4 ranks' });
  }
  return { machines };
}

export async function runWorker(opts: WorkerOptions): Promise<number> {
  const log = opts.logger;
  const advertiseHost = opts.advertiseHost ?? (await localAddressTowards(opts.coordinator.host));
  const listenHost = isLoopback(advertiseHost) ? advertiseHost : '0.0.0.0';
  const dataPlane = await DataPlane.listen({ host: listenHost, port: 0, advertiseHost, token: opts.token, logger: log, tls: opts.tls });
  const hello: WorkerHello = {
    kind: 'worker', protocol: CONTROL_PROTOCOL_VERSION, host: opts.hostName ?? hostname(), pid: process.pid, localRank: opts.localRank,
    dataHost: dataPlane.address.host, dataPort: dataPlane.address.port, device: opts.device,
    ...(opts.requestedRank === undefined ? {} : { requestedRank: opts.requestedRank }),
    ...(opts.round === undefined ? {} : { round: opts.round }),
  };
  // Until the job starts, a failure must also close the data plane's listening server: it would
  // keep the process alive after the error is reported (a worker that cannot reach its
  // coordinator would hang instead of exiting).
  let control: Channel;
  try {
    control = await connectChannel({ ...opts.coordinator, token: opts.token, role: CONTROL_ROLE, hello: hello as unknown as Record<string, unknown>, logger: log, tls: opts.tls });
  } catch (err) {
    await dataPlane.close();
    throw err;
  }
  log.info({ coordinator: `${opts.coordinator.host}:${opts.coordinator.port}`, data: `${dataPlane.address.host}:${dataPlane.address.port}` }, 'joined the coordinator; waiting for the other workers');

  let rank = -1;
  const send = (m: ToCoordinator) => control.send(message(m));
  const finished = new Promise<void>((resolve, reject) => {
    control.on('close', () => reject(new TrainerError('TRAINER_ERR_COORDINATOR_LOST', 'the connection to the coordinator closed', {
      hint: 'the coordinator exited or is unreachable; its log says why',
    })));
    control.on('message', (header: Record<string, unknown>) => {
      const parsed = ToWorkerSchema.safeParse(header);
      if (!parsed.success) return reject(new TrainerError('TRAINER_ERR_PROTOCOL', `invalid message from the coordinator: ${parsed.error.message}`));
      if (parsed.data.type === 'abort') {
        log.error({ rank }, `aborted by the coordinator: ${parsed.data.reason}`);
        process.exit(1);
      }
      if (parsed.data.type === 'finish') resolve();
    });
  });
  finished.catch(() => undefined);

  const assignment = await new Promise<{ rank: number; world: number; round: number; peers: { rank: number; host: string; port: number }[]; job: JobSpec; payload?: Uint8Array }>((resolve, reject) => {
    control.once('close', () => reject(new TrainerError('TRAINER_ERR_COORDINATOR_LOST', 'the coordinator closed the connection before assigning a rank')));
    control.on('message', (header: Record<string, unknown>, payload?: Uint8Array) => {
      const parsed = ToWorkerSchema.safeParse(header);
      if (parsed.success && parsed.data.type === 'assign') resolve({ ...parsed.data, payload });
    });
  }).catch(async (err: unknown) => {
    closeQuietly(control);
    await dataPlane.close();
    throw err;
  });
  rank = assignment.rank;
  const jobLog = log.child({ rank });
  const heartbeat = startHeartbeatThread({
    host: opts.coordinator.host, port: opts.coordinator.port, token: opts.token, rank, pid: process.pid,
    intervalMs: opts.heartbeatIntervalMs ?? 1000, coordinatorTimeoutMs: opts.coordinatorTimeoutMs ?? 60_000,
    ...(opts.tls ? { tls: { cert: String(opts.tls.cert), key: String(opts.tls.key), ca: String(opts.tls.ca) } } : {}),
  });

  const threads: DataPlaneThread[] = [];
  try {
    // Pipeline stages exchange activations while both compute: loopback TCP (megabyte buffers)
    // instead of Unix sockets for same-machine peers (measured: 755 vs 945 ms per step at pp 2).
    const comm = await dataPlane.connect({
      rank, world: assignment.world, peers: assignment.peers, collectiveTimeoutMs: assignment.job.collectiveTimeoutMs ?? opts.collectiveTimeoutMs,
      ...(assignment.job.pp > 1 ? { localTransport: 'tcp' as const } : {}),
      ...(assignment.job.collectiveAlgorithm ? { algorithm: assignment.job.collectiveAlgorithm } : {}),
      ...machinesFromEnv(assignment.world),
    });
    jobLog.info({ world: assignment.world }, 'data plane connected to all peers');
    send({ type: 'ready', rank });
    const result = await opts.runJob({
      rank, world: assignment.world, round: assignment.round, comm, job: assignment.job, payload: assignment.payload, logger: jobLog,
      report: (record) => send({ type: 'metrics', rank, record: finiteOrNull(record) }),
      send,
      startDataPlaneThread: async () => {
        const tls = opts.tls ? { cert: String(opts.tls.cert), key: String(opts.tls.key), ca: String(opts.tls.ca) } : undefined;
        const t = await DataPlaneThread.start({ token: opts.token, host: listenHost, advertiseHost, ...(tls ? { tls } : {}) });
        threads.push(t);
        return t;
      },
    });
    send({ type: 'result', rank, result: finiteOrNull(result) });
    await finished;
    await comm.close();
    return 0;
  } catch (err) {
    const e = asTrainerError(err);
    jobLog.error({ code: e.code, details: e.details }, e.format());
    try {
      send({ type: 'failed', rank, error: e.toJSON() });
    } catch {
      // the coordinator is gone; the log line above is all we can do
    }
    return 1;
  } finally {
    await Promise.all(threads.map((t) => t.close()));
    await heartbeat.terminate();
    closeQuietly(control);
  }
}

function startHeartbeatThread(data: HeartbeatThreadData): Worker {
  const w = new Worker(new URL('./heartbeat-thread.js', import.meta.url), { workerData: data });
  w.unref();
  return w;
}

function closeQuietly(ch: Channel): void {
  try {
    ch.close('worker exiting');
  } catch {
    // already closed
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** The local address the OS would use to reach `host` (a connected UDP socket sends nothing). */
export function localAddressTowards(host: string): Promise<string> {
  if (isLoopback(host)) return Promise.resolve('127.0.0.1');
  return new Promise((resolve) => {
    const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    sock.on('error', () => {
      sock.close();
      resolve(hostname());
    });
    sock.connect(9, host, () => {
      const address = sock.address().address;
      sock.close();
      resolve(address);
    });
  });
}

/**
 * Metrics travel as JSON-like values: a NaN or an infinity (the gradient norm of a skipped fp16
 * step, a throughput before any timed step) becomes null rather than an invalid message.
 */
export function finiteOrNull(record: MetricsRecord): MetricsRecord {
  const out: MetricsRecord = {};
  for (const [k, v] of Object.entries(record)) out[k] = typeof v === 'number' && !Number.isFinite(v) ? null : v;
  return out;
}
