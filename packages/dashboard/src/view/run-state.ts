/**
 * The state of one run as the dashboard sees it, rebuilt from a stream of patches. The same code
 * runs in the coordinator (for new viewers' snapshots, /metrics and reports) and in the browser
 * (applying the patches it receives), so both always agree. Browser-safe: no Node imports.
 *
 * A patch is one of: the run's description, the parallel layout, one metrics record of one rank
 * (as the worker reported it), an event (checkpoint, restart, failure), or the run's status.
 */
export const RUN_STATE_FORMAT = 'trainer-run-state';
export const RUN_STATE_VERSION = 1;

/** Step points kept for the curves; beyond it, every other step is dropped (stride doubles). */
export const MAX_STEP_POINTS = 4000;

export interface RunInfo {
  /** 'train' or 'finetune'. */
  kind: string;
  model: string;
  world: number;
  steps: number;
  globalBatch: number;
  seqLen: number;
  /** Parallel layout sizes: data-parallel, tensor-parallel, pipeline stages; the ZeRO stage. */
  dp: number;
  tp: number;
  pp: number;
  zero: number;
  /** ms since the epoch. */
  startedAt: number;
}

/** One optimizer step: rank 0's training figures, and the traffic of every rank that reported it. */
export interface StepPoint {
  step: number;
  time: number;
  loss?: number;
  lr?: number;
  gradNorm?: number;
  valLoss?: number;
  valPerplexity?: number;
  tokensPerS?: number;
  stepMs?: number;
  /** Bytes every rank sent in this step, summed. */
  bytesSent: number;
  ranksReported: number;
  /**
   * All-reduce bus bandwidth (GB/s, measured inside the collectives) of the ranks that reported
   * one this step: the sum (for the mean), the slowest rank's, and how many reported.
   */
  busbw?: { sum: number; min: number; ranks: number };
}

/** A rank's latest figures (memory in bytes, by the categories the engine measures). */
export interface RankFigures {
  rank: number;
  step: number;
  paramsBytes: number;
  gradsBytes: number;
  optimizerBytes: number;
  modelStateBytes: number;
  /** Peak bytes the compute backend held during the step (activations included). */
  peakBytes: number;
  backendBytes: number;
  bytesSentStep: number;
  bytesSentTotal: number;
  /** Bytes copied between host memory and the compute device in the latest step, each way, and since the run started (both ways). */
  hostToDeviceStep?: number;
  deviceToHostStep?: number;
  hostDeviceTotal: number;
  /** Bytes sent per second of step time (rank 0's step time of the same step): an average over the whole step, compute included. */
  sendRate?: number;
  /** Time in which at least one collective was in flight, in the latest step and since the run started (ms). */
  collectiveMsStep?: number;
  collectiveMsTotal?: number;
  /** Bus bandwidth of the latest step's collectives (GB/s): bus bytes over the time they were in flight. */
  busbwGBs?: number;
}

/**
 * Where each rank sits in the parallel layout: its coordinate on every axis (dp, tp, pp, ...) and
 * what it holds, in words ("ZeRO-2 shard 1/2: optimizer state, gradients"). New parallel modes
 * add axes and lines; the view shows whatever is there.
 */
export interface RankPlacement {
  rank: number;
  host: string;
  pid: number;
  device: string;
  coords: Record<string, number>;
  holds: string[];
}

export interface Layout {
  axes: Record<string, number>;
  ranks: RankPlacement[];
}

/** Something that happened: a checkpoint committed or failed, a restart (and its cause), a failure. */
export interface RunEvent {
  time: number;
  /** 'checkpoint', 'checkpoint-failed', 'restart', 'failure', 'finished', or any other word. */
  kind: string;
  step?: number;
  title: string;
  detail?: string;
}

export interface RunStatus {
  state: 'waiting' | 'running' | 'finished' | 'failed';
  message?: string;
}

export type MetricValue = number | string | null | number[];

export type RunPatch =
  | { kind: 'info'; info: RunInfo }
  | { kind: 'layout'; layout: Layout }
  | { kind: 'metrics'; rank: number; time: number; record: Record<string, MetricValue> }
  | { kind: 'event'; event: RunEvent }
  | { kind: 'status'; status: RunStatus };

export interface RunStateJSON {
  format: typeof RUN_STATE_FORMAT;
  version: number;
  info: RunInfo | null;
  layout: Layout | null;
  points: StepPoint[];
  stride: number;
  ranks: RankFigures[];
  events: RunEvent[];
  status: RunStatus;
  lastUpdate: number;
}

const num = (v: MetricValue | undefined): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

export class RunState {
  info: RunInfo | null = null;
  layout: Layout | null = null;
  /** By step; a step reported again (after a restart) replaces the earlier figures. */
  readonly points = new Map<number, StepPoint>();
  /** Only steps that are multiples of this are kept (1 until MAX_STEP_POINTS is reached). */
  stride = 1;
  readonly ranks = new Map<number, RankFigures>();
  readonly events: RunEvent[] = [];
  status: RunStatus = { state: 'waiting' };
  /** Time (ms since the epoch) of the newest patch. */
  lastUpdate = 0;

  apply(p: RunPatch): void {
    switch (p.kind) {
      case 'info':
        this.info = p.info;
        return;
      case 'layout':
        this.layout = p.layout;
        if (this.status.state === 'waiting') this.status = { state: 'running' };
        return;
      case 'metrics':
        this.lastUpdate = Math.max(this.lastUpdate, p.time);
        return this.applyMetrics(p.rank, p.time, p.record);
      case 'event':
        this.lastUpdate = Math.max(this.lastUpdate, p.event.time);
        this.events.push(p.event);
        // A restart resumes at its step: the steps after it are trained (and reported) again.
        if (p.event.kind === 'restart' && p.event.step !== undefined) {
          for (const step of [...this.points.keys()]) if (step >= p.event.step) this.points.delete(step);
        }
        return;
      case 'status':
        this.status = p.status;
        return;
    }
  }

  /** Steps in order. */
  sortedPoints(): StepPoint[] {
    return [...this.points.values()].sort((a, b) => a.step - b.step);
  }

  /** The newest step with a training loss. */
  latest(): StepPoint | undefined {
    let best: StepPoint | undefined;
    for (const p of this.points.values()) if (p.loss !== undefined && (!best || p.step > best.step)) best = p;
    return best;
  }

  /** The newest step with a validation loss. */
  latestValidation(): StepPoint | undefined {
    let best: StepPoint | undefined;
    for (const p of this.points.values()) if (p.valLoss !== undefined && (!best || p.step > best.step)) best = p;
    return best;
  }

  sortedRanks(): RankFigures[] {
    return [...this.ranks.values()].sort((a, b) => a.rank - b.rank);
  }

  toJSON(): RunStateJSON {
    return {
      format: RUN_STATE_FORMAT, version: RUN_STATE_VERSION, info: this.info, layout: this.layout, points: this.sortedPoints(), stride: this.stride,
      ranks: this.sortedRanks(), events: this.events, status: this.status, lastUpdate: this.lastUpdate,
    };
  }

  static fromJSON(j: RunStateJSON): RunState {
    if (j.format !== RUN_STATE_FORMAT || j.version !== RUN_STATE_VERSION) {
      throw new Error(`not a ${RUN_STATE_FORMAT} v${RUN_STATE_VERSION} snapshot (got ${String(j.format)} v${String(j.version)})`);
    }
    const s = new RunState();
    s.info = j.info;
    s.layout = j.layout;
    s.stride = j.stride;
    for (const p of j.points) s.points.set(p.step, p);
    for (const r of j.ranks) s.ranks.set(r.rank, r);
    s.events.push(...j.events);
    s.status = j.status;
    s.lastUpdate = j.lastUpdate;
    return s;
  }

  private applyMetrics(rank: number, time: number, r: Record<string, MetricValue>): void {
    const step = num(r.step);
    if (step === undefined) return;
    // A step's figures, not a side record of the same step (a checkpoint's copy time, a resume):
    // those would reset the rank's traffic and bandwidth to nothing until its next step.
    if (num(r.bytes_sent) === undefined && num(r.model_state_bytes) === undefined && num(r.loss) === undefined) return;
    if (this.status.state === 'waiting') this.status = { state: 'running' };
    const sent = num(r.bytes_sent) ?? 0;
    const toDevice = num(r.host_to_device_bytes);
    const toHost = num(r.device_to_host_bytes);
    const collectiveMs = num(r.collective_ms);
    const busbw = num(r.allreduce_busbw_gbs);
    const point = this.pointFor(step, time);
    if (point) {
      point.time = Math.max(point.time, time);
      point.bytesSent += sent;
      point.ranksReported += 1;
      if (busbw !== undefined) {
        const b = point.busbw;
        point.busbw = b ? { sum: b.sum + busbw, min: Math.min(b.min, busbw), ranks: b.ranks + 1 } : { sum: busbw, min: busbw, ranks: 1 };
      }
      if (num(r.loss) !== undefined) {
        point.loss = num(r.loss);
        point.lr = num(r.lr);
        point.gradNorm = num(r.grad_norm);
        point.tokensPerS = num(r.tokens_per_s);
        point.stepMs = num(r.step_ms);
      }
      if (num(r.val_loss) !== undefined) {
        point.valLoss = num(r.val_loss);
        point.valPerplexity = num(r.val_perplexity) ?? Math.exp(point.valLoss!);
      }
    }
    const prev = this.ranks.get(rank);
    const figures: RankFigures = {
      rank, step,
      paramsBytes: num(r.params_bytes) ?? prev?.paramsBytes ?? 0,
      gradsBytes: num(r.grads_bytes) ?? prev?.gradsBytes ?? 0,
      optimizerBytes: num(r.optimizer_bytes) ?? prev?.optimizerBytes ?? 0,
      modelStateBytes: num(r.model_state_bytes) ?? prev?.modelStateBytes ?? 0,
      peakBytes: num(r.peak_tf_bytes) ?? prev?.peakBytes ?? 0,
      backendBytes: num(r.tf_bytes) ?? prev?.backendBytes ?? 0,
      bytesSentStep: sent,
      bytesSentTotal: (prev?.bytesSentTotal ?? 0) + sent,
      hostToDeviceStep: toDevice,
      deviceToHostStep: toHost,
      hostDeviceTotal: (prev?.hostDeviceTotal ?? 0) + (toDevice ?? 0) + (toHost ?? 0),
      collectiveMsStep: collectiveMs,
      collectiveMsTotal: collectiveMs === undefined ? prev?.collectiveMsTotal : (prev?.collectiveMsTotal ?? 0) + collectiveMs,
      busbwGBs: busbw,
    };
    this.ranks.set(rank, figures);
    // The step time is rank 0's; whichever of the records arrives last completes the rates.
    const stepMs = point?.stepMs ?? num(r.step_ms);
    if (stepMs !== undefined && stepMs > 0) {
      for (const f of this.ranks.values()) if (f.step === step) f.sendRate = (f.bytesSentStep * 1000) / stepMs;
    }
  }

  private pointFor(step: number, time: number): StepPoint | undefined {
    if (step % this.stride !== 0) return undefined;
    let p = this.points.get(step);
    if (!p) {
      p = { step, time, bytesSent: 0, ranksReported: 0 };
      this.points.set(step, p);
      if (this.points.size > MAX_STEP_POINTS) this.thin();
    }
    return this.points.get(step);
  }

  /** Halves the history: keeps the steps that are multiples of twice the stride. */
  private thin(): void {
    this.stride *= 2;
    for (const step of [...this.points.keys()]) if (step % this.stride !== 0) this.points.delete(step);
  }
}
