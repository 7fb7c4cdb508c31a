import { EventEmitter } from 'node:events';
import { ChannelServer, type Channel } from '@trainer/comm';
import { TrainerError, type SerializedTrainerError } from '@trainer/errors';
import {
  CONTROL_ROLE, HeartbeatHelloSchema, ToCoordinatorSchema, WorkerHelloSchema, message,
  type MetricsRecord, type ToWorker, type WorkerHello,
} from './control-protocol.js';
import type { JobSpec } from './job-spec.js';
import type { Logger } from './logging.js';
import { createDashboard, openDashboard, type DashboardSettings } from './run-dashboard.js';
import type { Dashboard } from '@trainer/dashboard';
import { CheckpointCommitter } from './checkpointing/committer.js';

/**
 * The coordinator: rendezvous, rank assignment, health, and the run's single point of truth
 * about success or failure. It never touches model math.
 *
 * Life of a job: workers connect and say hello (host, pid, local rank, data-plane address);
 * once `world` have joined, ranks are assigned (RANK from the environment when every worker
 * has one, else by host and local rank) and each worker gets its rank, every peer's address and
 * the job. Workers report metrics and, at the end, a result; when every rank has reported, the
 * coordinator tells them to finish. The first failure (an error report, a lost connection, a
 * silent worker) aborts every worker and decides the outcome; later failures are consequences.
 */
export interface CoordinatorOptions {
  host: string;
  port: number;
  token: string;
  world: number;
  job: JobSpec;
  /** Bytes every worker receives with its assignment (the tokenizer file). */
  jobPayload?: Uint8Array;
  heartbeatIntervalMs?: number;
  /** A worker silent this long is declared failed (default 30 s: a step may block a busy CPU). */
  heartbeatTimeoutMs?: number;
  /** How long to wait for all workers to join (torchrun's default is 900 s). */
  rendezvousTimeoutMs?: number;
  /**
   * When a worker reports a failure that points at another rank (a lost peer, a collective
   * timeout), how long to wait for that rank's own failure before blaming it on their word.
   */
  attributionGraceMs?: number;
  logger: Logger;
  /** The live dashboard: on the control port (default), on a port of its own, or off (false). */
  dashboard?: DashboardSettings | false;
}

export interface WorkerFailure {
  rank: number | undefined;
  host: string;
  pid: number | undefined;
  lastStep: number | undefined;
  error: SerializedTrainerError;
}

/**
 * Errors that are consequences of another rank's failure: they name the suspect(s) in their
 * details (`rank` for a lost peer, `missing` for a timeout). The root cause is the suspect's.
 */
const CONSEQUENTIAL_CODES = new Set([
  'TRAINER_ERR_PEER_LOST', 'TRAINER_ERR_COLLECTIVE_TIMEOUT', 'TRAINER_ERR_CONNECT_TIMEOUT', 'TRAINER_ERR_CONNECT_FAILED',
]);

export function suspectsOf(error: SerializedTrainerError): number[] {
  if (!CONSEQUENTIAL_CODES.has(error.code) || !error.details) return [];
  const { rank, missing } = error.details as { rank?: unknown; missing?: unknown };
  if (Array.isArray(missing)) return missing.filter((r): r is number => Number.isInteger(r));
  return Number.isInteger(rank) ? [rank as number] : [];
}

export type JobOutcome = { ok: true; results: MetricsRecord[] } | { ok: false; failure: WorkerFailure };

interface Member {
  rank: number;
  hello: WorkerHello;
  channel: Channel;
  heartbeat?: Channel;
  lastSeen: number;
  lastStep?: number;
  result?: MetricsRecord;
  closed?: boolean;
  /** This worker reported its own failure: its exit and closed connection are consequences. */
  reportedFailure?: boolean;
}

export const DEFAULT_ATTRIBUTION_GRACE_MS = 3000;

export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1000;
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 30_000;
export const DEFAULT_RENDEZVOUS_TIMEOUT_MS = 300_000;

export class Coordinator extends EventEmitter {
  readonly address: { host: string; port: number };
  private readonly server: ChannelServer;
  private readonly opts: CoordinatorOptions;
  private readonly log: Logger;
  private readonly waiting: { hello: WorkerHello; channel: Channel }[] = [];
  private members: Member[] = [];
  /** Commits sharded checkpoints as the workers' shards come in (when the job saves any). */
  private readonly committer: CheckpointCommitter | undefined;
  private outcome: JobOutcome | undefined;
  /** A failure that blames another rank, held while that rank's own failure may still arrive. */
  private pending: { failure: WorkerFailure; suspects: number[]; timer: NodeJS.Timeout } | undefined;
  private settle!: (o: JobOutcome) => void;
  readonly done: Promise<JobOutcome>;
  private timers: NodeJS.Timeout[] = [];
  private dashboard: Dashboard | undefined;

  private constructor(server: ChannelServer, opts: CoordinatorOptions) {
    super();
    this.server = server;
    this.opts = opts;
    this.log = opts.logger;
    this.address = server.address;
    this.done = new Promise((resolve) => (this.settle = resolve));
    server.on('channel', (ch: Channel) => this.admit(ch));
    server.on('reject', (info: { remoteAddress: string; code: string; reason: string }) =>
      this.log.warn({ remote: info.remoteAddress, code: info.code }, `refused a control connection: ${info.reason}`));
    const interval = opts.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    this.timers.push(setInterval(() => this.beat(), interval));
    const rendezvousMs = opts.rendezvousTimeoutMs ?? DEFAULT_RENDEZVOUS_TIMEOUT_MS;
    this.timers.push(setTimeout(() => this.rendezvousTimedOut(rendezvousMs), rendezvousMs));
    const ckpt = opts.job.checkpoint;
    if (ckpt && ckpt.saveEvery > 0) this.committer = new CheckpointCommitter({ spec: ckpt, job: opts.job, world: opts.world, tokenizer: opts.jobPayload, logger: this.log, onEvent: (e) => this.emit('checkpoint', e) });
  }

  static async start(opts: CoordinatorOptions): Promise<Coordinator> {
    const dash = createDashboard(opts.token, opts.dashboard);
    const server = await ChannelServer.listen({ host: opts.host, port: opts.port, token: opts.token, role: CONTROL_ROLE, logger: opts.logger, onHttpRequest: dash?.sharedPortHandler });
    const c = new Coordinator(server, opts);
    opts.logger.info({ host: c.address.host, port: c.address.port, world: opts.world }, 'coordinator listening');
    c.dashboard = dash?.dashboard;
    if (c.dashboard) await openDashboard(c.dashboard, opts.dashboard || undefined, c, opts.job, opts.world, opts.logger);
    return c;
  }

  /**
   * A local worker process ended (the launcher sees exits the coordinator cannot). A non-zero
   * exit of a worker that had not reported a failure itself is a primary failure of its rank.
   */
  processExited(rank: number, pid: number | undefined, code: number | null, signal: NodeJS.Signals | null): void {
    if (code === 0) return;
    const m = this.members[rank];
    if (m?.reportedFailure) return;
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    this.fail({
      rank, host: m?.hello.host ?? 'localhost', pid: pid ?? m?.hello.pid, lastStep: m?.lastStep,
      error: { code: 'TRAINER_ERR_WORKER_EXITED', message: `worker rank ${rank} (pid ${pid}) ${how}`, hint: 'its last log lines above say why' },
    });
  }

  /** Stops every worker with a reason (Ctrl-C, a launcher-side failure). */
  abort(reason: string, error?: SerializedTrainerError): void {
    this.fail({ rank: undefined, host: 'launcher', pid: process.pid, lastStep: undefined, error: error ?? { code: 'TRAINER_ERR_ABORTED', message: reason } });
  }

  /** After the outcome: waits (bounded) for workers to close their connections themselves. */
  async drain(timeoutMs = 10_000): Promise<void> {
    const open = this.members.filter((m) => !m.closed);
    if (!open.length) return;
    await Promise.race([
      Promise.all(open.map((m) => new Promise<void>((resolve) => m.channel.once('close', () => resolve())))),
      new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref()),
    ]);
  }

  async close(): Promise<void> {
    await this.committer?.close(); // a commit under way completes; unfinished saves are removed
    for (const t of this.timers) clearInterval(t);
    if (this.pending) clearTimeout(this.pending.timer);
    for (const m of this.members) {
      m.channel.close('coordinator closing');
      m.heartbeat?.close('coordinator closing');
    }
    for (const w of this.waiting) w.channel.close('coordinator closing');
    await this.server.close();
    await this.dashboard?.close();
  }

  private admit(ch: Channel): void {
    const kind = (ch.remoteHello as { kind?: unknown }).kind;
    if (kind === 'heartbeat') return this.admitHeartbeat(ch);
    const hello = WorkerHelloSchema.safeParse(ch.remoteHello);
    if (!hello.success) {
      this.log.warn({ remote: ch.remoteAddress }, `dropped a control connection with an invalid hello: ${hello.error.message}`);
      return ch.close('invalid hello');
    }
    if (this.members.length > 0 || this.outcome) {
      this.log.warn({ remote: ch.remoteAddress, host: hello.data.host }, 'refused a worker: the job already has all its workers');
      this.send(ch, { type: 'abort', reason: `this job already has its ${this.opts.world} workers` });
      return ch.close('world full');
    }
    const entry = { hello: hello.data, channel: ch };
    this.waiting.push(entry);
    this.log.info({ host: hello.data.host, pid: hello.data.pid, localRank: hello.data.localRank }, `worker joined (${this.waiting.length}/${this.opts.world})`);
    ch.on('close', () => {
      const i = this.waiting.indexOf(entry);
      if (i >= 0 && this.members.length === 0) {
        this.waiting.splice(i, 1);
        this.log.warn({ host: hello.data.host, pid: hello.data.pid }, 'a worker left before the job started');
      }
    });
    if (this.waiting.length === this.opts.world) this.assignRanks();
  }

  private admitHeartbeat(ch: Channel): void {
    const hello = HeartbeatHelloSchema.safeParse(ch.remoteHello);
    const member = hello.success ? this.members[hello.data.rank] : undefined;
    if (!hello.success || !member || member.hello.pid !== hello.data.pid) {
      this.log.warn({ remote: ch.remoteAddress }, 'dropped a heartbeat connection that matches no worker');
      return ch.close('unknown worker');
    }
    member.heartbeat = ch;
    ch.on('message', () => (member.lastSeen = Date.now()));
  }

  private assignRanks(): void {
    const order = rankOrder(this.waiting.map((w) => w.hello), this.opts.world);
    if (order instanceof TrainerError) {
      for (const w of this.waiting) this.send(w.channel, { type: 'abort', reason: order.message });
      return this.fail({ rank: undefined, host: 'coordinator', pid: process.pid, lastStep: undefined, error: order.toJSON() });
    }
    this.members = order.map((i, rank) => ({ rank, ...this.waiting[i], lastSeen: Date.now() }));
    this.waiting.length = 0;
    const peers = this.members.map((m) => ({ rank: m.rank, host: m.hello.dataHost, port: m.hello.dataPort }));
    for (const m of this.members) {
      m.channel.on('message', (header: Record<string, unknown>) => this.onMessage(m, header));
      m.channel.on('close', () => this.onClose(m));
      m.channel.on('error', (err: Error) => this.log.warn({ rank: m.rank, err: err.message }, 'control channel error'));
      this.send(m.channel, { type: 'assign', rank: m.rank, world: this.opts.world, peers, job: this.opts.job }, this.opts.jobPayload);
    }
    this.log.info({ world: this.opts.world, ranks: this.members.map((m) => `${m.rank}:${m.hello.host}/${m.hello.pid}`) }, 'ranks assigned');
    this.emit('assigned', this.members.map((m) => ({ rank: m.rank, host: m.hello.host, pid: m.hello.pid, device: m.hello.device })));
  }

  private onMessage(m: Member, header: Record<string, unknown>): void {
    m.lastSeen = Date.now();
    const parsed = ToCoordinatorSchema.safeParse(header);
    if (!parsed.success) {
      return this.fail(this.failure(m, { code: 'TRAINER_ERR_PROTOCOL', message: `worker rank ${m.rank} sent an invalid control message: ${parsed.error.message}` }));
    }
    const msg = parsed.data;
    if ('rank' in msg && msg.rank !== m.rank) {
      return this.fail(this.failure(m, { code: 'TRAINER_ERR_PROTOCOL', message: `worker rank ${m.rank} claimed to be rank ${msg.rank}` }));
    }
    switch (msg.type) {
      case 'heartbeat':
      case 'ready':
        return;
      case 'metrics':
        if (typeof msg.record.step === 'number') m.lastStep = msg.record.step;
        this.emit('metrics', msg.rank, msg.record);
        return;
      case 'result':
        m.result = msg.result;
        // Every shard report precedes its rank's result: the job ends once the last commit is done.
        if (this.members.every((x) => x.result)) void (this.committer?.drained() ?? Promise.resolve()).then(() => this.finish());
        return;
      case 'checkpoint-written':
      case 'checkpoint-failed':
        this.committer?.onReport(m.rank, msg);
        return;
      case 'failed':
        m.reportedFailure = true;
        return this.fail(this.failure(m, msg.error));
    }
  }

  private onClose(m: Member): void {
    m.closed = true;
    if (this.outcome || m.reportedFailure) return;
    this.fail(this.failure(m, {
      code: 'TRAINER_ERR_WORKER_LOST',
      message: `lost the connection to worker rank ${m.rank} (host ${m.hello.host}, pid ${m.hello.pid}) before it finished`,
      hint: 'the worker process exited or its host became unreachable; its own log says why',
    }));
  }

  private beat(): void {
    const now = Date.now();
    const timeout = this.opts.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
    for (const m of this.members) {
      this.send(m.channel, { type: 'heartbeat', t: now });
      if (m.heartbeat) this.send(m.heartbeat, { type: 'heartbeat', t: now });
      if (!this.outcome && now - m.lastSeen > timeout) {
        this.fail(this.failure(m, {
          code: 'TRAINER_ERR_HEARTBEAT_TIMEOUT',
          message: `worker rank ${m.rank} on host ${m.hello.host} (pid ${m.hello.pid}) has been silent for ${((now - m.lastSeen) / 1000).toFixed(1)} s`,
          hint: 'the process is hung or its host is unreachable; raise --heartbeat-timeout if steps legitimately take longer',
        }));
      }
    }
  }

  private rendezvousTimedOut(ms: number): void {
    if (this.members.length > 0 || this.outcome) return;
    const joined = this.waiting.map((w) => `${w.hello.host}/${w.hello.pid}`);
    this.fail({
      rank: undefined, host: 'coordinator', pid: process.pid, lastStep: undefined,
      error: {
        code: 'TRAINER_ERR_RENDEZVOUS_TIMEOUT',
        message: `only ${joined.length} of ${this.opts.world} workers joined within ${ms / 1000} s${joined.length ? ` (${joined.join(', ')})` : ''}`,
        hint: 'start the missing workers with --coordinator HOST:PORT and the same token, or check that they can reach this host',
      },
    });
  }

  private finish(): void {
    if (this.outcome) return;
    this.outcome = { ok: true, results: this.members.map((m) => m.result!) };
    for (const m of this.members) this.send(m.channel, { type: 'finish' });
    this.settle(this.outcome);
  }

  private failure(m: Member, error: SerializedTrainerError): WorkerFailure {
    return { rank: m.rank, host: m.hello.host, pid: m.hello.pid, lastStep: m.lastStep, error };
  }

  /**
   * Records a failure. The first root cause decides the outcome and aborts every worker. A
   * failure that blames another rank (a lost peer, a collective timeout) waits a moment for that
   * rank's own failure (its exit, its lost connection, its error); if none comes, the suspect
   * is blamed on the reporter's word.
   */
  private fail(failure: WorkerFailure): void {
    if (this.outcome) return;
    const suspects = suspectsOf(failure.error).filter((r) => r !== failure.rank && this.members[r]);
    if (suspects.length && failure.rank !== undefined) {
      if (this.pending) return;
      const grace = this.opts.attributionGraceMs ?? DEFAULT_ATTRIBUTION_GRACE_MS;
      this.log.warn({ rank: failure.rank, suspects, code: failure.error.code }, `worker rank ${failure.rank} reports a failure of rank ${suspects.join(', ')}: ${failure.error.message}`);
      this.pending = { failure, suspects, timer: setTimeout(() => this.decide(this.blameSuspect(failure, suspects[0])), grace) };
      return;
    }
    this.decide(failure);
  }

  private blameSuspect(report: WorkerFailure, suspect: number): WorkerFailure {
    const s = this.members[suspect];
    return {
      rank: suspect, host: s.hello.host, pid: s.hello.pid, lastStep: s.lastStep,
      error: {
        code: report.error.code,
        message: `worker rank ${suspect} (host ${s.hello.host}, pid ${s.hello.pid}) stopped responding to its peers; rank ${report.rank} reports: ${report.error.message}`,
        hint: 'the process is hung, or the network between the hosts failed; check the log of that rank and its host',
        details: { reportedBy: report.rank, ...(report.error.details ?? {}) },
      },
    };
  }

  private decide(failure: WorkerFailure): void {
    if (this.outcome) return;
    if (this.pending) clearTimeout(this.pending.timer);
    this.pending = undefined;
    this.outcome = { ok: false, failure };
    const who = failure.rank === undefined ? failure.host : `worker rank ${failure.rank} (host ${failure.host}, pid ${failure.pid})`;
    this.log.error({ rank: failure.rank, host: failure.host, lastStep: failure.lastStep, code: failure.error.code }, `${who} failed: ${failure.error.message}`);
    const reason = `${who} failed: ${failure.error.code}: ${failure.error.message}`;
    for (const m of [...this.members, ...this.waiting]) this.send(m.channel, { type: 'abort', reason });
    this.settle(this.outcome);
  }

  private send(ch: Channel, m: ToWorker, payload?: Uint8Array): void {
    try {
      ch.send(message(m), payload);
    } catch {
      // A closed channel is reported by its 'close' event; nothing more to do here.
    }
  }
}

/**
 * Rank order: RANK from the environment when every worker has one (each rank exactly once);
 * otherwise sorted by host, then local rank, then pid, so co-located workers get adjacent ranks.
 * Returns indices into `hellos` in rank order.
 */
export function rankOrder(hellos: readonly WorkerHello[], world: number): number[] | TrainerError {
  const requested = hellos.map((h) => h.requestedRank);
  if (requested.every((r) => r !== undefined)) {
    const byRank = new Map<number, number>();
    for (const [i, r] of requested.entries()) {
      if (r! >= world) return new TrainerError('TRAINER_ERR_RANK_CONFLICT', `a worker asked for RANK=${r} but the world size is ${world}`, { hint: 'RANK must be below WORLD_SIZE' });
      if (byRank.has(r!)) return new TrainerError('TRAINER_ERR_RANK_CONFLICT', `two workers asked for RANK=${r} (${hellos[byRank.get(r!)!].host} and ${hellos[i].host})`, { hint: 'give every worker a distinct RANK, or none' });
      byRank.set(r!, i);
    }
    return Array.from({ length: world }, (_, r) => byRank.get(r)!);
  }
  return hellos
    .map((h, i) => ({ h, i }))
    .sort((a, b) => (a.h.host < b.h.host ? -1 : a.h.host > b.h.host ? 1 : a.h.localRank - b.h.localRank || a.h.pid - b.h.pid))
    .map((x) => x.i);
}
