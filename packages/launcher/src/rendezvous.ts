import type { Channel } from '@trainer/comm';
import { message, type ToWorker, type WorkerHello } from './control-protocol.js';
import type { WorkerFailure } from './failure-attribution.js';
import type { JobSpec } from './job-spec.js';
import type { Logger } from './logging.js';
import type { ElasticRendezvous } from './supervision/elastic.js';

/**
 * The workers waiting for a round's ranks, and the rules of who may wait: a worker joins the
 * round that is gathering, or (while a failed round is being restarted) the next one; a worker
 * started for another round (its TRAINER_ROUND) is a straggler and is turned away, and so is
 * anyone once the round runs. When `world` have joined, the coordinator assigns ranks; when the
 * round's timeout passes first, the round goes on elastically with the largest world the
 * joined workers can form (--min-nodes), or fails naming who did join.
 */
export interface Joiner {
  hello: WorkerHello;
  channel: Channel;
  /** The round it waits for. */
  forRound: number;
}

/** What the rendezvous needs to know and do from its coordinator. */
export interface RendezvousHost {
  readonly round: number;
  readonly world: number;
  readonly job: JobSpec;
  /** gathering: waiting for this round's workers; running: ranks assigned; restarting: failed, the next round is coming; over. */
  phase(): 'gathering' | 'running' | 'restarting' | 'over';
  /** Whether a failed round would be followed by another (restarts are enabled and not used up). */
  restartable(): boolean;
  assign(joiners: Joiner[], world: number, job: JobSpec): void;
  fail(failure: WorkerFailure): void;
  event(e: { kind: string; title: string; detail?: string }): void;
}

export class Rendezvous {
  private readonly joiners: Joiner[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly host: RendezvousHost, private readonly o: { timeoutMs: number; elastic?: ElasticRendezvous; logger: Logger }) {}

  /** Workers waiting (for this round or, while restarting, the next). */
  get waiting(): readonly Joiner[] {
    return this.joiners;
  }

  /**
   * A worker said hello: it waits for its round, or is turned away (told why, then closed). While
   * a round runs and restarts are possible, a newcomer waits for the next round: a scheduler that
   * restarts a failed worker quickly may bring it back before the coordinator has even decided
   * that the round failed. If the round then finishes, the newcomer is told so (release).
   */
  join(hello: WorkerHello, ch: Channel): void {
    const phase = this.host.phase();
    const forRound = phase === 'gathering' ? this.host.round : this.host.round + 1;
    const stray = hello.round !== undefined && hello.round !== forRound;
    if (stray || (phase === 'running' && !this.host.restartable()) || phase === 'over') {
      const reason = stray ? `it was started for round ${hello.round}, and this is round ${forRound}` : `this job already has its ${this.host.world} workers`;
      this.o.logger.warn({ remote: ch.remoteAddress, host: hello.host }, `refused a worker: ${stray ? reason : 'the job already has all its workers'}`);
      send(ch, { type: 'abort', reason });
      return ch.close('world full');
    }
    const entry: Joiner = { hello, channel: ch, forRound };
    this.joiners.push(entry);
    this.o.logger.info({ host: hello.host, pid: hello.pid, localRank: hello.localRank, round: forRound }, `worker joined (${this.joiners.filter((w) => w.forRound === forRound).length}/${this.host.world})`);
    ch.on('close', () => {
      const i = this.joiners.indexOf(entry);
      if (i < 0) return;
      this.joiners.splice(i, 1);
      this.o.logger.warn({ host: hello.host, pid: hello.pid }, 'a worker left before the job started');
    });
    if (phase === 'gathering' && this.joiners.length === this.host.world) this.complete(this.host.world, this.host.job);
  }

  /** The host's round (new, or the first) is gathering: keep the workers waiting for it, start its timeout. */
  gather(): void {
    for (const w of this.joiners.filter((x) => x.forRound !== this.host.round)) w.channel.close('round over');
    this.joiners.splice(0, this.joiners.length, ...this.joiners.filter((x) => x.forRound === this.host.round));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.timedOut(), this.o.timeoutMs);
    this.timer.unref(); // the listening server keeps the process alive while it matters
    if (this.joiners.length >= this.host.world) this.complete(this.host.world, this.host.job);
  }

  /**
   * Tells the workers waiting for `round` to stop (it failed before their ranks were assigned).
   * Workers already waiting for the round after it stay: they are the next round's.
   */
  abortRound(round: number, reason: string): void {
    for (const w of this.joiners) if (w.forRound === round) send(w.channel, { type: 'abort', reason });
  }

  /** The job is over: workers waiting for a next round are told so and let go. */
  release(reason: string): void {
    for (const w of this.joiners.splice(0)) {
      send(w.channel, { type: 'abort', reason });
      w.channel.close('job over');
    }
  }

  close(): void {
    clearTimeout(this.timer);
    for (const w of this.joiners) w.channel.close('coordinator closing');
  }

  /** Hands the first `world` joiners to the coordinator; the rest are not needed this round. */
  private complete(world: number, job: JobSpec): void {
    clearTimeout(this.timer);
    for (const w of this.joiners.splice(world)) {
      send(w.channel, { type: 'abort', reason: `not needed: round ${this.host.round} runs on ${world} workers` });
      w.channel.close('not needed');
    }
    const joiners = this.joiners.splice(0);
    this.host.assign(joiners, world, job);
  }

  private timedOut(): void {
    if (this.host.phase() !== 'gathering') return;
    const ms = this.o.timeoutMs;
    const joined = this.joiners.map((w) => `${w.hello.host}/${w.hello.pid}`);
    const { elastic } = this.o;
    const shrunk = elastic && joined.length >= elastic.minWorld ? elastic.shrink(joined.length, this.host.job) : undefined;
    if (shrunk) {
      const what = `only ${joined.length} of ${this.host.world} workers joined round ${this.host.round} within ${ms / 1000} s; continuing on ${shrunk.world} (at least ${elastic!.minWorld}: --min-nodes)`;
      this.o.logger.warn({ round: this.host.round, joined: joined.length, world: shrunk.world }, what);
      this.host.event({ kind: 'elastic', title: `continuing on ${shrunk.world} of ${this.host.world} workers`, detail: what });
      return this.complete(shrunk.world, shrunk.job);
    }
    this.host.fail({
      rank: undefined, host: 'coordinator', pid: process.pid, lastStep: undefined,
      error: {
        code: 'TRAINER_ERR_RENDEZVOUS_TIMEOUT',
        message: `only ${joined.length} of ${this.host.world} workers joined within ${ms / 1000} s${joined.length ? ` (${joined.join(', ')})` : ''}${elastic ? `, fewer than --min-nodes allows (${elastic.minWorld})` : ''}`,
        hint: 'start the missing workers with --coordinator HOST:PORT and the same token, or check that they can reach this host',
      },
    });
  }
}

function send(ch: Channel, m: ToWorker): void {
  try {
    ch.send(message(m));
  } catch {
    // closed: nothing more to say
  }
}
