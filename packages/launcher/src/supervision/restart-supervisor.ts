import type { CheckpointEvent } from '../checkpointing/committer.js';
import type { MetricsRecord } from '../control-protocol.js';
import type { Coordinator } from '../coordinator.js';
import type { JobOutcome, WorkerFailure } from '../failure-attribution.js';
import type { JobSpec } from '../job-spec.js';
import type { Logger } from '../logging.js';
import { decideRestart, lostSteps, type RestartDecision, type RoundRecord } from './restart-policy.js';
import { chooseResumePoint } from './resume-point.js';

/**
 * Restarts in torchrun's model, as rendezvous rounds: when a round fails (a worker exits, falls
 * silent, times out or desynchronizes a collective; the coordinator has named the rank and
 * aborted the others), the supervisor stops what is left of the round's workers, lets the
 * checkpoint commits under way finish, and starts round k+1 on the same coordinator: the whole
 * group again, resumed from the newest checkpoint this launch committed (or step 0 when there is
 * none), up to --max-restarts. A restart that cannot succeed stops the run (restart-policy.ts).
 */

/** How the workers of a round come to life: local children, or per-host agents. */
export interface RoundLauncher {
  startRound(round: number, world: number): void;
  /** Stops whatever is left of the current round's workers (ask, grace period, kill). */
  stopRound(): Promise<void>;
}

export interface RestartSupervisorOptions {
  /** Restarts allowed (torchrun's --max-restarts); 0: the first failure ends the run. */
  maxRestarts: number;
  /** The job and world every restart asks for again (an elastic round may get fewer). */
  job: JobSpec;
  world: number;
  /** Absent: workers are restarted by someone else (a scheduler) and rejoin on their own. */
  launcher?: RoundLauncher;
  logger: Logger;
}

/** summary.json's account of the restarts. */
export interface RestartSummary {
  max_restarts: number;
  restarts: number;
  /** Steps trained again after failures, over all restarts. */
  lost_steps: number;
  rounds: Record<string, unknown>[];
  /** Why the run stopped instead of restarting (a restart could not succeed, or none were left). */
  stopped?: { code: string; message: string; hint: string };
}

/** Exit codes of a launch. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
/** The run stopped because restarting could not succeed (configuration, a repeating early failure, too few workers back). */
export const EXIT_NOT_RESTARTABLE = 3;

export class RestartSupervisor {
  readonly history: RoundRecord[] = [];
  private readonly committed: { step: number; path: string }[] = [];
  private stopped: Extract<RestartDecision, { restart: false }> | undefined;

  constructor(private readonly coordinator: Coordinator, private readonly o: RestartSupervisorOptions) {
    const resume = o.job.checkpoint?.resume;
    this.history.push({ round: 0, world: o.world, startStep: resume?.step ?? 0, resumedFrom: resume?.dir ?? null, startedAt: Date.now() });
    coordinator.superviseRestarts((failure) => void this.onRoundFailed(failure), () => this.history.length - 1 < o.maxRestarts && !this.stopped);
    coordinator.on('assigned', (_workers: unknown, info?: { round: number; world: number }) => {
      const rec = this.current;
      rec.assignedAt = Date.now();
      if (info && info.round === rec.round) rec.world = info.world;
    });
    coordinator.on('metrics', (_rank: number, record: MetricsRecord) => this.onMetrics(record));
    coordinator.on('checkpoint', (e: CheckpointEvent) => {
      if (e.kind !== 'committed') return;
      this.committed.push({ step: e.step, path: e.path });
      for (const name of e.pruned) {
        const i = this.committed.findIndex((c) => c.path.endsWith(`/${name}`));
        if (i >= 0) this.committed.splice(i, 1);
      }
    });
  }

  private get current(): RoundRecord {
    return this.history[this.history.length - 1];
  }

  /** 0 finished, 3 stopped because a restart could not succeed, 1 any other failure. */
  exitCode(outcome: JobOutcome): number {
    if (outcome.ok) return EXIT_OK;
    return this.stopped?.futile ? EXIT_NOT_RESTARTABLE : EXIT_FAILED;
  }

  summary(): RestartSummary {
    let lost = 0;
    const rounds = this.history.map((r, i) => {
      const next = this.history[i + 1];
      const lostHere = r.failure && next ? lostSteps(r, next.startStep) : undefined;
      lost += lostHere ?? 0;
      return {
        round: r.round, world: r.world, start_step: r.startStep, resumed_from: r.resumedFrom, last_step: r.lastStep ?? null,
        ...(r.failure ? {
          failure: { rank: r.failure.rank ?? null, host: r.failure.host, last_step: r.failure.lastStep ?? null, code: r.failure.error.code, message: r.failure.error.message },
          failed_at: r.failedAt,
        } : {}),
        ...(lostHere !== undefined ? { lost_steps: lostHere } : {}),
        // From the failure's detection to the next round's ranks, and to its first completed step.
        ...(next?.assignedAt && r.failedAt ? { restart_ms: next.assignedAt - r.failedAt } : {}),
        ...(next?.firstStepAt && r.failedAt ? { recovery_ms: next.firstStepAt - r.failedAt } : {}),
      };
    });
    return {
      max_restarts: this.o.maxRestarts, restarts: this.history.length - 1, lost_steps: lost, rounds,
      ...(this.stopped && this.o.maxRestarts > 0 ? { stopped: { code: this.stopped.code, message: this.stopped.message, hint: this.stopped.hint } } : {}),
    };
  }

  private onMetrics(record: MetricsRecord): void {
    // A training step's record (every rank sends one per step); resume and checkpoint reports are not steps.
    if (typeof record.step !== 'number' || typeof record.num_tensors !== 'number') return;
    const rec = this.current;
    if (rec.failure) return; // late reports of a failed round
    rec.lastStep = Math.max(rec.lastStep ?? -1, record.step);
    if (rec.firstStepAt === undefined) {
      rec.firstStepAt = Date.now();
      const prev = this.history[this.history.length - 2];
      if (prev?.failedAt) this.o.logger.info({ round: rec.round, step: record.step, recoveryMs: rec.firstStepAt - prev.failedAt }, `recovered: round ${rec.round} completed step ${record.step + 1}, ${((rec.firstStepAt - prev.failedAt) / 1000).toFixed(1)} s after the failure`);
    }
  }

  private async onRoundFailed(failure: WorkerFailure): Promise<void> {
    const log = this.o.logger;
    const failed = this.current;
    failed.failure = failure;
    failed.failedAt = Date.now();
    const decision = decideRestart(this.history, this.o.maxRestarts);
    try {
      await this.o.launcher?.stopRound();
      await this.coordinator.settleCheckpoints();
      if (!decision.restart) {
        this.stopped = decision;
        if (this.o.maxRestarts > 0) log.error({ code: decision.code }, `not restarting: ${decision.code}: ${decision.message}`);
        return this.coordinator.conclude({ ok: false, failure });
      }
      const resume = await chooseResumePoint(this.o.job.checkpoint, this.committed, this.o.job.checkpoint?.resume ?? null);
      for (const s of resume?.skipped ?? []) log.warn(`restart: skipping checkpoint ${s.path}, which does not verify: ${s.problem}`);
      if (this.coordinator.isOver) return; // stopped (Ctrl-C) while this restart was prepared
      const step = resume?.step ?? 0;
      const job: JobSpec = resume ? { ...this.o.job, checkpoint: resume.spec } : this.o.job;
      const lost = lostSteps(failed, step);
      const who = failure.rank === undefined ? failure.host : `worker rank ${failure.rank} (host ${failure.host})`;
      const at = failed.lastStep === undefined ? 'before completing a step' : `after step ${failed.lastStep + 1}`;
      const from = resume?.spec.resume ? `checkpoint ${resume.spec.resume.dir} (step ${step})` : 'step 0: no checkpoint yet';
      const round = failed.round + 1;
      log.warn({ round, restart: round, maxRestarts: this.o.maxRestarts, resumeStep: step, lostSteps: lost, code: failure.error.code },
        `restart ${round} of ${this.o.maxRestarts}: ${who} failed ${at} (${failure.error.code}); restarting all ${this.o.world} workers from ${from}; ${lost} step(s) to train again`);
      this.coordinator.emit('event', { kind: 'restart', step, title: `restart ${round}: from step ${step}`, detail: `${who} failed ${at}: ${failure.error.code}: ${failure.error.message}` });
      this.history.push({ round, world: this.o.world, startStep: step, resumedFrom: resume?.spec.resume?.dir ?? null, startedAt: Date.now() });
      this.coordinator.nextRound(job, this.o.world);
      this.o.launcher?.startRound(round, this.o.world);
    } catch (err) {
      log.error({ err: err instanceof Error ? err.message : String(err) }, 'restart failed');
      this.coordinator.conclude({ ok: false, failure });
    }
  }
}
