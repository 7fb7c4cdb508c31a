/**
 * The tf kernel set's layers (layers/*-tf.ts, tensor-parallel/vocab-parallel-tf.ts) on a
 * MemoryTrace. Every TF.js op's output is a new buffer except reshapes (shared); the layers
 * dispose each large intermediate as soon as it is dead, so a layer's transient peak is a few
 * tensors (a tf.tidy, used only around small groups of ops here, holds all of its intermediates
 * until it returns). Cached constants (constants.ts: scalars, the causal mask, the head's row
 * numbers) exist before.
 *
 * Elements per tensor (N rows, C width, n = elements, BH = B * heads, hs = head size, V vocab),
 * "->" an op whose input is freed once its output exists:
 *   LayerNorm  forward mean [N]; x-mean [N,C]; tidy: square [N,C], var, +eps, rstd [N]; norm [N,C];
 *              norm*w [N,C] (eval: norm, rstd freed here); y [N,C]. Keeps norm, rstd
 *              backward tidy: dy*norm [N,C], dW, dB [C]; dnorm [N,C], mD [N]; tidy: dnorm*norm
 *              [N,C], mDN [N]; dnorm-mD [N,C]; norm*mDN [N,C]; difference [N,C]; dx [N,C]
 *   Linear     forward y [N,out] (on TensorFlow the fused matMul is matMul [N,out] then + bias
 *              [N,out]: tfjs-node has no fused kernel); keeps share(x). backward dx [N,in],
 *              dW [in,out], db [out]
 *   Attention  forward per q, k, v: slice [B,T,C] -> heads [B,H,T,hs]; q -> q*scale; S [B,H,T,T]
 *              -> S+mask -> P (eval: q, k freed at S); O [B,H,T,hs] (eval: P, v freed); y.
 *              Keeps q (scaled), k, v, P, share(y)
 *              backward tidy: dy*y [B,T,C], D [B,T,H], transposed [B,H,T]; dO [B,H,T,hs]; dP
 *              [B,H,T,T] (v freed); dV [B,H,T,hs] (dO freed); dP-D -> dS [B,H,T,T] (P freed);
 *              tidy: dS k, dQ [B,H,T,hs]; dK (dS freed); concat [B,3H,T,hs] -> dqkv [B,T,3C]
 *   GELU       forward x^2 -> x^2*2kA -> +2k -> z = x*() -> sigmoid -> y [n]; keeps share(x)
 *              backward x d(2u)/dx and z (4 ops each, as forward), sigmoid, 1-s, q = x du (1-s)
 *              (the moment of four [n]), q+1, grad, dx
 *   Embedding  forward ids int32 [N]; tidy: gathered rows [N,C], wpe[:T] [T,C], y [B,T,C]; keeps ids
 *              backward sum over batch [T,C], dwpe padded [ctx,C]; then dwte = scatterND [V,C]
 *   Head       forward ids int32 [N]; logits [N,V]; tidy: row max [N], shifted [N,V]; logits freed;
 *              pairs tidy: >= 0 bool [N], mask float [N], clamped int32 [N], pairs int32 [N,2];
 *              target logit [N]; exp [N,V] (shifted freed); sum [N]; probs [N,V] (exp freed);
 *              nll tidy: log, -, *mask [N], sum (scalar). Keeps share(x), probs, ids
 *              backward scale scalar; pairs as forward; row factor [N]; tidy: gathered [N], -mask
 *              [N], probs - onehot [N,V] by tensorScatterUpdate (probs freed); tidy: dx [N,C],
 *              * row factor [N,C]; tidy: x * row factor [N,C], dwte [V,C]
 *   Vocab-parallel  the embedding and head on this rank's |V_t| rows (shard rows and mask [N] per
 *              call); the head's row max and sums cross through the host (all-reduced, [N] uploads),
 *              its [N,Vt] tensors as in Head
 * tf.cast: a copy on wasm, the input's buffer on cpu (to float32) and on TensorFlow (same dtype).
 */
import { allReduced, TracedSaved, type LayerTraces, type TracedForward, type TracedLoss } from './layer-traces.js';
import type { MemoryTrace, Ref } from './trace.js';

/** A chain step: `made` (already allocated from `used`), once `used` is disposed. */
function then(t: MemoryTrace, used: Ref, made: Ref): Ref {
  t.dispose(used);
  return made;
}

/** xTimesQuadratic (gelu-tf.ts): x (c0 + c2 x^2) in four ops, each input freed at once. */
function xTimesQuadratic(t: MemoryTrace, n: number, label: string): Ref {
  let r = t.alloc(`${label}: x^2 [n]`, n);
  r = then(t, r, t.alloc(`${label}: c2 x^2 [n]`, n));
  r = then(t, r, t.alloc(`${label}: c0 + c2 x^2 [n]`, n));
  return then(t, r, t.alloc(`${label} [n]`, n));
}

/** targetPairs (lm-head-tf.ts): pairs int32 [N, 2] and mask float [N]. */
function targetPairs(t: MemoryTrace, N: number): [Ref, Ref] {
  return t.tidy(() => {
    const counted = t.alloc('targets >= 0 bool [N]', N, 'bool');
    const mask = t.cast('mask [N]', counted, N, 'float32');
    t.share(t.alloc('max(ids, 0) int32 [N]', N, 'int32')); // expandDims: [N] -> [N, 1]
    return [t.alloc('(row, target) pairs int32 [N,2]', 2 * N, 'int32'), mask];
  });
}

/** shardRows (vocab-parallel-tf.ts): rows int32 [N] and the in-shard mask [N, 1]. */
function shardRows(t: MemoryTrace, N: number): [Ref, Ref] {
  t.alloc('ids - v0 int32 [N]', N, 'int32');
  t.alloc('>= 0 bool [N]', N, 'bool');
  t.alloc('< Vt bool [N]', N, 'bool');
  const inside = t.alloc('in shard bool [N]', N, 'bool');
  t.alloc('max(., 0) int32 [N]', N, 'int32');
  const rows = t.alloc('rows int32 [N]', N, 'int32');
  return [rows, t.share(t.cast('in shard float [N]', inside, N, 'float32'))];
}

/** shardTargetPairs (vocab-parallel-tf.ts): pairs int32 [N, 2] and the in-shard mask [N]. */
function shardTargetPairs(t: MemoryTrace, N: number): [Ref, Ref] {
  return t.tidy(() => {
    const [rows, inShard] = shardRows(t, N);
    t.share(rows); // expandDims
    return [t.alloc('(row, shard row) pairs int32 [N,2]', 2 * N, 'int32'), t.share(inShard)];
  });
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
      const mean = t.alloc('mean [N]', N);
      const xc = t.alloc('x - mean [N,C]', N * C);
      t.dispose(mean);
      const rstd = t.tidy(() => {
        t.alloc('square [N,C]', N * C);
        t.alloc('variance [N]', N);
        t.alloc('variance + eps [N]', N);
        return t.alloc('rstd [N]', N);
      });
      const norm = then(t, xc, t.alloc('norm [N,C]', N * C));
      const scaled = t.alloc('norm * weight [N,C]', N * C);
      if (!train) t.dispose(norm, rstd);
      const y = then(t, scaled, t.alloc('y [N,C]', N * C));
      if (!train) return { y, saved: null };
      const saved = new TracedSaved(t, [norm, rstd], (dy) => {
        const grads = t.tidy(() => {
          t.share(dy!);
          t.share(norm);
          t.alloc('dy * norm [N,C]', N * C);
          return [t.alloc('dweight [C]', C), t.alloc('dbias [C]', C)];
        });
        const dnorm = t.alloc('dnorm [N,C]', N * C);
        const mD = t.alloc('mean dnorm [N]', N);
        const mDN = t.tidy(() => {
          t.alloc('dnorm * norm [N,C]', N * C);
          return t.alloc('mean dnorm*norm [N]', N);
        });
        const centred = t.alloc('dnorm - mD [N,C]', N * C);
        t.dispose(dnorm, mD);
        const along = then(t, mDN, t.alloc('norm * mDN [N,C]', N * C));
        const diff = t.alloc('difference [N,C]', N * C);
        t.dispose(centred, along);
        const dx = then(t, diff, t.alloc('dx [N,C]', N * C));
        saved.release();
        return { dx, grads };
      });
      return { y, saved };
    },

    linear(t, x, N, inDim, outDim, train): TracedForward {
      const x2 = t.share(x); // [..., in] -> [N, in]
      const y = t.tidy(() => {
        // tfjs-node's fused matMul is a matMul, then + bias (in the kernel's own tidy)
        const product = t.backend === 'tensorflow' ? t.alloc('x W [N,out]', N * outDim) : null;
        const fused = t.alloc('y [N,out]', N * outDim);
        t.dispose(product);
        return t.share(fused);
      });
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
      const headsOf = (name: string): Ref => {
        const part = t.alloc(`slice ${name} [B,T,C]`, N * C);
        const heads = t.tidy(() => {
          t.share(part);
          return t.alloc(`${name} [B,H,T,hs]`, N * C);
        });
        return then(t, part, heads);
      };
      const q = then(t, headsOf('q'), t.alloc('q * scale [B,H,T,hs]', N * C));
      const k = headsOf('k');
      const v = headsOf('v');
      const s = t.alloc('S = q k^T [B,H,T,T]', BHTT);
      if (!train) t.dispose(q, k);
      const masked = then(t, s, t.alloc('S + mask [B,H,T,T]', BHTT));
      const p = then(t, masked, t.alloc('P = softmax [B,H,T,T]', BHTT));
      const o = t.alloc('O = P v [B,H,T,hs]', N * C);
      if (!train) t.dispose(p, v);
      const y = then(t, o, t.tidy(() => t.share(t.alloc('y [B,T,H,hs]', N * C))));
      if (!train) return { y, saved: null };
      const ys = t.share(y);
      const saved = new TracedSaved(t, [q, k, v, p, ys], (dy) => {
        const d = t.tidy(() => {
          t.share(t.alloc('dy * y [B,T,C]', N * C));
          t.alloc('D [B,T,H]', B * T * H);
          return t.share(t.alloc('D [B,H,T]', B * H * T));
        });
        t.dispose(ys);
        const dO = t.tidy(() => {
          t.share(dy!);
          return t.alloc('dO [B,H,T,hs]', N * C);
        });
        const dP = t.alloc('dP = dO v^T [B,H,T,T]', BHTT);
        t.dispose(v);
        const dV = then(t, dO, t.alloc('dV = P^T dO [B,H,T,hs]', N * C));
        const dPMinusD = t.alloc('dP - D [B,H,T,T]', BHTT);
        t.dispose(dP, d);
        const dS = then(t, dPMinusD, t.alloc('dS = P (dP - D) [B,H,T,T]', BHTT));
        t.dispose(p);
        const dQ = t.tidy(() => {
          t.alloc('dS k [B,H,T,hs]', N * C);
          return t.alloc('dQ [B,H,T,hs]', N * C);
        });
        const dK = then(t, dS, t.alloc('dK = dS^T q [B,H,T,hs]', N * C));
        const heads = t.alloc('[dQ, dK, dV] [B,3H,T,hs]', 3 * N * C);
        t.dispose(dQ, dK, dV);
        const dqkv = then(t, heads, t.tidy(() => t.share(t.alloc('dqkv [B,T,3C]', 3 * N * C))));
        saved.release();
        return { dx: dqkv, grads: [] };
      });
      return { y, saved };
    },

    gelu(t, x, n, train): TracedForward {
      const z = xTimesQuadratic(t, n, 'z = 2u');
      const s = then(t, z, t.alloc('sigmoid(2u) [n]', n));
      const y = then(t, s, t.alloc('y [n]', n));
      if (!train) return { y, saved: null };
      const xs = t.share(x);
      const saved = new TracedSaved(t, [xs], () => {
        const xdu = xTimesQuadratic(t, n, 'x d(2u)/dx');
        const s = then(t, xTimesQuadratic(t, n, 'z = 2u'), t.alloc('s = sigmoid(2u) [n]', n));
        const oneMinusS = t.alloc('1 - s [n]', n);
        const q = t.alloc('x du (1 - s) [n]', n);
        t.dispose(xdu, oneMinusS);
        const q1 = then(t, q, t.alloc('1 + x du (1 - s) [n]', n));
        const grad = t.alloc('grad [n]', n);
        t.dispose(s, q1);
        const dx = then(t, grad, t.alloc('dx [n]', n));
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
        const dwpe = positionGradient(t, T, C, ctx);
        const dwte = t.tidy(() => {
          t.share(ids);
          t.share(dy!);
          return t.alloc('dwte = scatterND [V,C]', V * C);
        });
        saved.release();
        return { dx: null, grads: [dwte, dwpe] };
      });
      return { y, saved };
    },

    head(t, x, N, C, V, train): TracedLoss {
      const ids = t.alloc('target ids int32 [N]', N, 'int32');
      const logits = t.tidy(() => {
        t.share(x);
        return t.alloc('logits [N,V]', N * V);
      });
      const shifted = then(
        t,
        logits,
        t.tidy(() => {
          t.alloc('row max [N]', N);
          return t.alloc('logits - max [N,V]', N * V);
        }),
      );
      const [pairs, mask] = targetPairs(t, N);
      const target = t.alloc('target logit - max [N]', N);
      const e = then(t, shifted, t.alloc('exp [N,V]', N * V));
      const sumExp = t.alloc('sum exp [N]', N);
      const probs = train
        ? t.tidy(() => {
            t.share(sumExp);
            return t.alloc('probs = exp / sum [N,V]', N * V);
          })
        : null;
      t.dispose(e);
      const nll = t.tidy(() => {
        t.alloc('log sum [N]', N);
        t.alloc('- target [N]', N);
        t.alloc('* mask [N]', N);
        return t.alloc('nll (scalar)', 1);
      });
      t.dispose(pairs, mask, target, sumExp);
      t.dispose(nll); // read back (the loss), then disposed
      if (!probs) {
        t.dispose(ids);
        return { saved: null };
      }
      const x2 = t.share(x);
      const saved = new TracedSaved(t, [x2, probs, ids], () => {
        const scale = t.alloc('dLoss / M (scalar)', 1);
        const [pairs, mask] = targetPairs(t, N);
        const rowFactor = t.tidy(() => {
          t.share(mask);
          return t.alloc('row factor [N,1]', N);
        });
        const residual = t.tidy(() => {
          t.alloc('probs at targets [N]', N);
          t.alloc('- mask [N]', N);
          return t.alloc('probs - onehot [N,V]', N * V);
        });
        t.dispose(probs);
        const dx = t.tidy(() => {
          t.alloc('(probs - onehot) wte [N,C]', N * C);
          return t.share(t.alloc('dx [N,C]', N * C));
        });
        const dwte = t.tidy(() => {
          t.alloc('x * row factor [N,C]', N * C);
          return t.alloc('dwte [V,C]', V * C);
        });
        t.dispose(residual, rowFactor, pairs, mask, scale);
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
      t.dispose(t.alloc('row max [N] (downloaded)', N));
      const maxT = t.alloc('all-reduced max [N] (uploaded)', N);
      const shifted = t.tidy(() => {
        t.share(maxT);
        return t.alloc('logits - max [N,Vt]', N * Vt);
      });
      t.dispose(logits, maxT);
      const target = t.tidy(() => {
        shardTargetPairs(t, N);
        t.alloc('shifted at targets [N]', N);
        return t.alloc('target logit - max [N]', N);
      });
      const e = then(t, shifted, t.alloc('exp [N,Vt]', N * Vt));
      const both = t.tidy(() => {
        t.alloc('sum exp [N]', N);
        return t.alloc('[S, target logit] [2N]', 2 * N);
      });
      if (!train) {
        t.dispose(target, e, both, ids);
        return { saved: null };
      }
      t.dispose(target, both);
      const S = t.alloc('S [N] (uploaded)', N);
      const probs = t.tidy(() => {
        t.share(S);
        return t.alloc('probs = e / S [N,Vt]', N * Vt);
      });
      t.dispose(S);
      const x2 = t.share(x);
      t.dispose(e);
      const saved = new TracedSaved(t, [x2, probs, ids], () => {
        const scale = t.alloc('dLoss / M (scalar)', 1);
        const rowFactor = t.tidy(() => {
          const ge = t.alloc('targets >= 0 bool [N]', N, 'bool');
          t.share(t.cast('counted [N]', ge, N, 'float32'));
          return t.alloc('row factor [N,1]', N);
        });
        const [pairs, inShard] = shardTargetPairs(t, N);
        const residual = t.tidy(() => {
          t.alloc('probs at targets [N]', N);
          t.alloc('- in shard [N]', N);
          return t.alloc('probs - onehot [N,Vt]', N * Vt);
        });
        t.dispose(probs);
        const dx2 = t.tidy(() => {
          t.alloc('(probs - onehot) wte [N,C]', N * C);
          return t.alloc('partial dx [N,C]', N * C);
        });
        const dwte = t.tidy(() => {
          t.alloc('x * row factor [N,C]', N * C);
          return t.alloc('dwte [Vt,C]', Vt * C);
        });
        t.dispose(residual, rowFactor, pairs, inShard, scale);
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
