/**
 * A replay of the backend allocations of a model call, from shapes alone.
 *
 * The activation model (activation-memory.ts) does not fit constants: it runs each layer's code
 * path again on this ledger, one line per TF.js tensor the real code creates, shares or
 * disposes, with the tensor's exact byte size. The ledger follows buffers the way the memory
 * meter (device/memory-meter.ts) does: a tensor is a handle (Ref) on a buffer; a reshape or
 * `share()` adds a handle to the same buffer (no bytes); a buffer is freed when its last handle
 * is disposed; tf.tidy disposes every handle created inside it except the ones returned. So
 * the most bytes alive at once is a max over the moments of a fixed sequence: a closed form in
 * the shapes, and the label of the allocation that reached it says where the peak is.
 *
 * What is not counted (as the meter does not count it): scratch a backend kernel allocates and
 * frees inside one kernel (e.g. the cpu backend's softmax temporaries, cuBLAS workspace).
 */

/** The backend whose buffer semantics the replay follows (they differ only in tf.cast). */
export type TraceBackend = 'wasm' | 'cpu' | 'tensorflow';

/** Element dtypes and their bytes per element (TF.js: bool is 1 byte, int32 and float32 4). */
export type Dtype = 'float32' | 'int32' | 'bool';
const BYTES: Record<Dtype, number> = { float32: 4, int32: 4, bool: 1 };

/** Bytes of a tensor of `elements` elements of `dtype`. */
export function bytesOf(elements: number, dtype: Dtype = 'float32'): number {
  return elements * BYTES[dtype];
}

interface Buffer {
  readonly label: string;
  readonly bytes: number;
  refs: number;
}

/** A tensor handle: a TF.js tensor of the modelled code. */
export interface Ref {
  readonly buffer: Buffer;
  readonly dtype: Dtype;
  disposed: boolean;
}

export class MemoryTrace {
  /** Bytes of the buffers alive now (those that existed before included). */
  private live = 0;
  private peak = 0;
  private peakLabel = '';
  private base = 0;
  private readonly scopes: Ref[][] = [];
  private readonly names: string[] = [];

  constructor(readonly backend: TraceBackend) {}

  /** A new buffer of `elements` elements (an op's output, an upload). */
  alloc(label: string, elements: number, dtype: Dtype = 'float32'): Ref {
    return this.newBuffer(label, bytesOf(elements, dtype), dtype);
  }

  /** A new handle on the same buffer (tf.reshape, tf.expandDims, layer.ts's share()). */
  share(r: Ref, dtype: Dtype = r.dtype): Ref {
    if (r.disposed) throw new Error(`trace: share of disposed ${r.buffer.label}`);
    r.buffer.refs++;
    return this.track({ buffer: r.buffer, dtype, disposed: false });
  }

  /**
   * tf.cast: the cpu backend returns the input's buffer when nothing is lost (to float32, or
   * int32 from bool/int32); TensorFlow forwards its input when the dtype does not change; the
   * wasm backend always copies.
   */
  cast(label: string, r: Ref, elements: number, dtype: Dtype): Ref {
    const shares =
      this.backend === 'cpu' ? dtype === 'float32' || (dtype === 'int32' && r.dtype !== 'float32') || r.dtype === dtype : this.backend === 'tensorflow' && r.dtype === dtype;
    return shares ? this.share(r, dtype) : this.alloc(label, elements, dtype);
  }

  dispose(...refs: (Ref | null | undefined)[]): void {
    for (const r of refs) {
      if (!r || r.disposed) continue;
      r.disposed = true;
      if (--r.buffer.refs === 0) this.live -= r.buffer.bytes;
    }
  }

  /** tf.tidy: disposes every handle created in `fn` but those it returns. */
  tidy<T extends Ref | Ref[]>(fn: () => T): T {
    this.scopes.push([]);
    let out: T;
    try {
      out = fn();
    } finally {
      const created = this.scopes.pop()!;
      const kept = new Set(Array.isArray(out!) ? out : [out!]);
      for (const r of created) if (!kept.has(r)) this.dispose(r);
      if (this.scopes.length) for (const r of kept) this.scopes[this.scopes.length - 1].push(r);
    }
    return out;
  }

  /** Runs `fn` with allocation labels prefixed by `name` (the layer: 'h.attn.c_attn'). */
  named<T>(name: string, fn: () => T): T {
    this.names.push(name);
    try {
      return fn();
    } finally {
      this.names.pop();
    }
  }

  /** Starts a measured interval at the current level. */
  mark(): void {
    this.base = this.live;
    this.peak = this.live;
    this.peakLabel = '';
  }

  /** Bytes alive now above the mark. */
  now(): number {
    return this.live - this.base;
  }

  /** The most bytes alive at once since the mark, above it, and the allocation that reached it. */
  peakAbove(): { bytes: number; at: string } {
    return { bytes: this.peak - this.base, at: this.peakLabel };
  }

  private newBuffer(label: string, bytes: number, dtype: Dtype): Ref {
    const full = this.names.length ? `${this.names.join('.')}: ${label}` : label;
    this.live += bytes;
    if (this.live > this.peak) {
      this.peak = this.live;
      this.peakLabel = full;
    }
    return this.track({ buffer: { label: full, bytes, refs: 1 }, dtype, disposed: false });
  }

  private track(r: Ref): Ref {
    if (this.scopes.length) this.scopes[this.scopes.length - 1].push(r);
    return r;
  }
}
