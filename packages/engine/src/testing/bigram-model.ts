import type { LossResult, TrainableModel } from '../interfaces.js';

/**
 * A bigram language model in plain JS (logits = W[token] + b), small enough to reason about and
 * exact enough to compare trajectories: the engine's test subject before any TF.js is involved.
 */
export class BigramModel implements TrainableModel {
  readonly layout;
  private params = new Float32Array(0);

  constructor(readonly vocab: number) {
    this.layout = {
      entries: [
        { name: 'w', shape: [vocab, vocab], offset: 0, size: vocab * vocab },
        { name: 'b', shape: [vocab], offset: vocab * vocab, size: vocab },
      ],
      totalSize: vocab * vocab + vocab,
    };
  }

  setParams(flat: Float32Array): void {
    this.params = new Float32Array(flat);
  }

  loss(tokens: Int32Array, targets: Int32Array): LossResult {
    return this.run(tokens, targets, undefined, 0);
  }

  forwardBackward(tokens: Int32Array, targets: Int32Array, _batch: number, grads: Float32Array, gradScale = 1): LossResult {
    return this.run(tokens, targets, grads, gradScale);
  }

  private run(tokens: Int32Array, targets: Int32Array, grads: Float32Array | undefined, scale: number): LossResult {
    const V = this.vocab;
    const bias = V * V;
    const probs = new Float64Array(V);
    let total = 0;
    let count = 0;
    for (let i = 0; i < tokens.length; i++) if (targets[i] >= 0) count++;
    for (let i = 0; i < tokens.length; i++) {
      const y = targets[i];
      if (y < 0) continue;
      const row = tokens[i] * V;
      let max = -Infinity;
      for (let j = 0; j < V; j++) max = Math.max(max, this.params[row + j] + this.params[bias + j]);
      let sum = 0;
      for (let j = 0; j < V; j++) sum += probs[j] = Math.exp(this.params[row + j] + this.params[bias + j] - max);
      total += Math.log(sum) + max - (this.params[row + y] + this.params[bias + y]);
      if (!grads) continue;
      for (let j = 0; j < V; j++) {
        const d = ((probs[j] / sum - (j === y ? 1 : 0)) * scale) / count;
        grads[row + j] += d;
        grads[bias + j] += d;
      }
    }
    return { loss: count ? total / count : NaN, count };
  }
}
