/**
 * The host kernel set's layers (layers/*-host.ts, tensor-parallel/vocab-parallel-host.ts) on a
 * MemoryTrace. A host op allocates its outputs and writes them in place; the SIMD module (wasm)
 * changes what is allocated only where noted: the Linear GEMMs, the fused attention, the
 * cross-entropy gradient and the head's GEMMs. Gradients are downloaded at once (hostTake), so
 * none stays on the backend. Matrix weights come with their transposes (W^T, wte^T: params).
 *
 * Elements per tensor, with N rows, C width, n = elements, BH = B * heads, hs = head size:
 *   LayerNorm  forward  y [N,C], mean [N], rstd [N]; keeps share(x), mean, rstd
 *              backward dx [N,C], dW [C], dB [C] (downloaded)
 *   Linear     forward  y [N,out]; keeps share(x)
 *              backward SIMD GEMM: dx [N,in], dW [in,out] (downloaded); db [out] (SIMD column sums)
 *                       else dx = dY W^T [N,in]; in <= out: dY^T [out,N], dW^T [out,in], dW [in,out];
 *                       in > out: X^T [in,N], dW [in,out]
 *   Attention  fused (SIMD, T % 8 == 0 and hs % 8 == 0): forward y [B,T,C], P [BH,T,T] and per-pair
 *              scratch Qs, Kt, V, O [T,hs] + S [T,T]; keeps share(qkv), P. backward dqkv [B,T,3C] and
 *              scratch 7 [T,hs] + 4 [T,T].
 *              per (b, h) matMuls: forward Qs, Kt, V (3 NC), S (BH [T,T]), P = softmax one [T,T] at a
 *              time, O (NC), y (NC); keeps share(qkv), P. backward dO, Vt, K, Qs (4 NC), P^T (BH T^2),
 *              dP (BH T^2), dV (NC), dS and dS^T (2 BH T^2), dQs, dK (2 NC), dqkv (3 NC)
 *   GELU       forward  y [n], s = sigmoid(2u) [n]; keeps share(x), s.   backward dx [n]
 *   Embedding  forward  y [B,T,C]; keeps the token ids on the host.      backward nothing (adds into host arrays)
 *   Head       forward  logits [N,V], probs [N,V] (logits freed); keeps share(x), probs
 *              backward SIMD: float ids [N] + dlogits [N,V], else dlogits in place in probs;
 *                       SIMD GEMMs: dx [N,C], dwte [V,C] (downloaded); else dx [N,C], x^T [C,N],
 *                       dwte^T [C,V], dwte [V,C]
 */
import { allReduced, TracedSaved, type LayerTraces, type TracedForward, type TracedLoss } from './layer-traces.js';
import type { MemoryTrace, Ref } from './trace.js';

/** The host layers; `simd`: on wasm with the SIMD module (each kernel's shape constraints still apply). */
export function hostLayerTraces(simd: boolean): LayerTraces {
  /** The SIMD GEMMs of Linear (linear-host.ts ownGemm). */
  const ownGemm = (N: number, inDim: number, outDim: number) => simd && N % 4 === 0 && inDim % 8 === 0 && outDim % 8 === 0;

  /** The head's logits: x [N, C] times wte^T [C, V] (a plain matMul). */
  const logits = (t: MemoryTrace, x: Ref, N: number, V: number): Ref => {
    const x2 = t.share(x);
    const l = t.alloc('logits [N,V]', N * V);
    t.dispose(x2);
    return l;
  };

  /** logitsBackward (lm-head-host.ts): dx [N, C] from dlogits [N, V]; dwte downloaded. */
  const logitsBackward = (t: MemoryTrace, N: number, C: number, V: number): Ref => {
    if (simd && N % 4 === 0 && V % 4 === 0 && C % 8 === 0) {
      const dx2 = t.alloc('dx [N,C]', N * C);
      t.dispose(t.alloc('dwte [V,C]', V * C));
      return dx2;
    }
    const dx2 = t.alloc('dx = dlogits wte [N,C]', N * C);
    const xT = t.alloc('x^T [C,N]', C * N);
    const dwteT = t.alloc('dwte^T [C,V]', C * V);
    t.dispose(t.alloc('dwte [V,C]', V * C));
    t.dispose(xT, dwteT);
    return dx2;
  };

  return {
    layerNorm(t, x, N, C, train): TracedForward {
      const y = t.alloc('y [N,C]', N * C);
      const mean = t.alloc('mean [N]', N);
      const rstd = t.alloc('rstd [N]', N);
      if (!train) {
        t.dispose(mean, rstd);
        return { y, saved: null };
      }
      const xs = t.share(x);
      const saved = new TracedSaved(t, [xs, mean, rstd], () => {
        const dx = t.alloc('dx [N,C]', N * C);
        const dW = t.alloc('dweight [C]', C);
        const dB = t.alloc('dbias [C]', C);
        saved.release();
        t.dispose(dW, dB); // downloaded
        return { dx, grads: [] };
      });
      return { y, saved };
    },

    linear(t, x, N, inDim, outDim, train): TracedForward {
      const x2 = t.share(x); // [..., in] -> [N, in]
      const y2 = t.alloc('y [N,out]', N * outDim);
      const y = t.share(y2);
      t.dispose(y2);
      if (!train) {
        t.dispose(x2);
        return { y, saved: null };
      }
      const saved = new TracedSaved(t, [x2], (dy) => {
        const dy2 = t.share(dy!);
        let dx2: Ref;
        if (ownGemm(N, inDim, outDim)) {
          dx2 = t.alloc('dx [N,in]', N * inDim);
          t.dispose(t.alloc('dweight [in,out]', inDim * outDim));
        } else {
          dx2 = t.alloc('dx = dY W^T [N,in]', N * inDim);
          if (inDim <= outDim) {
            const dyT = t.alloc('dY^T [out,N]', outDim * N);
            const dWT = t.alloc('dweight^T [out,in]', outDim * inDim);
            t.dispose(t.alloc('dweight [in,out]', inDim * outDim));
            t.dispose(dyT, dWT);
          } else {
            const xT = t.alloc('X^T [in,N]', inDim * N);
            t.dispose(t.alloc('dweight [in,out]', inDim * outDim));
            t.dispose(xT);
          }
        }
        const dx = t.share(dx2);
        t.dispose(dx2);
        if (simd && outDim % 4 === 0) t.dispose(t.alloc('dbias [out]', outDim)); // SIMD column sums, downloaded
        t.dispose(dy2);
        saved.release();
        return { dx, grads: [] };
      });
      return { y, saved };
    },

    attention(t, qkv, { B, T, N }, H, hs, train): TracedForward {
      const C = H * hs;
      const BH = B * H;
      if (simd && T % 8 === 0 && hs % 8 === 0) {
        const y = t.alloc('y [B,T,C]', N * C);
        const probs = t.alloc('P [BH,T,T]', BH * T * T);
        const scratch = [t.alloc('Qs [T,hs]', T * hs), t.alloc('Kt [hs,T]', hs * T), t.alloc('V [T,hs]', T * hs), t.alloc('S [T,T]', T * T), t.alloc('O [T,hs]', T * hs)];
        t.dispose(...scratch);
        if (!train) {
          t.dispose(probs);
          return { y, saved: null };
        }
        const qkvShared = t.share(qkv);
        const saved = new TracedSaved(t, [qkvShared, probs], () => {
          const dqkv = t.alloc('dqkv [B,T,3C]', 3 * N * C);
          const th = ['dO', 'Vt', 'K', 'Qs', 'dV', 'dQ', 'dK'].map((n) => t.alloc(`${n} [T,hs]`, T * hs));
          const tt = ['dP', 'Pt', 'dS', 'dSt'].map((n) => t.alloc(`${n} [T,T]`, T * T));
          t.dispose(...th, ...tt);
          saved.release();
          return { dx: dqkv, grads: [] };
        });
        return { y, saved };
      }
      const perPair = (label: string, size: number) => t.alloc(`${label} (${BH} x ${size})`, BH * size);
      const qs = perPair('Qs [T,hs]', T * hs);
      const kt = perPair('Kt [hs,T]', hs * T);
      const v = perPair('V [T,hs]', T * hs);
      const scores = perPair('S [T,T]', T * T);
      t.dispose(qs, kt);
      // softmax per pair: P [T,T] allocated, the masked scores of the pair freed
      t.dispose(t.alloc('P [T,T] (one pair)', T * T));
      const probs = scores; // same bytes: BH x [T,T]
      const outs = perPair('O [T,hs]', T * hs);
      t.dispose(v);
      const y = t.alloc('y [B,T,C]', N * C);
      t.dispose(outs);
      if (!train) {
        t.dispose(probs);
        return { y, saved: null };
      }
      const qkvShared = t.share(qkv);
      const saved = new TracedSaved(t, [qkvShared, probs], () => {
        const dO = perPair('dO [T,hs]', T * hs);
        const vt = perPair('Vt [hs,T]', hs * T);
        const k = perPair('K [T,hs]', T * hs);
        const qsB = perPair('Qs [T,hs]', T * hs);
        const pt = perPair('P^T [T,T]', T * T);
        const dP = perPair('dP [T,T]', T * T);
        const dV = perPair('dV [T,hs]', T * hs);
        t.dispose(dO, vt, pt);
        const dS = perPair('dS [T,T]', T * T);
        const dSt = perPair('dS^T [T,T]', T * T);
        t.dispose(dP);
        saved.release();
        const dQs = perPair('dQs [T,hs]', T * hs);
        const dK = perPair('dK [T,hs]', T * hs);
        t.dispose(dS, dSt, k, qsB);
        const dqkv = t.alloc('dqkv [B,T,3C]', 3 * N * C);
        t.dispose(dQs, dK, dV);
        return { dx: dqkv, grads: [] };
      });
      return { y, saved };
    },

    gelu(t, x, n, train): TracedForward {
      const y = t.alloc('y [n]', n);
      const s = t.alloc('sigmoid(2u) [n]', n);
      if (!train) {
        t.dispose(s);
        return { y, saved: null };
      }
      const xs = t.share(x);
      const saved = new TracedSaved(t, [xs, s], () => {
        const dx = t.alloc('dx [n]', n);
        saved.release();
        return { dx, grads: [] };
      });
      return { y, saved };
    },

    embedding(t, { N }, C, _V, _ctx, train): TracedForward {
      const y = t.alloc('y [B,T,C]', N * C);
      return { y, saved: train ? new TracedSaved(t, [], () => ({ dx: null, grads: [] })) : null };
    },

    head(t, x, N, C, V, train): TracedLoss {
      const l = logits(t, x, N, V);
      const probs = t.alloc('probs [N,V]', N * V);
      t.dispose(l);
      if (!train) {
        t.dispose(probs);
        return { saved: null };
      }
      const x2 = t.share(x);
      const saved = new TracedSaved(t, [x2, probs], () => {
        let dlogits = probs; // in place
        if (simd && V % 4 === 0) {
          const ids = t.alloc('target ids as float [N]', N);
          dlogits = t.alloc('dlogits [N,V]', N * V);
          t.dispose(ids);
        }
        const dx2 = logitsBackward(t, N, C, V);
        const dx = t.share(dx2);
        t.dispose(dx2, dlogits === probs ? null : dlogits);
        saved.release();
        return { dx, grads: [] };
      });
      return { saved };
    },

    vocabParallelEmbedding(t, { N }, C, _Vt, _ctx, train): TracedForward {
      const partial = t.alloc('partial rows [B,T,C]', N * C);
      const summed = allReduced(t, 'all-reduced rows [B,T,C]', N * C);
      t.dispose(partial);
      const y = t.alloc('y [B,T,C]', N * C);
      t.dispose(summed);
      return { y, saved: train ? new TracedSaved(t, [], () => ({ dx: null, grads: [] })) : null };
    },

    vocabParallelHead(t, x, N, C, Vt, train): TracedLoss {
      t.dispose(logits(t, x, N, Vt)); // read into a host array (the softmax runs there)
      if (!train) return { saved: null };
      const x2 = t.share(x);
      const saved = new TracedSaved(t, [x2], () => {
        const dlogits = t.alloc('dlogits [N,Vt] (uploaded)', N * Vt);
        const dx2 = logitsBackward(t, N, C, Vt);
        const dxSum = allReduced(t, 'all-reduced dx [N,C]', N * C);
        const dx = t.share(dxSum);
        t.dispose(dlogits, dx2, dxSum);
        saved.release();
        return { dx, grads: [] };
      });
      return { saved };
    },
  };
}
