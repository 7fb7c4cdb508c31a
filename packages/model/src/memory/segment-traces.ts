/**
 * The segments of segments.ts (embedding, block h.i, head) on a MemoryTrace, composed from one
 * kernel set's layer traces exactly as GPTSegments, Block and TensorParallelBlock compose the
 * layers: the same order of forward calls, residual adds, all-reduces and disposes.
 */
import { allReduced, TracedSaved, type LayerTraces, type Rows, type TracedBackward, type TracedForward, type TracedLoss } from './layer-traces.js';
import type { MemoryTrace, Ref } from './trace.js';

/** One rank's sizes for one micro-batch. */
export interface SegmentDims extends Rows {
  /** Residual width. */
  C: number;
  /** This rank's heads, of size hs. */
  H: number;
  hs: number;
  /** This rank's MLP hidden width (4C / tp). */
  F: number;
  /** This rank's vocabulary rows (V / tp, balanced). */
  V: number;
  /** Rows of wpe. */
  ctx: number;
  /** Tensor-parallel ranks (1: the plain layers). */
  tp: number;
}

/** The parts of a block in forward order (block.ts BlockSaved). */
const PARTS = ['ln_1', 'attn.c_attn', 'attn', 'attn.c_proj', 'ln_2', 'mlp.c_fc', 'mlp.gelu', 'mlp.c_proj'] as const;

/** Block (block.ts) or, for tp > 1, TensorParallelBlock (parallel-block.ts): x [B,T,C] -> y [B,T,C]. */
export function blockForward(t: MemoryTrace, L: LayerTraces, x: Ref, d: SegmentDims, train: boolean): TracedForward {
  const { N, C, H, hs, F } = d;
  const Ca = H * hs; // this rank's attention width
  const tp = d.tp > 1;
  const named = <T>(name: string, fn: () => T) => t.named(`block.${name}`, fn);
  /** A residual sum: one add, or (tensor-parallel) the all-reduced sum added, then the bias. */
  const residual = (label: string): Ref =>
    named('residual', () =>
      tp
        ? t.tidy(() => {
            t.alloc('+ all-reduced sum [N,C]', N * C);
            return t.alloc(`${label} + bias [N,C]`, N * C);
          })
        : t.alloc(`${label} [N,C]`, N * C),
    );
  // Each intermediate freed right after its last use, as Block and TensorParallelBlock do.
  const ln1 = named('ln_1', () => L.layerNorm(t, x, N, C, train));
  const qkv = named('attn.c_attn', () => L.linear(t, ln1.y, N, C, 3 * Ca, train)); // [B, T, 3C/tp]
  t.dispose(ln1.y);
  const attn = named('attn', () => L.attention(t, qkv.y, d, H, hs, train)); // [B, T, C/tp]
  t.dispose(qkv.y);
  const proj = named('attn.c_proj', () => L.linear(t, attn.y, N, Ca, C, train));
  t.dispose(attn.y);
  // x2 = x + c_proj(...): Block adds once; the tensor-parallel block adds the all-reduced sum, then the bias
  let x2: Ref;
  if (tp) {
    const projSum = named('attn.c_proj', () => allReduced(t, 'all-reduced [N,C]', N * C));
    t.dispose(proj.y);
    x2 = residual('x2');
    t.dispose(projSum);
  } else {
    x2 = residual('x2');
    t.dispose(proj.y);
  }
  const ln2 = named('ln_2', () => L.layerNorm(t, x2, N, C, train));
  const fc = named('mlp.c_fc', () => L.linear(t, ln2.y, N, C, F, train)); // [B, T, 4C/tp]
  t.dispose(ln2.y);
  const act = named('mlp.gelu', () => L.gelu(t, fc.y, N * F, train));
  t.dispose(fc.y);
  const mlp = named('mlp.c_proj', () => L.linear(t, act.y, N, F, C, train));
  t.dispose(act.y);
  let y: Ref;
  if (tp) {
    const mlpSum = named('mlp.c_proj', () => allReduced(t, 'all-reduced [N,C]', N * C));
    t.dispose(mlp.y);
    y = residual('y');
    t.dispose(x2, mlpSum);
  } else {
    y = residual('y');
    t.dispose(x2, mlp.y);
  }
  if (!train) return { y, saved: null };
  const parts = [ln1, qkv, attn, proj, ln2, fc, act, mlp].map((p) => p.saved!);
  const saved = new TracedSaved(t, parts.flatMap((p) => p.refs), (dy) => {
    const bwd = (i: number, g: Ref | null): TracedBackward => t.named(`block.${PARTS[i]}.backward`, () => parts[i].backward(g));
    /**
     * One residual branch backward, parts first..first+3 (layernorm, input linear, attention or
     * GELU, output linear) in reverse: each gradient freed after its last use, the input linear's
     * dx all-reduced under tensor parallelism, then the residual's dx.
     */
    const branch = (first: number, inLinear: string, dxLabel: string, g: Ref | null): { dx: Ref; grads: TracedBackward[] } => {
      const outB = bwd(first + 3, g);
      const midB = bwd(first + 2, outB.dx);
      t.dispose(outB.dx);
      const inB = bwd(first + 1, midB.dx);
      t.dispose(midB.dx);
      const inDx = tp ? t.named(`block.${inLinear}.backward`, () => allReduced(t, 'all-reduced dx [N,C]', N * C)) : inB.dx;
      if (tp) t.dispose(inB.dx);
      const lnB = bwd(first, inDx);
      t.dispose(inDx);
      const dx = t.named('block.residual.backward', () => t.alloc(`${dxLabel} [N,C]`, N * C));
      t.dispose(lnB.dx);
      return { dx, grads: [outB, midB, inB, lnB] };
    };
    const mlpHalf = branch(4, 'mlp.c_fc', 'dx2', dy);
    const attnHalf = branch(0, 'attn.c_attn', 'dx', mlpHalf.dx);
    t.dispose(mlpHalf.dx);
    saved.release();
    return { dx: attnHalf.dx, grads: [...mlpHalf.grads, ...attnHalf.grads].flatMap((b) => b.grads) };
  });
  return { y, saved };
}

/** The embedding segment: token ids -> x [B,T,C] (vocab-parallel for tp > 1). */
export function embeddingForward(t: MemoryTrace, L: LayerTraces, d: SegmentDims, train: boolean): TracedForward {
  const f = t.named('embedding', () => (d.tp > 1 ? L.vocabParallelEmbedding(t, d, d.C, d.V, d.ctx, train) : L.embedding(t, d, d.C, d.V, d.ctx, train)));
  const s = f.saved;
  return { y: f.y, saved: s && new TracedSaved(t, s.refs, (dy) => t.named('embedding.backward', () => s.backward(dy))) };
}

/** The head segment: x [B,T,C] -> ln_f -> tied head and loss (vocab-parallel for tp > 1). */
export function headForward(t: MemoryTrace, L: LayerTraces, x: Ref, d: SegmentDims, train: boolean): TracedLoss {
  const { N, C } = d;
  const lnf = t.named('head.ln_f', () => L.layerNorm(t, x, N, C, train));
  const head = t.named('head.lm_head', () => (d.tp > 1 ? L.vocabParallelHead(t, lnf.y, N, C, d.V, train) : L.head(t, lnf.y, N, C, d.V, train)));
  t.dispose(lnf.y);
  if (!train) return { saved: null };
  const sLnf = lnf.saved!;
  const sHead = head.saved!;
  const saved = new TracedSaved(t, [...sLnf.refs, ...sHead.refs], () => {
    const hb = t.named('head.lm_head.backward', () => sHead.backward(null));
    const lb = t.named('head.ln_f.backward', () => sLnf.backward(hb.dx));
    t.dispose(hb.dx);
    return { dx: lb.dx, grads: [...hb.grads, ...lb.grads] };
  });
  return { saved };
}
