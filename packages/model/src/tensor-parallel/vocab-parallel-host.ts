/**
 * The vocab-parallel embedding and head on the host-kernel path (wasm, cpu): JS loops over
 * tensor memory (host/tensor-io.ts); see vocab-parallel.ts for the math and the split.
 */
import * as tf from '@tensorflow/tfjs-core';
import { hostOp, hostRead } from '../host/tensor-io.js';
import { positionOf, type EmbeddingGrads, type EmbeddingParams } from '../layers/embedding.js';
import type { Saved } from '../layers/layer.js';
import { SavedState, disposeAll } from '../layers/layer.js';
import type { LMHead, LMHeadParams, LossForward } from '../layers/lm-head.js';
import { logitsBackward } from '../layers/lm-head-host.js';
import { allReduceTensor, type TensorParallelGroup } from './mappings.js';
import type { VocabParallelEmbeddingLayer, VocabParallelHeadLayer } from './vocab-parallel.js';

interface EmbeddingSaved {
  tokens: Int32Array;
  positions?: Int32Array;
}

/** Host kernels: this rank's rows gathered by a JS loop over tensor memory, the partial sums all-reduced. */
export class HostVocabParallelEmbedding implements VocabParallelEmbeddingLayer {
  constructor(private readonly group: TensorParallelGroup, private readonly vocabStart: number) {}

  /** tokens [B*T] -> x [B, T, C]. */
  async forward(p: EmbeddingParams, tokens: Int32Array, batch: number, train = true, positions?: Int32Array): Promise<{ y: tf.Tensor; saved: SavedState<EmbeddingSaved> }> {
    const [Vt, C] = p.wte.shape as number[];
    const T = tokens.length / batch;
    const v0 = this.vocabStart;
    const [partial] = hostOp([p.wte], [[batch, T, C]], ([wte], [x]) => {
      for (let n = 0; n < tokens.length; n++) {
        const row = tokens[n] - v0;
        if (row >= 0 && row < Vt) x.set(wte.subarray(row * C, row * C + C), n * C);
        else x.fill(0, n * C, n * C + C); // wasm outputs start uninitialised
      }
    });
    const summed = await allReduceTensor(partial, this.group);
    partial.dispose();
    if (p.wpe === undefined) return { y: summed, saved: train ? new SavedState({ tokens }, []) : SavedState.none() };
    const [y] = hostOp([summed, p.wpe], [[batch, T, C]], ([s, wpe], [x]) => {
      for (let n = 0; n < tokens.length; n++) {
        const pe = positionOf(n, T, positions) * C;
        const o = n * C;
        for (let c = 0; c < C; c++) x[o + c] = s[o + c] + wpe[pe + c];
      }
    });
    summed.dispose();
    return { y, saved: train ? new SavedState({ tokens, positions }, []) : SavedState.none() };
  }

  /** dy [B, T, C] -> this rank's dwte [|V_t|, C] and dwpe [contextLength, C] as fresh arrays. */
  backward(p: EmbeddingParams, saved: SavedState<EmbeddingSaved>, dy: tf.Tensor): { dx: null; dParams: EmbeddingGrads<Float32Array> } {
    const [Vt, C] = p.wte.shape;
    const dwte = new Float32Array(Vt * C);
    if (p.wpe === undefined) {
      this.backwardInto(saved, dy, dwte, null);
      return { dx: null, dParams: { wte: dwte } };
    }
    const dwpe = new Float32Array(p.wpe.shape[0] * C);
    this.backwardInto(saved, dy, dwte, dwpe);
    return { dx: null, dParams: { wte: dwte, wpe: dwpe } };
  }

  /** Adds this rank's gradients into caller-owned arrays dwte [|V_t|, C] and dwpe [ctx, C]. */
  backwardInto(saved: SavedState<EmbeddingSaved>, dy: tf.Tensor, dwte: Float32Array, dwpe: Float32Array | null): void {
    const { tokens, positions } = saved.take('VocabParallelEmbedding');
    const [, T, C] = dy.shape as number[];
    const Vt = dwte.length / C;
    const v0 = this.vocabStart;
    hostRead([dy], ([g]) => {
      for (let n = 0; n < tokens.length; n++) {
        const src = n * C;
        const pe = positionOf(n, T, positions) * C;
        const row = tokens[n] - v0;
        const inShard = row >= 0 && row < Vt;
        for (let c = 0; c < C; c++) {
          const v = g[src + c];
          if (dwpe !== null) dwpe[pe + c] += v;
          if (inShard) dwte[row * C + c] += v;
        }
      }
    });
    saved.release();
  }
}

interface HeadSaved {
  xShape: number[];
  x2: tf.Tensor;
  probs: Float32Array;
  targets: Int32Array;
  count: number;
}

/**
 * Host kernels: the logits by the host head's matMul (`logitsOf`), then the max, the softmax and
 * the loss in JS loops over one downloaded copy of them, which backward turns into dlogits.
 */
export class HostVocabParallelHead implements VocabParallelHeadLayer {
  constructor(private readonly group: TensorParallelGroup, private readonly vocabStart: number, private readonly logitsOf: LMHead['logits']) {}

  async forward(p: LMHeadParams, x: tf.Tensor, targets: Int32Array, train = true): Promise<LossForward> {
    const logits = this.logitsOf(p, x); // [N, |V_t|]
    const [N, Vt] = logits.shape as number[];
    const v0 = this.vocabStart;
    const probs = hostRead([logits], ([l]) => l.slice());
    logits.dispose();
    // Global max per row.
    const max = new Float32Array(N);
    for (let n = 0; n < N; n++) {
      let m = -Infinity;
      for (let j = 0, o = n * Vt; j < Vt; j++) if (probs[o + j] > m) m = probs[o + j];
      max[n] = m;
    }
    if (this.group.size > 1) await this.group.allReduce(max, { op: 'max' });
    // Sum of exp and the target's logit, from every rank at once: [S_0..S_N-1, tl_0..tl_N-1].
    const sums = new Float32Array(2 * N);
    for (let n = 0; n < N; n++) {
      const o = n * Vt;
      const t = targets[n] - v0;
      if (targets[n] >= 0 && t >= 0 && t < Vt) sums[N + n] = probs[o + t] - max[n]; // the target's logit - max
      let s = 0;
      for (let j = 0; j < Vt; j++) {
        const e = Math.exp(probs[o + j] - max[n]);
        probs[o + j] = e;
        s += e;
      }
      sums[n] = s;
    }
    if (this.group.size > 1) await this.group.allReduce(sums, { op: 'sum' });
    let total = 0;
    let count = 0;
    for (let n = 0; n < N; n++) {
      const inv = 1 / sums[n];
      for (let j = 0, o = n * Vt; j < Vt; j++) probs[o + j] *= inv;
      if (targets[n] < 0) continue;
      total += Math.log(sums[n]) - sums[N + n];
      count++;
    }
    const loss = Promise.resolve(count > 0 ? total / count : 0);
    if (!train) return { loss, count, saved: SavedState.none() };
    const C = x.shape[x.shape.length - 1];
    const x2 = tf.reshape(x, [x.size / C, C]);
    return { loss, count, saved: new SavedState<HeadSaved>({ xShape: x.shape, x2, probs, targets, count }, [x2]) };
  }

  async backward(p: LMHeadParams, saved: Saved, dLoss: number): Promise<{ dx: tf.Tensor; dParams: { wte: Float32Array } }> {
    const { xShape, x2, probs, targets, count } = (saved as SavedState<HeadSaved>).take('VocabParallelHead');
    const N = targets.length;
    const Vt = probs.length / N;
    const s = count > 0 ? dLoss / count : 0;
    const v0 = this.vocabStart;
    for (let n = 0; n < N; n++) {
      const o = n * Vt;
      if (targets[n] < 0) {
        probs.fill(0, o, o + Vt);
        continue;
      }
      for (let j = 0; j < Vt; j++) probs[o + j] *= s;
      const t = targets[n] - v0;
      if (t >= 0 && t < Vt) probs[o + t] -= s;
    }
    const dlogits = tf.tensor2d(probs, [N, Vt]);
    const { dx2, dwte } = logitsBackward(dlogits, p.wte, x2);
    const dxSum = await allReduceTensor(dx2, this.group);
    const dx = tf.reshape(dxSum, xShape);
    disposeAll(dlogits, dx2, dxSum);
    saved.release();
    return { dx, dParams: { wte: dwte } };
  }
}
