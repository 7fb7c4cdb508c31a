/**
 * The layer contract of layers/layer.ts, replayed on a MemoryTrace: each kernel set's layers
 * (host-layer-traces.ts, tf-layer-traces.ts) as functions of shapes that allocate, share and
 * dispose exactly what the real layer does, in the same order.
 *
 *   forward(t, x, dims, train)  -> { y, saved }      saved null with train = false
 *   saved.backward(dy)          -> { dx, grads }     grads: tensors handed to the caller (tf kernels)
 */
import type { MemoryTrace, Ref } from './trace.js';

export interface TracedBackward {
  /** The input gradient (null for the embedding). */
  dx: Ref | null;
  /** Parameter gradients left on the backend for the caller (tf kernels); host kernels download theirs. */
  grads: Ref[];
}

/** What a traced forward keeps, and its backward (which releases it where the real one does). */
export class TracedSaved {
  constructor(
    private readonly t: MemoryTrace,
    readonly refs: Ref[],
    private readonly run: (dy: Ref | null) => TracedBackward,
  ) {}

  backward(dy: Ref | null): TracedBackward {
    return this.run(dy);
  }

  /** Disposes the kept handles (idempotent, like SavedState.release). */
  release(): void {
    this.t.dispose(...this.refs);
  }
}

export interface TracedForward {
  y: Ref;
  saved: TracedSaved | null;
}

/** The head's forward: no output, the saved state only (the loss scalar is read and freed). */
export interface TracedLoss {
  saved: TracedSaved | null;
}

/** Block-level sizes: B sequences of T tokens, N = B * T rows. */
export interface Rows {
  B: number;
  T: number;
  N: number;
}

/** One kernel set's layers on a trace. Widths are this rank's (local) sizes. */
export interface LayerTraces {
  layerNorm(t: MemoryTrace, x: Ref, N: number, C: number, train: boolean): TracedForward;
  linear(t: MemoryTrace, x: Ref, N: number, inDim: number, outDim: number, train: boolean): TracedForward;
  /** qkv [B, T, 3 H hs] -> [B, T, H hs]. */
  attention(t: MemoryTrace, qkv: Ref, r: Rows, H: number, hs: number, train: boolean): TracedForward;
  gelu(t: MemoryTrace, x: Ref, n: number, train: boolean): TracedForward;
  /** tokens -> [B, T, C]; wte [V, C], wpe [ctx, C]. */
  embedding(t: MemoryTrace, r: Rows, C: number, V: number, ctx: number, train: boolean): TracedForward;
  /** x [N, C] -> loss; the head tied to wte [V, C]. */
  head(t: MemoryTrace, x: Ref, N: number, C: number, V: number, train: boolean): TracedLoss;
  /** The vocab-parallel embedding of a rank holding Vt rows of wte. */
  vocabParallelEmbedding(t: MemoryTrace, r: Rows, C: number, Vt: number, ctx: number, train: boolean): TracedForward;
  /** The vocab-parallel head of a rank holding Vt rows of wte. */
  vocabParallelHead(t: MemoryTrace, x: Ref, N: number, C: number, Vt: number, train: boolean): TracedLoss;
}

/**
 * allReduceTensor over a group of more than one rank (tensor-parallel/mappings.ts): the tensor
 * is downloaded (host memory) and the sum uploaded as a new tensor.
 */
export function allReduced(t: MemoryTrace, label: string, elements: number): Ref {
  return t.alloc(label, elements);
}
