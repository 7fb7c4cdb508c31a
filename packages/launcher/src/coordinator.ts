import { EventEmitter } from 'node:events';
import { ChannelServer, type Channel } from '@trainer/comm';
import { TrainerError, type SerializedTrainerError } from '@trainer/errors';
import {
  CONTROL_LIMITS, CONTROL_ROLE, HeartbeatHelloSchema, ToCoordinatorSchema, WorkerHelloSchema, message,
  type MetricsRecord, type ToWorker, type WorkerHello,
} from './control-protocol.js';
import type { JobSpec } from './job-spec.js';
import type { Logger } from './logging.js';
import { createDashboard, openDashboard } from './run-dashboard.js';
import type { Dashboard } from '@trainer/dashboard';
import { CheckpointCommitter } from './checkpointing/committer.js';
import { rankOrder } from './rank-order.js';
import { Rendezvous, type Joiner } from './rendezvous.js';
import {
  DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_HEARTBEAT_TIMEOUT_MS, DEFAULT_RENDEZVOUS_TIMEOUT_MS, EXIT_REPORT_GRACE_MS, type CoordinatorOptions,
} from './coordinator-options.js';
import { blameSuspect, DEFAULT_ATTRIBUTION_GRACE_MS, suspectsOf, type JobOutcome, type WorkerFailure } from './failure-attribution.js';

export { rankOrder } from './rank-order.js';
export * from './coordinator-options.js';
export { suspectsOf, DEFAULT_ATTRIBUTION_GRACE_MS, type JobOutcome, type WorkerFailure } from './failure-attribution.js';

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
 *
 * Rounds: with a restart supervisor (supervision/restart-supervisor.ts) a failed round does not
 * end the job. The coordinator keeps listening, and `nextRound` starts rendezvous round k+1:
 * new worker processes (respawned by the local launcher or the per-host agents, or restarted by
 * a scheduler) join, get ranks and the job again, resumed from the latest checkpoint.
 */
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

export class Coordinator extends EventEmitter {
  readonly address: { host: string; port: number };
  private readonly server: ChannelServer;
  private readonly opts: CoordinatorOptions;
  private readonly log: Logger;
  /** Workers waiting for a round's ranks (rendezvous.ts). */
  private readonly rendezvous: Rendezvous;
  private members: Member[] = [];
  /** Commits sharded checkpoints as the workers' shards come in (when the job saves any); one per round. */
  private committer: CheckpointCommitter | undefined;
  /** Rendezvous round: 0 for the first workers, +1 for every restart. */
  private roundNumber = 0;
  /** This round's job and world (a restart resumes from a checkpoint; an elastic one may have fewer workers). */
  private job: JobSpec;
  private world: number;
  private lastBeat = Date.now();
  /** Set by a restart supervisor: failed rounds are handed to it instead of ending the job. */
  private restartHandler: ((failure: WorkerFailure) => void) | undefined;
  /** Whether the supervisor has restarts left (a newcomer may wait for the next round only then). */
  private restartsLeft: () => boolean = () => false;
  private aborting = false;
  private ended = false;
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
    this.job = opts.job;
    this.world = opts.world;
    const interval = opts.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    this.timers.push(setInterval(() => this.beat(), interval));
    const self = this; // eslint-disable-line @typescript-eslint/no-this-alias -- live values for the rendezvous
    this.rendezvous = new Rendezvous({
      get round() { return self.roundNumber; },
      get world() { return self.world; },
      get job() { return self.job; },
      phase: () => this.phase(),
      restartable: () => this.restartHandler !== undefined && this.restartsLeft() && !this.aborting,
      assign: (joiners, world, job) => this.assignRanks(joiners, world, job),
      fail: (failure) => this.fail(failure),
      event: (e) => this.emit('event', e),
    }, { timeoutMs: opts.rendezvousTimeoutMs ?? DEFAULT_RENDEZVOUS_TIMEOUT_MS, elastic: opts.elastic, logger: this.log });
    this.rendezvous.gather();
  }

  /** Where the job is: gathering a round's workers, running it, restarting after a failed round, or over. */
  private phase(): 'gathering' | 'running' | 'restarting' | 'over' {
    if (this.ended) return 'over';
    if (this.outcome) return !this.outcome.ok && this.restartHandler && !this.aborting ? 'restarting' : 'over';
    return this.members.length > 0 ? 'running' : 'gathering';
  }

  /** The current rendezvous round (0 until the first restart). */
  get round(): number {
    return this.roundNumber;
  }

  /** True once the job's outcome is final (`done` has settled). */
  get isOver(): boolean {
    return this.ended;
  }

  /**
   * Hands every failed round to `handler` (a restart supervisor), which calls nextRound or
   * conclude; `restartsLeft` says whether a next round is still possible.
   */
  superviseRestarts(handler: (failure: WorkerFailure) => void, restartsLeft: () => boolean): void {
    this.restartHandler = handler;
    this.restartsLeft = restartsLeft;
  }

  /**
   * Starts round `round + 1` for `world` workers running `job`, after a failed round: its members
   * are forgotten (their channels closed, which also stops their heartbeat threads), the
   * rendezvous starts over with its timeout, and workers that joined while the supervisor
   * decided are kept for it.
   */
  nextRound(job: JobSpec, world: number): void {
    if (!this.outcome || this.outcome.ok || this.ended) throw new Error('nextRound: the current round has not failed, or the job is over');
    for (const m of this.members) {
      m.channel.close('round over');
      m.heartbeat?.close('round over');
    }
    this.roundNumber += 1;
    this.job = job;
    this.world = world;
    this.members = [];
    this.outcome = undefined;
    this.committer = undefined; // the supervisor settled it (settleCheckpoints)
    this.log.info({ round: this.roundNumber, world }, `round ${this.roundNumber}: waiting for ${world} worker(s)`);
    this.emit('round', { round: this.roundNumber, world, job });
    this.rendezvous.gather();
  }

  /** Ends the job with this outcome (the supervisor stops restarting). */
  conclude(outcome: JobOutcome): void {
    if (this.ended) return;
    this.ended = true;
    this.settle(outcome);
  }

  /** Lets a commit under way finish and removes the folders of saves that can no longer complete. */
  async settleCheckpoints(): Promise<void> {
    await this.committer?.close();
  }

  /**
   * A worker process ended on a host whose agent reported it: its rank if it had one, else (it
   * died before the ranks were assigned) a failure of the rendezvous naming the host.
   */
  processExitedOn(host: string, pid: number, localRank: number, code: number | null, signal: NodeJS.Signals | null, round: number): void {
    if (code === 0 || round !== this.roundNumber) return;
    const m = this.members.find((x) => x.hello.host === host && x.hello.pid === pid);
    if (m) return this.processExited(m.rank, pid, code, signal, round);
    if (this.members.length > 0) return;
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    this.fail({
      rank: undefined, host, pid, lastStep: undefined,
      error: { code: 'TRAINER_ERR_WORKER_EXITED', message: `worker local rank ${localRank} on host ${host} (pid ${pid}) ${how} before the ranks were assigned`, hint: 'its last log lines above say why' },
    });
  }

  static async start(opts: CoordinatorOptions): Promise<Coordinator> {
    const dash = createDashboard(opts.token, opts.dashboard);
    const server = await ChannelServer.listen({ host: opts.host, port: opts.port, token: opts.token, role: CONTROL_ROLE, limits: CONTROL_LIMITS, logger: opts.logger, onHttpRequest: dash?.sharedPortHandler, tls: opts.tls });
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
  processExited(rank: number, pid: number | undefined, code: number | null, signal: NodeJS.Signals | null, round = this.roundNumber): void {
    if (code === 0 || round !== this.roundNumber) return;
    const m = this.members[rank];
    if (m?.reportedFailure || (m && pid !== undefined && m.hello.pid !== pid)) return;
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    this.fail({
      rank, host: m?.hello.host ?? 'localhost', pid: pid ?? m?.hello.pid, lastStep: m?.lastStep,
      error: { code: 'TRAINER_ERR_WORKER_EXITED', message: `worker rank ${rank} (pid ${pid}) ${how}`, hint: 'its last log lines above say why' },
    });
  }

  /** Stops every worker with a reason (Ctrl-C, a launcher-side failure). */
  abort(reason: string, error?: SerializedTrainerError): void {
    const failure: WorkerFailure = { rank: undefined, host: 'launcher', pid: process.pid, lastStep: undefined, error: error ?? { code: 'TRAINER_ERR_ABORTED', message: reason } };
    this.aborting = true;
    // Between rounds nothing runs: the job ends here, and the supervisor does not restart it.
    if (this.outcome && !this.outcome.ok) return this.conclude({ ok: false, failure });
    this.fail(failure);
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
    this.rendezvous.close();
    await this.server.close();
    await this.dashboard?.close();
  }

  private admit(ch: Channel): void {
    const kind = (ch.remoteHello as { kind?: unknown }).kind;
    if (kind === 'heartbeat') return this.admitHeartbeat(ch);
    if (kind === 'agent') {
      // Per-host agents (supervision/agent-pool.ts) start and stop the workers of each round.
      if (this.listenerCount('agent') > 0) return void this.emit('agent', ch);
      this.log.warn({ remote: ch.remoteAddress }, 'refused an agent: this coordinator was not started with agents');
      return ch.close('no agents expected');
    }
    const hello = WorkerHelloSchema.safeParse(ch.remoteHello);
    if (!hello.success) {
      this.log.warn({ remote: ch.remoteAddress }, `dropped a control connection with an invalid hello: ${hello.error.message}`);
      return ch.close('invalid hello');
    }
    this.rendezvous.join(hello.data, ch);
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

  /** Ranks for the round's workers (`world` of them; an elastic round's job is resized), and the job. */
  private assignRanks(joiners: Joiner[], world: number, job: JobSpec): void {
    // An elastic round has fewer workers than the ranks the environment gave them: ranks are reassigned.
    const order = rankOrder(joiners.map((w) => w.hello), world, world < this.opts.world);
    if (order instanceof TrainerError) {
      for (const w of joiners) this.send(w.channel, { type: 'abort', reason: order.message });
      return this.fail({ rank: undefined, host: 'coordinator', pid: process.pid, lastStep: undefined, error: order.toJSON() });
    }
    this.world = world;
    this.job = job;
    this.members = order.map((i, rank) => ({ rank, hello: joiners[i].hello, channel: joiners[i].channel, lastSeen: Date.now() }));
    const ckpt = job.checkpoint;
    if (ckpt && ckpt.saveEvery > 0) this.committer = new CheckpointCommitter({ spec: ckpt, job, world, tokenizer: this.opts.jobPayload, logger: this.log, onEvent: (e) => this.emit('checkpoint', e) });
    const peers = this.members.map((m) => ({ rank: m.rank, host: m.hello.dataHost, port: m.hello.dataPort }));
    for (const m of this.members) {
      m.channel.on('message', (header: Record<string, unknown>) => this.onMessage(m, header));
      m.channel.on('close', () => this.onClose(m));
      m.channel.on('error', (err: Error) => this.log.warn({ rank: m.rank, err: err.message }, 'control channel error'));
      this.send(m.channel, { type: 'assign', rank: m.rank, world, round: this.roundNumber, peers, job }, this.opts.jobPayload);
    }
    this.log.info({ world, round: this.roundNumber, ranks: this.members.map((m) => `${m.rank}:${m.hello.host}/${m.hello.pid}`) }, 'ranks assigned');
    this.emit('assigned', this.members.map((m) => ({ rank: m.rank, host: m.hello.host, pid: m.hello.pid, device: m.hello.device })), { round: this.roundNumber, world });
  }

  private onMessage(m: Member, header: Record<string, unknown>): void {
    if (!this.members.includes(m)) return; // a member of a round that is over
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
    if (this.outcome || m.reportedFailure || !this.members.includes(m)) return;
    const lost = this.failure(m, {
      code: 'TRAINER_ERR_WORKER_LOST',
      message: `lost the connection to worker rank ${m.rank} (host ${m.hello.host}, pid ${m.hello.pid}) before it finished`,
      hint: 'the worker process exited or its host became unreachable; its own log says why',
    });
    // The launcher or the host's agent reports how the process ended (exit code, signal) a moment later: the more precise cause wins.
    setTimeout(() => this.members.includes(m) && this.fail(lost), EXIT_REPORT_GRACE_MS).unref();
  }

  private beat(): void {
    const now = Date.now();
    const timeout = this.opts.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
    // When this process itself stalled (a long synchronous task, a swapping machine) the silence
    // was ours: skip one check, so heartbeats queued meanwhile are read first.
    const stalled = now - this.lastBeat > 3 * (this.opts.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS);
    this.lastBeat = now;
    for (const m of this.members) {
      this.send(m.channel, { type: 'heartbeat', t: now });
      if (m.heartbeat) this.send(m.heartbeat, { type: 'heartbeat', t: now });
      if (!this.outcome && !stalled && now - m.lastSeen > timeout) {
        this.fail(this.failure(m, {
          code: 'TRAINER_ERR_HEARTBEAT_TIMEOUT',
          message: `worker rank ${m.rank} on host ${m.hello.host} (pid ${m.hello.pid}) has been silent for ${((now - m.lastSeen) / 1000).toFixed(1)} s`,
          hint: 'the process is hung or its host is unreachable; raise --heartbeat-timeout if steps legitimately take longer',
        }));
      }
    }
  }

  private finish(): void {
    if (this.outcome) return;
    this.outcome = { ok: true, results: this.members.map((m) => m.result!) };
    for (const m of this.members) this.send(m.channel, { type: 'finish' });
    this.rendezvous.release('the job finished: no further round');
    this.conclude(this.outcome);
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
      this.pending = { failure, suspects, timer: setTimeout(() => {
        const s = this.members[suspects[0]];
        this.decide(blameSuspect(failure, { rank: s.rank, host: s.hello.host, pid: s.hello.pid, lastStep: s.lastStep }));
      }, grace) };
      return;
    }
    this.decide(failure);
  }

  private decide(failure: WorkerFailure): void {
    if (this.outcome) return;
    if (this.pending) clearTimeout(this.pending.timer);
    this.pending = undefined;
    this.outcome = { ok: false, failure };
    const who = failure.rank === undefined ? failure.host : `worker rank ${failure.rank} (host ${failure.host}, pid ${failure.pid})`;
    this.log.error({ rank: failure.rank, host: failure.host, lastStep: failure.lastStep, code: failure.error.code }, `${who} failed: ${failure.error.message}`);
    const reason = `${who} failed: ${failure.error.code}: ${failure.error.message}`;
    for (const m of this.members) this.send(m.channel, { type: 'abort', reason });
    this.rendezvous.abortRound(this.roundNumber, reason);
    // With a restart supervisor the failed round is its to handle: restart, or conclude the job.
    if (this.restartHandler && !this.aborting) return this.restartHandler(failure);
    this.conclude(this.outcome);
  }

  private send(ch: Channel, m: ToWorker, payload?: Uint8Array): void {
    try {
      ch.send(message(m), payload);
    } catch {
      // A closed channel is reported by its 'close' event; nothing more to do here.
    }
  }
}
