import type { Disposable, GradBuffer, MicroBatch, PendingLoss, SegmentedModel, SegmentSpec, TensorLike } from '../interfaces.js';

/**
 * A bigram language model in plain JS, as a two-segment model over two parameter units:
 *   segment 0 (unit 0, W [V, V]):  h[n] = W[token_n]
 *   segment 1 (unit 1, b [V]):     logits[n] = h[n] + b,  loss = mean CE over counted targets
 * Small enough to reason about and exact enough to compare trajectories: the engine's test
 * subject, exercising partitions, gathers and reductions without TF.js.
 */
class Values implements Disposable {
  constructor(readonly data: Float64Array) {}
  dispose(): void {}
}

class UnitValues implements Disposable {
  constructor(readonly data: Float32Array) {}
  dispose(): void {}
}

interface BigramSaved {
  release(): void;
  mb: MicroBatch;
  probs?: Float64Array;
  count?: number;
}

/** The bigram model's units and segments (shared by its TF.js twin, tf-bigram-model.ts). */
export class BigramLayout {
  readonly units;
  readonly segments: SegmentSpec[] = [
    { name: 'lookup', forwardUnits: [0], backwardUnits: [], gradUnits: [0], recomputable: true },
    { name: 'bias+loss', forwardUnits: [1], backwardUnits: [], gradUnits: [1] },
  ];
  readonly totalSize: number;
  readonly decayRanges;

  constructor(readonly vocab: number) {
    this.units = [{ name: 'w', start: 0, end: vocab * vocab }, { name: 'b', start: vocab * vocab, end: vocab * vocab + vocab }];
    this.totalSize = vocab * vocab + vocab;
    this.decayRanges = [{ start: 0, end: vocab * vocab }];
  }
}

export class BigramModel extends BigramLayout implements SegmentedModel<Values, UnitValues> {

  unitParams(_unit: number, values: Float32Array | TensorLike): UnitValues {
    if (!(values instanceof Float32Array)) throw new Error('BigramModel computes on the host device only');
    return new UnitValues(new Float32Array(values));
  }

  forward(seg: number, params: ReadonlyMap<number, UnitValues>, x: Values | null, mb: MicroBatch, train: boolean) {
    const V = this.vocab;
    const N = mb.tokens.length;
    if (seg === 0) {
      const w = params.get(0)!.data;
      const h = new Float64Array(N * V);
      for (let n = 0; n < N; n++) for (let j = 0; j < V; j++) h[n * V + j] = w[mb.tokens[n] * V + j];
      return { y: new Values(h), saved: { release() {}, mb } as BigramSaved };
    }
    const b = params.get(1)!.data;
    const h = x!.data;
    const probs = new Float64Array(N * V);
    let total = 0;
    let count = 0;
    for (let n = 0; n < N; n++) {
      const y = mb.targets[n];
      if (y < 0) continue;
      count++;
      let max = -Infinity;
      for (let j = 0; j < V; j++) max = Math.max(max, h[n * V + j] + b[j]);
      let sum = 0;
      for (let j = 0; j < V; j++) sum += probs[n * V + j] = Math.exp(h[n * V + j] + b[j] - max);
      for (let j = 0; j < V; j++) probs[n * V + j] /= sum;
      total += Math.log(sum) + max - (h[n * V + y] + b[y]);
    }
    const loss: PendingLoss = { loss: Promise.resolve(count ? total / count : NaN), count };
    return { y: null, saved: { release() {}, mb, probs: train ? probs : undefined, count } as BigramSaved, loss };
  }

  backward(seg: number, _params: ReadonlyMap<number, UnitValues>, saved: { release(): void }, dy: Values | null, gradScale: number, grads: ReadonlyMap<number, GradBuffer>): Values | null {
    const V = this.vocab;
    const s = saved as BigramSaved;
    const N = s.mb.tokens.length;
    if (seg === 1) {
      const g = grads.get(1)!.host!;
      const dh = new Float64Array(N * V);
      for (let n = 0; n < N; n++) {
        const y = s.mb.targets[n];
        if (y < 0) continue;
        for (let j = 0; j < V; j++) {
          const d = ((s.probs![n * V + j] - (j === y ? 1 : 0)) * gradScale) / s.count!;
          dh[n * V + j] = d;
          g[j] += d;
        }
      }
      return new Values(dh);
    }
    const g = grads.get(0)!.host!;
    for (let n = 0; n < N; n++) for (let j = 0; j < V; j++) g[s.mb.tokens[n] * V + j] += dy!.data[n * V + j];
    return null;
  }
}
