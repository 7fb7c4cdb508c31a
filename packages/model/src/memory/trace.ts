/**
 * A replay of the backend allocations of a model call, from shapes alone.
 *
 * The activation model (activation-memory.ts) fits no constant: it runs each layer's code path
 * again on this ledger, one line per TF.js tensor the real code creates, shares or disposes,
 * with the tensor's exact byte size. The ledger follows buffers as the memory meter
 * (device/memory-meter.ts) does: a tensor is a handle (Ref) on a buffer; a reshape or share()
 * adds a handle to the same buffer (no bytes); a buffer is freed with its last handle; tf.tidy
 * disposes every handle created inside it but the ones it returns. The most bytes alive at once
 * is then a max over the moments of a fixed sequence (a closed form in the shapes), and the
 * buffers alive at that moment say what the peak is made of.
 *
 * Not counted (the meter does not see them either): scratch that a backend kernel allocates and
 * frees inside one kernel (the cpu backend's softmax temporaries, a GPU's cuBLAS workspace).
 *
 * On TensorFlow (tfjs-node) the replay follows TensorFlow's own buffers, where a meter of TF.js
 * tensors would differ: a reshape or a same-dtype cast there is a new handle on the same
 * TensorFlow buffer (counted once here), and its kernels make small int32 attribute tensors
 * (axes, permutations, shapes: a few bytes each, freed inside the kernel; not counted).
 */

/** The backend whose buffer semantics the replay follows (they differ only in tf.cast). */
export type TraceBackend = 'wasm' | 'cpu' | 'tensorflow';

/** Element dtypes (TF.js: bool 1 byte per element, int32 and float32 4). */
export type Dtype = 'float32' | 'int32' | 'bool';
const BYTES: Record<Dtype, number> = { float32: 4, int32: 4, bool: 1 };

interface Buffer {
  readonly label: string;
  readonly bytes: number;
  refs: number;
}

/** A tensor handle: one TF.js tensor of the modelled code. */
export interface Ref {
  readonly buffer: Buffer;
  readonly dtype: Dtype;
  disposed: boolean;
}

/** A buffer alive at some moment: which tensor, how many bytes. */
export interface TensorBytes {
  tensor: string;
  bytes: number;
}

export class MemoryTrace {
  private readonly alive = new Set<Buffer>();
  /** Bytes of the buffers alive now (those that existed before the mark included). */
  private live = 0;
  private base = 0;
  private peak = 0;
  private before = new Set<Buffer>();
  private atPeak: Buffer[] = [];
  private peakLabel = '';
  private readonly scopes: Ref[][] = [];
  private readonly names: string[] = [];

  constructor(readonly backend: TraceBackend) {}

  /** A new buffer of `elements` elements (an op's output, an upload). */
  alloc(label: string, elements: number, dtype: Dtype = 'float32'): Ref {
    const buffer: Buffer = { label: this.names.length ? `${this.names.join('.')}: ${label}` : label, bytes: elements * BYTES[dtype], refs: 1 };
    this.alive.add(buffer);
    this.live += buffer.bytes;
    if (this.live > this.peak) {
      this.peak = this.live;
      this.atPeak = [...this.alive].filter((b) => !this.before.has(b));
      this.peakLabel = buffer.label;
    }
    return this.track({ buffer, dtype, disposed: false });
  }

  /** A new handle on the same buffer (tf.reshape, tf.expandDims, layer.ts's share()). */
  share(r: Ref, dtype: Dtype = r.dtype): Ref {
    if (r.disposed) throw new Error(`internal: trace shares disposed ${r.buffer.label}`);
    r.buffer.refs++;
    return this.track({ buffer: r.buffer, dtype, disposed: false });
  }

  /**
   * tf.cast: the cpu backend returns its input's buffer when nothing is lost (to float32, or to
   * int32 from int32 / bool); TensorFlow forwards its input when the dtype stays; wasm copies.
   */
  cast(label: string, r: Ref, elements: number, dtype: Dtype): Ref {
    const shares =
      this.backend === 'cpu'
        ? dtype === 'float32' || r.dtype === dtype || (dtype === 'int32' && r.dtype === 'bool')
        : this.backend === 'tensorflow' && r.dtype === dtype;
    return shares ? this.share(r, dtype) : this.alloc(label, elements, dtype);
  }

  dispose(...refs: (Ref | null | undefined)[]): void {
    for (const r of refs) {
      if (!r || r.disposed) continue;
      r.disposed = true;
      if (--r.buffer.refs > 0) continue;
      this.alive.delete(r.buffer);
      this.live -= r.buffer.bytes;
    }
  }

  /** tf.tidy: disposes every handle created in `fn` but those it returns. */
  tidy<T extends Ref | Ref[]>(fn: () => T): T {
    this.scopes.push([]);
    let out: T | undefined;
    try {
      out = fn();
      return out;
    } finally {
      const created = this.scopes.pop()!;
      const kept = new Set(out === undefined ? [] : Array.isArray(out) ? out : [out]);
      for (const r of created) if (!kept.has(r)) this.dispose(r);
      if (this.scopes.length) this.scopes[this.scopes.length - 1].push(...kept);
    }
  }

  /** Runs `fn` with allocation labels prefixed by `name` (the layer: 'block.attn.c_attn'). */
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
    this.before = new Set(this.alive);
    this.atPeak = [];
    this.peakLabel = '';
  }

  /** Bytes alive now above the mark. */
  now(): number {
    return this.live - this.base;
  }

  /** The most bytes alive at once since the mark, above it. */
  peakAbove(): number {
    return this.peak - this.base;
  }

  /** The allocation that reached the peak since the mark ('' if nothing rose above it). */
  peakAt(): string {
    return this.peakLabel;
  }

  /** The buffers allocated since the mark and alive at its peak, largest first. */
  peakTensors(): TensorBytes[] {
    return describe(this.atPeak);
  }

  /** The buffers allocated since the mark and alive now (but `except`'s), largest first. */
  newTensors(except: (Ref | null)[] = []): TensorBytes[] {
    const skip = new Set(except.map((r) => r?.buffer));
    return describe([...this.alive].filter((b) => !this.before.has(b) && !skip.has(b)));
  }

  private track(r: Ref): Ref {
    if (this.scopes.length) this.scopes[this.scopes.length - 1].push(r);
    return r;
  }
}

function describe(buffers: Buffer[]): TensorBytes[] {
  return buffers.map((b) => ({ tensor: b.label, bytes: b.bytes })).sort((a, b) => b.bytes - a.bytes);
}
