import * as tf from '@tensorflow/tfjs-core';
import type { GradBuffer, MicroBatch, PendingLoss, SavedState, SegmentedModel, TensorLike } from '../interfaces.js';
import { BigramLayout } from './bigram-model.js';

/**
 * bigram-model.ts's model in TF.js ops, for the TfDevice: the same two segments over the same two
 * units, computed on the backend, gradients handed over as tensors. Engine tests run both models
 * through every ZeRO stage and compare (the device path must follow the host path).
 */
class Activation {
  constructor(readonly t: tf.Tensor2D) {}
  dispose(): void {
    this.t.dispose();
  }
}

class Params {
  constructor(readonly t: tf.Tensor) {}
  get tensors(): tf.Tensor[] {
    return [this.t];
  }
  dispose(): void {
    this.t.dispose();
  }
}

interface Saved extends SavedState {
  tokens?: tf.Tensor2D;
  probs?: tf.Tensor2D;
  targets?: Int32Array;
  count?: number;
}

export class TfBigramModel extends BigramLayout implements SegmentedModel<Activation, Params> {
  unitParams(unit: number, values: Float32Array | TensorLike): Params {
    const V = this.vocab;
    const shape = unit === 0 ? [V, V] : [V];
    return new Params(values instanceof Float32Array ? tf.tensor(values, shape) : tf.reshape(values as tf.Tensor, shape));
  }

  forward(seg: number, params: ReadonlyMap<number, Params>, x: Activation | null, mb: MicroBatch, train: boolean): { y: Activation | null; saved: Saved; loss?: PendingLoss } {
    const V = this.vocab;
    if (seg === 0) {
      const tokens = tf.tensor2d(mb.tokens, [mb.tokens.length, 1], 'int32');
      const h = tf.tidy(() => tf.gather(params.get(0)!.t, tf.reshape(tokens, [-1]))) as tf.Tensor2D; // [N, V]
      const saved: Saved = { tokens, release: () => tokens.dispose() };
      return { y: new Activation(h), saved };
    }
    const targets = mb.targets;
    let count = 0;
    for (const t of targets) if (t >= 0) count++;
    const [probs, nll] = tf.tidy(() => {
      const logits = tf.add(x!.t, params.get(1)!.t);
      const logp = tf.logSoftmax(logits);
      const mask = tf.tensor1d(Float32Array.from(targets, (t) => (t >= 0 ? 1 : 0)));
      const onehot = tf.mul(tf.oneHot(tf.tensor1d(Int32Array.from(targets, (t) => Math.max(t, 0)), 'int32'), V), tf.expandDims(mask, 1));
      return [tf.exp(logp) as tf.Tensor2D, tf.neg(tf.sum(tf.mul(onehot, logp)))];
    });
    const loss = nll.data().then((v: ArrayLike<number>) => {
      nll.dispose();
      return count ? v[0] / count : NaN;
    });
    if (!train) probs.dispose();
    const saved: Saved = train ? { probs, targets, count, release: () => probs.dispose() } : { release: () => undefined };
    return { y: null, saved, loss: { loss, count } };
  }

  backward(seg: number, _params: ReadonlyMap<number, Params>, saved: SavedState, dy: Activation | null, gradScale: number, grads: ReadonlyMap<number, GradBuffer>): Activation | null {
    const V = this.vocab;
    const s = saved as Saved;
    if (seg === 1) {
      const dh = tf.tidy(() => {
        const mask = tf.tensor2d(Float32Array.from(s.targets!, (t) => (t >= 0 ? 1 : 0)), [s.targets!.length, 1]);
        const onehot = tf.oneHot(tf.tensor1d(Int32Array.from(s.targets!, (t) => Math.max(t, 0)), 'int32'), V);
        return tf.mul(tf.mul(tf.sub(s.probs!, onehot), mask), s.count ? gradScale / s.count : 0) as tf.Tensor2D;
      });
      grads.get(1)!.add(0, tf.sum(dh, 0));
      saved.release();
      return new Activation(dh);
    }
    grads.get(0)!.add(0, tf.scatterND(s.tokens!, dy!.t, [V, V]));
    saved.release();
    return null;
  }
}
