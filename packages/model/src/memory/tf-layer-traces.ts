/**
 * The tf kernel set's layers (layers/*-tf.ts, tensor-parallel/vocab-parallel-tf.ts) on a
 * MemoryTrace. Every TF.js op's output is a new buffer except reshapes (shared); a tf.tidy keeps
 * ALL its intermediates until it returns, so a layer's transient peak is the sum of everything
 * its tidy computes. Cached constants (constants.ts: scalars, the causal mask) exist before.
 *
 * Elements per tensor (N rows, C width, n = elements, BH = B * heads, hs = head size, V vocab):
 *   LayerNorm  forward tidy: mean [N], x-mean [N,C], square [N,C], var [N], +eps [N], rstd [N],
 *              norm [N,C], norm*w [N,C], y [N,C]; keeps norm, rstd
 *              backward tidy: dnorm, dnorm*norm, 3 more [N,C], dx [N,C], dy*norm [N,C]; mD, mDN [N];
 *              dW, dB [C] (kept as gradients)
 *   Linear     forward y [N,out]; keeps share(x).   backward dx [N,in], dW [in,out], db [out]
 *   Attention  forward tidy: split q, k, v [B,T,C] x3, heads q, k, v [B,H,T,hs] x3, S, S*scale,
 *              S+mask, P [B,H,T,T] x4, O [B,H,T,hs], y [B,T,C]; keeps q, k, v, P
 *              backward tidy: dO, dV, dS k, dQ, dS^T q, dK [B,H,T,hs] x6, dP, P*dP, dP-rowsum, dS
 *              [B,H,T,T] x4, rowsum [B,H,T], 3 merged [B,T,C], dqkv [B,T,3C]
 *   GELU       forward tidy: 7 element-wise [n] (x^2, x^3, A x^3, u, 2k u, sigmoid, y); keeps share(x)
 *              backward tidy: 15 element-wise [n]
 *   Embedding  forward ids int32 [N]; tidy: gathered rows [N,C], wpe[:T] [T,C], y [B,T,C]; keeps ids
 *              backward dwte = scatterND [V,C]; sum over batch [T,C], dwpe padded [ctx,C]
 *   Head       forward ids int32 [N]; tidy: logits [N,V]; logSoftmax's own tidy (max [N], shifted,
 *              cast, exp [N,V], sum, log [N], logp [N,V]); mask: bool [N] + float [N]; ids clamped
 *              int32 [N]; oneHot int32 [N,V], as float [N,V], masked [N,V]; onehot*logp [N,V];
 *              two scalars; probs [N,V]. Keeps share(x), probs, ids
 *              backward tidy: scale scalar; mask bool [N] + float [N]; clamped ids int32 [N]; oneHot
 *              int32 [N,V], float [N,V], masked [N,V]; probs*mask, -onehot, *scale [N,V]; dx [N,C];
 *              dwte [V,C]
 * tf.cast: a copy on wasm, the input's buffer on cpu (to float32) and on TensorFlow (same dtype).
 */
import { allReduced, TracedSaved, type LayerTraces, type TracedForward, type TracedLoss } from './layer-traces.js';
import type { MemoryTrace, Ref } from './trace.js';

/** tf.logSoftmax (tfjs-core: a custom op whose forward runs in its own tidy): logp [N, V]. */
function logSoftmax(t: MemoryTrace, _logits: Ref, N: number, V: number): Ref {
  return t.tidy(() => {
    t.alloc('logSoftmax max [N]', N);
    const shifted = t.alloc('logSoftmax shifted [N,V]', N * V);
    t.cast('logSoftmax cast [N,V]', shifted, N * V, 'float32');
    t.alloc('logSoftmax exp [N,V]', N * V);
    t.alloc('logSoftmax sum [N]', N);
    t.alloc('logSoftmax log [N]', N);
    return t.alloc('logp [N,V]', N * V);
  });
}

/** targetsOneHot (lm-head-tf.ts): mask [N, 1] and onehot [N, V] of the counted targets. */
function targetsOneHot(t: MemoryTrace, N: number, V: number): void {
  const counted = t.alloc('targets >= 0 bool [N]', N, 'bool');
  t.share(t.cast('mask [N]', counted, N, 'float32')); // expandDims: [N] -> [N, 1]
  t.alloc('max(ids, 0) int32 [N]', N, 'int32');
  const oh = t.alloc('oneHot int32 [N,V]', N * V, 'int32');
  t.cast('oneHot float [N,V]', oh, N * V, 'float32');
  t.alloc('onehot [N,V]', N * V);
}

/** shardRows (vocab-parallel-tf.ts): rows int32 [N] and the in-shard mask [N, 1]. */
function shardRows(t: MemoryTrace, N: number): void {
  t.alloc('ids - v0 int32 [N]', N, 'int32');
  t.alloc('>= 0 bool [N]', N, 'bool');
  t.alloc('< Vt bool [N]', N, 'bool');
  const inside = t.alloc('in shard bool [N]', N, 'bool');
  t.alloc('max(., 0) int32 [N]', N, 'int32');
  t.alloc('rows int32 [N]', N, 'int32');
  t.share(t.cast('in shard float [N]', inside, N, 'float32'));
}

/** positionGradient (embedding-tf.ts): dwpe [ctx, C]. */
function positionGradient(t: MemoryTrace, T: number, C: number, ctx: number): Ref {
  return t.tidy(() => {
    const perPosition = t.alloc('dwpe sum over batch [T,C]', T * C);
    return T < ctx ? t.alloc('dwpe padded [ctx,C]', ctx * C) : perPosition;
  });
}

export function tfLayerTraces(): LayerTraces {
  return {
    layerNorm(t, _x, N, C, train): TracedForward {
      const [y, norm, rstd] = t.tidy(() => {
        t.alloc('mean [N]', N);
        t.alloc('x - mean [N,C]', N * C);
        t.alloc('square [N,C]', N * C);
        t.alloc('variance [N]', N);
        t.alloc('variance + eps [N]', N);
        const rstd = t.alloc('rstd [N]', N);
        const norm = t.alloc('norm [N,C]', N * C);
        t.alloc('norm * weight [N,C]', N * C);
        return [t.alloc('y [N,C]', N * C), norm, rstd];
      });
      if (!train) {
        t.dispose(norm, rstd);
        return { y, saved: null };
      }
      const saved = new TracedSaved(t, [norm, rstd], () => {
        const grads = t.tidy(() => {
          t.alloc('dnorm [N,C]', N * C);
          t.alloc('mean dnorm [N]', N);
          t.alloc('dnorm * norm [N,C]', N * C);
          t.alloc('mean dnorm*norm [N]', N);
          t.alloc('dnorm - mD [N,C]', N * C);
          t.alloc('norm * mDN [N,C]', N * C);
          t.alloc('difference [N,C]', N * C);
          const dx = t.alloc('dx [N,C]', N * C);
          t.alloc('dy * norm [N,C]', N * C);
          return [dx, t.alloc('dweight [C]', C), t.alloc('dbias [C]', C)];
        });
        saved.release();
        return { dx: grads[0], grads: grads.slice(1) };
      });
      return { y, saved };
    },

    linear(t, x, N, inDim, outDim, train): TracedForward {
      const x2 = t.share(x); // [..., in] -> [N, in]
      const y = t.tidy(() => t.share(t.alloc('y [N,out]', N * outDim)));
      if (!train) {
        t.dispose(x2);
        return { y, saved: null };
      }
      const saved = new TracedSaved(t, [x2], (dy) => {
        const grads = t.tidy(() => {
          t.share(dy!);
          const dx = t.share(t.alloc('dx = dY W^T [N,in]', N * inDim));
          return [dx, t.alloc('dweight = X^T dY [in,out]', inDim * outDim), t.alloc('dbias [out]', outDim)];
        });
        saved.release();
        return { dx: grads[0], grads: grads.slice(1) };
      });
      return { y, saved };
    },

    attention(t, _qkv, { B, T, N }, H, hs, train): TracedForward {
      const C = H * hs;
      const BHTT = B * H * T * T;
      const [y, q, k, v, p] = t.tidy(() => {
        const parts = ['q', 'k', 'v'].map((n) => t.alloc(`split ${n} [B,T,C]`, N * C));
        const [q, k, v] = parts.map((part, i) => {
          t.share(part);
          return t.alloc(`${'qkv'[i]} [B,H,T,hs]`, N * C);
        });
        t.alloc('S = q k^T [B,H,T,T]', BHTT);
        t.alloc('S * scale [B,H,T,T]', BHTT);
        t.alloc('S + mask [B,H,T,T]', BHTT);
        const p = t.alloc('P = softmax [B,H,T,T]', BHTT);
        t.alloc('O = P v [B,H,T,hs]', N * C);
        const y = t.share(t.alloc('y [B,T,H,hs]', N * C));
        return [y, q, k, v, p];
      });
      if (!train) {
        t.dispose(q, k, v, p);
        return { y, saved: null };
      }
      const saved = new TracedSaved(t, [q, k, v, p], (dy) => {
        const dqkv = t.tidy(() => {
          t.share(dy!);
          t.alloc('dO [B,H,T,hs]', N * C);
          t.alloc('dP = dO v^T [B,H,T,T]', BHTT);
          t.alloc('dV = P^T dO [B,H,T,hs]', N * C);
          t.alloc('P * dP [B,H,T,T]', BHTT);
          t.alloc('rowsum [B,H,T]', B * H * T);
          t.alloc('dP - rowsum [B,H,T,T]', BHTT);
          t.alloc('dS [B,H,T,T]', BHTT);
          t.alloc('dS k [B,H,T,hs]', N * C);
          t.alloc('dQ [B,H,T,hs]', N * C);
          t.alloc('dS^T q [B,H,T,hs]', N * C);
          t.alloc('dK [B,H,T,hs]', N * C);
          for (const n of ['dQ', 'dK', 'dV']) t.share(t.alloc(`${n} [B,T,H,hs]`, N * C));
          return t.alloc('dqkv [B,T,3C]', 3 * N * C);
        });
        saved.release();
        return { dx: dqkv, grads: [] };
      });
      return { y, saved };
    },

    gelu(t, x, n, train): TracedForward {
      const names = ['x^2', 'x^3', 'A x^3', 'u', '2k u', 'sigmoid', 'y'];
      const y = t.tidy(() => names.map((s) => t.alloc(`${s} [n]`, n))[names.length - 1]);
      if (!train) return { y, saved: null };
      const xs = t.share(x);
      const saved = new TracedSaved(t, [xs], () => {
        const dx = t.tidy(() => {
          let last: Ref | null = null;
          for (let i = 0; i < 15; i++) last = t.alloc(`backward element-wise ${i + 1}/15 [n]`, n);
          return last!;
        });
        saved.release();
        return { dx, grads: [] };
      });
      return { y, saved };
    },

    embedding(t, { T, N }, C, V, ctx, train): TracedForward {
      const ids = t.alloc('token ids int32 [N]', N, 'int32');
      const y = t.tidy(() => {
        const tok = t.alloc('wte rows [N,C]', N * C);
        t.alloc('wpe[:T] [T,C]', T * C);
        t.share(tok);
        return t.alloc('y [B,T,C]', N * C);
      });
      if (!train) {
        t.dispose(ids);
        return { y, saved: null };
      }
      const saved = new TracedSaved(t, [ids], (dy) => {
        const dwte = t.tidy(() => {
          t.share(ids);
          t.share(dy!);
          return t.alloc('dwte = scatterND [V,C]', V * C);
        });
        const dwpe = positionGradient(t, T, C, ctx);
        saved.release();
        return { dx: null, grads: [dwte, dwpe] };
      });
      return { y, saved };
    },

    head(t, x, N, C, V, train): TracedLoss {
      const ids = t.alloc('target ids int32 [N]', N, 'int32');
      const [nll, probs] = t.tidy(() => {
        const logits = t.tidy(() => {
          t.share(x);
          return t.alloc('logits [N,V]', N * V);
        });
        logSoftmax(t, logits, N, V);
        targetsOneHot(t, N, V);
        t.alloc('onehot * logp [N,V]', N * V);
        t.alloc('sum (scalar)', 1);
        const nll = t.alloc('nll (scalar)', 1);
        return [nll, t.alloc('probs = exp(logp) [N,V]', N * V)];
      });
      t.dispose(nll); // read back (the loss), then disposed
      if (!train) {
        t.dispose(probs, ids);
        return { saved: null };
      }
      const x2 = t.share(x);
      const saved = new TracedSaved(t, [x2, probs, ids], () => {
        const [dx, dwte] = t.tidy(() => {
          t.alloc('dLoss / M (scalar)', 1);
          targetsOneHot(t, N, V);
          t.alloc('probs * mask [N,V]', N * V);
          t.alloc('- onehot [N,V]', N * V);
          t.alloc('dlogits [N,V]', N * V);
          const dx = t.share(t.alloc('dx = dlogits wte [N,C]', N * C));
          return [dx, t.alloc('dwte = dlogits^T x [V,C]', V * C)];
        });
        saved.release();
        return { dx, grads: [dwte] };
      });
      return { saved };
    },

    vocabParallelEmbedding(t, { T, N }, C, Vt, ctx, train): TracedForward {
      const ids = t.alloc('token ids int32 [N]', N, 'int32');
      const partial = t.tidy(() => {
        shardRows(t, N);
        t.alloc('wte rows [N,C]', N * C);
        return t.share(t.alloc('rows * in shard [N,C]', N * C));
      });
      const summed = allReduced(t, 'all-reduced rows [B,T,C]', N * C);
      t.dispose(partial);
      const y = t.tidy(() => {
        t.alloc('wpe[:T] [T,C]', T * C);
        return t.alloc('y [B,T,C]', N * C);
      });
      t.dispose(summed);
      if (!train) {
        t.dispose(ids);
        return { y, saved: null };
      }
      const saved = new TracedSaved(t, [ids], (dy) => {
        const dwte = t.tidy(() => {
          shardRows(t, N);
          t.share(dy!);
          t.alloc('dy * in shard [N,C]', N * C);
          return t.alloc('dwte = scatterND [Vt,C]', Vt * C);
        });
        const dwpe = positionGradient(t, T, C, ctx);
        saved.release();
        return { dx: null, grads: [dwte, dwpe] };
      });
      return { y, saved };
    },

    vocabParallelHead(t, x, N, C, Vt, train): TracedLoss {
      const ids = t.alloc('target ids int32 [N]', N, 'int32');
      const logits = t.tidy(() => {
        t.share(x);
        return t.alloc('logits [N,Vt]', N * Vt);
      });
      const localMax = t.alloc('row max [N]', N);
      const maxT = t.alloc('all-reduced max [N] (uploaded)', N);
      const [e, both] = t.tidy(() => {
        t.share(maxT);
        t.alloc('logits - max [N,Vt]', N * Vt);
        const e = t.alloc('exp [N,Vt]', N * Vt);
        shardRows(t, N);
        const oh = t.alloc('oneHot int32 [N,Vt]', N * Vt, 'int32');
        t.cast('oneHot float [N,Vt]', oh, N * Vt, 'float32');
        t.alloc('picked [N,Vt]', N * Vt);
        t.alloc('sum exp [N]', N);
        t.alloc('shifted * picked [N,Vt]', N * Vt);
        t.alloc('target logit [N]', N);
        return [e, t.alloc('[S, target logit] [2N]', 2 * N)];
      });
      const held = [logits, localMax, maxT, e, both];
      if (!train) {
        t.dispose(...held, ids);
        return { saved: null };
      }
      const S = t.alloc('S [N] (uploaded)', N);
      const probs = t.tidy(() => {
        t.share(S);
        return t.alloc('probs = e / S [N,Vt]', N * Vt);
      });
      t.dispose(S);
      const x2 = t.share(x);
      t.dispose(...held);
      const saved = new TracedSaved(t, [x2, probs, ids], () => {
        const [dx2, dwte] = t.tidy(() => {
          t.alloc('dLoss / M (scalar)', 1);
          const ge = t.alloc('targets >= 0 bool [N]', N, 'bool');
          t.share(t.cast('counted [N]', ge, N, 'float32'));
          shardRows(t, N);
          const oh = t.alloc('oneHot int32 [N,Vt]', N * Vt, 'int32');
          t.cast('oneHot float [N,Vt]', oh, N * Vt, 'float32');
          t.alloc('onehot [N,Vt]', N * Vt);
          t.alloc('probs * counted [N,Vt]', N * Vt);
          t.alloc('- onehot [N,Vt]', N * Vt);
          t.alloc('dlogits [N,Vt]', N * Vt);
          return [t.alloc('partial dx [N,C]', N * C), t.alloc('dwte [Vt,C]', Vt * C)];
        });
        saved.release();
        const dxSum = allReduced(t, 'all-reduced dx [N,C]', N * C);
        const dx = t.share(dxSum);
        t.dispose(dxSum, dx2);
        return { dx, grads: [dwte] };
      });
      return { saved };
    },
  };
}

