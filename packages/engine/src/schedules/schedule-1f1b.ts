/**
 * The 1F1B pipeline schedule (PipeDream-Flush, Narayanan et al. 2021; Megatron-LM's
 * forward_backward_pipelining_without_interleaving), as a pure list of actions per stage.
 *
 * With P stages and M micro-batches, stage s runs:
 *
 *   warmup     numWarmupMicrobatches = min(P - s - 1, M) forwards
 *   steady     numMicrobatchesRemaining = M - warmup pairs: one forward, then one backward
 *   cooldown   the warmup's backwards
 *
 * so at most P - s micro-batches are in flight on stage s (P on the first: its memory bound),
 * every backward runs as soon as its gradient can arrive, and the last stage alternates strictly.
 * After the last backward the stage's gradients are complete for the optimizer step.
 */
export interface PipelineAction {
  kind: 'forward' | 'backward';
  micro: number;
}

export function schedule1F1B(stages: number, stage: number, microBatches: number): PipelineAction[] {
  if (!Number.isInteger(stages) || stages < 1 || !Number.isInteger(stage) || stage < 0 || stage >= stages || !Number.isInteger(microBatches) || microBatches < 1) {
    throw new RangeError(`schedule1F1B: stage ${stage} of ${stages}, ${microBatches} micro-batches`);
  }
  const numWarmupMicrobatches = Math.min(stages - stage - 1, microBatches);
  const numMicrobatchesRemaining = microBatches - numWarmupMicrobatches;
  const actions: PipelineAction[] = [];
  let nextForward = 0;
  let nextBackward = 0;
  // warmup: forwards only
  for (let i = 0; i < numWarmupMicrobatches; i++) actions.push({ kind: 'forward', micro: nextForward++ });
  // steady state: one forward, one backward
  for (let i = 0; i < numMicrobatchesRemaining; i++) {
    actions.push({ kind: 'forward', micro: nextForward++ });
    actions.push({ kind: 'backward', micro: nextBackward++ });
  }
  // cooldown: the remaining backwards
  for (let i = 0; i < numWarmupMicrobatches; i++) actions.push({ kind: 'backward', micro: nextBackward++ });
  return actions;
}

/** The most micro-batches held (forward done, backward not yet) at any point of a stage's schedule. */
export function maxInFlight(actions: readonly PipelineAction[]): number {
  let live = 0;
  let peak = 0;
  for (const a of actions) {
    live += a.kind === 'forward' ? 1 : -1;
    peak = Math.max(peak, live);
  }
  return peak;
}

/**
 * Runs every stage's schedule against each other with point-to-point semantics: forward m on
 * stage s needs forward m done on s-1; backward m on s needs backward m done on s+1 (on the last
 * stage, its own forward m). Sends never block. Returns the time-step at which each action ran
 * (a unit-time model: one action per stage per tick), or throws if no stage can move (deadlock).
 * A check of the schedule's structure, independent of any numerics.
 */
export function simulatePipeline(stages: number, microBatches: number): { ticks: number; busy: number[]; timeline: (PipelineAction | null)[][] } {
  const plans = Array.from({ length: stages }, (_, s) => schedule1F1B(stages, s, microBatches));
  const pos = new Array<number>(stages).fill(0);
  const fwdDone = Array.from({ length: stages }, () => new Array<number>(microBatches).fill(-1));
  const bwdDone = Array.from({ length: stages }, () => new Array<number>(microBatches).fill(-1));
  const timeline: (PipelineAction | null)[][] = Array.from({ length: stages }, () => []);
  let tick = 0;
  while (pos.some((p, s) => p < plans[s].length)) {
    let moved = false;
    for (let s = 0; s < stages; s++) {
      const a = plans[s][pos[s]];
      const ready = a && (a.kind === 'forward'
        ? s === 0 || (fwdDone[s - 1][a.micro] >= 0 && fwdDone[s - 1][a.micro] < tick)
        : (s === stages - 1 ? fwdDone[s][a.micro] >= 0 && fwdDone[s][a.micro] < tick : bwdDone[s + 1][a.micro] >= 0 && bwdDone[s + 1][a.micro] < tick));
      if (ready) {
        (a.kind === 'forward' ? fwdDone : bwdDone)[s][a.micro] = tick;
        timeline[s].push(a);
        pos[s]++;
        moved = true;
      } else {
        timeline[s].push(null);
      }
    }
    if (!moved) throw new Error(`deadlock at tick ${tick}: stages wait at ${pos.map((p, s) => JSON.stringify(plans[s][p])).join(', ')}`);
    tick++;
  }
  return { ticks: tick, busy: plans.map((p) => p.length), timeline };
}
