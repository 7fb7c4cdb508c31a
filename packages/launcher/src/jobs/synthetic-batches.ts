import type { MicroBatch } from '@trainer/engine';

/**
 * Uniformly random tokens, as the PyTorch throughput peer uses: for benchmarks that measure
 * speed, not learning. Like the corpus sampler, the global batch of a step is a function of
 * (seed, step) alone, so the work is the same whatever the number of workers.
 */
export class SyntheticBatches {
  constructor(private readonly vocabSize: number, private readonly seqLen: number, private readonly seed: number) {}

  batch(step: number, opts: { rank: number; dpSize: number; microBatch: number; micro: number; globalBatch: number }): MicroBatch {
    const T = this.seqLen;
    const perRank = opts.globalBatch / opts.dpSize;
    const first = opts.rank * perRank + opts.micro * opts.microBatch;
    const tokens = new Int32Array(opts.microBatch * T);
    const targets = new Int32Array(opts.microBatch * T);
    for (let b = 0; b < opts.microBatch; b++) {
      let state = mix(this.seed, step, first + b);
      for (let t = 0; t <= T; t++) {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        const tok = state % this.vocabSize;
        if (t < T) tokens[b * T + t] = tok;
        if (t > 0) targets[b * T + t - 1] = tok;
      }
    }
    return { tokens, targets, batch: opts.microBatch };
  }
}

function mix(seed: number, step: number, index: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const v of [step, index]) {
    h = Math.imul(h ^ v, 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
  }
  return h;
}
