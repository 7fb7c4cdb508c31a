import { decodeBf16, decodeFp16, encodeBf16, encodeFp16 } from '@trainer/comm';
import { adamwUpdate } from '../adamw.js';
import type { CollectiveGroup, GradBuffer, ReduceGroup, TensorLike, WireCodec } from '../interfaces.js';
import { Fp32Store, makeStore, type VectorStore } from '../precision/vector-store.js';
import { BucketPool } from '../zero/bucket-pool.js';
import type { AdamWStep, Device, OuterPieceState, OuterStep, PieceOptimizerState, Precision, Range } from './device.js';

/**
 * State in host memory, for the 'host' kernel set (wasm, cpu), whose kernels read host memory
 * anyway: fp32 vectors are Float32Arrays, 16-bit ones their codes (VectorStore), the update is
 * adamw.ts's loop, and collectives run on the arrays in place. Gradient buffers come from a pool
 * that reuses them by length (no fresh MiB-sized arrays per step).
 */
class HostGradBuffer implements GradBuffer {
  constructor(readonly host: Float32Array) {}

  add(offset: number, g: Float32Array | TensorLike): void {
    if (!(g instanceof Float32Array)) throw new Error('internal: the host device was handed a tensor gradient (host kernels return arrays)');
    const d = this.host;
    for (let i = 0; i < g.length; i++) d[offset + i] += g[i];
  }
}

function hostBuffer(buf: GradBuffer): HostGradBuffer {
  if (!(buf instanceof HostGradBuffer)) throw new Error('internal: a gradient buffer of another device');
  return buf;
}

export class HostDevice implements Device<VectorStore, number> {
  readonly kind = 'host' as const;
  private readonly pool = new BucketPool();
  /** Pool buffers adopted by vectors (flatten), returned when the vector is disposed. */
  private readonly lent = new WeakSet<Float32Array>();

  zeros(length: number, precision: Precision): VectorStore {
    return makeStore(precision, length);
  }

  fromHost(values: Float32Array, precision: Precision): VectorStore {
    return precision === 'fp32' ? new Fp32Store(values) : makeStore(precision, values.length, values);
  }

  toHost(v: VectorStore, start = 0, end = v.length): Promise<Float32Array> {
    return Promise.resolve(v.precision === 'fp32' ? v.read(start, end).slice() : v.read(start, end));
  }

  length(v: VectorStore): number {
    return v.length;
  }

  bytes(v: VectorStore): number {
    return v.bytes;
  }

  slice(v: VectorStore, start: number, end: number): VectorStore {
    const values = v.read(start, end);
    return makeStore(v.precision, end - start, values);
  }

  add(acc: VectorStore, x: VectorStore): VectorStore {
    acc.add(0, x.read(0, x.length));
    return acc;
  }

  toPrecision(v: VectorStore, precision: Precision): VectorStore {
    if (v.precision === precision) return v;
    const out = makeStore(precision, v.length, v.read(0, v.length));
    this.dispose(v);
    return out;
  }

  rounded(v: VectorStore, precision: Precision): VectorStore {
    const values = v.read(0, v.length).slice();
    if (precision !== 'fp32') roundInPlace(values, precision);
    return new Fp32Store(values);
  }

  computeValues(v: VectorStore): Float32Array {
    return v.read(0, v.length);
  }

  dispose(v: VectorStore): void {
    if (v instanceof Fp32Store && this.lent.has(v.data)) {
      this.lent.delete(v.data);
      this.pool.give(v.data);
    }
  }

  release(): void {}

  /** Host arrays are what the wire encodes: nothing to prepare. */
  prepareWire(): Promise<void> {
    return Promise.resolve();
  }

  readonly wireFallback = null;

  gradBuffer(length: number): GradBuffer {
    return new HostGradBuffer(this.pool.take(length));
  }

  flatten(buf: GradBuffer, precision: Precision): VectorStore {
    const b = hostBuffer(buf);
    if (precision === 'fp32') {
      this.lent.add(b.host); // adopted: back to the pool when the vector is disposed
      return new Fp32Store(b.host);
    }
    const store = makeStore(precision, b.host.length, b.host);
    this.pool.give(b.host);
    return store;
  }

  dropGradBuffer(buf: GradBuffer): void {
    this.pool.give(hostBuffer(buf).host);
  }

  get gradBufferBytes(): number {
    return this.pool.allocatedBytes;
  }

  sumOfSquares(v: VectorStore, start: number, end: number): number {
    return v.sumOfSquares(start, end);
  }

  total(parts: readonly number[]): Promise<number> {
    let s = 0;
    for (const x of parts) s += x;
    return Promise.resolve(s);
  }

  adamw(state: PieceOptimizerState<VectorStore>, grad: VectorStore, decay: readonly Range[], h: AdamWStep): void {
    const n = grad.length;
    // A view for fp32 (scaled in place: the gradient is dead after the update), a decoded copy for 16 bits.
    adamwUpdate(fp32(state.master), fp32(state.m), fp32(state.v), grad.read(0, n), decay, h);
  }

  difference(a: VectorStore, b: VectorStore): VectorStore {
    const x = a.read(0, a.length);
    const y = b.read(0, b.length);
    const out = new Float32Array(x.length);
    for (let i = 0; i < out.length; i++) out[i] = x[i] - y[i];
    return new Fp32Store(out);
  }

  outerNesterov(state: OuterPieceState<VectorStore>, delta: VectorStore, h: OuterStep): void {
    const anchor = fp32(state.anchor);
    const buf = fp32(state.momentum);
    const d = delta.read(0, delta.length);
    // Float32 arithmetic step by step, as the tf kernels compute it (Math.fround after every operation).
    const f = Math.fround;
    const lr = f(h.lr);
    const mu = f(h.momentum);
    const scale = f(h.scale);
    for (let i = 0; i < anchor.length; i++) {
      const g = f(d[i] * scale);
      const m = f(f(mu * buf[i]) + g);
      buf[i] = m;
      anchor[i] = f(anchor[i] - f(lr * f(g + f(mu * m))));
    }
    this.dispose(delta);
  }

  async allReduce(v: VectorStore, group: ReduceGroup, codec: WireCodec): Promise<VectorStore> {
    return this.allReduceRange(v, 0, v.length, group, codec);
  }

  async allReduceRange(v: VectorStore, start: number, end: number, group: ReduceGroup, codec: WireCodec): Promise<VectorStore> {
    if (group.size === 1 || end <= start) return v;
    const values = v.read(start, end); // a view for fp32: reduced in place
    await group.allReduce(values, { op: 'sum', codec });
    if (v.precision !== 'fp32') v.write(start, values);
    return v;
  }

  async reduceScatter(v: VectorStore, group: CollectiveGroup, codec: WireCodec, precision: Precision): Promise<VectorStore> {
    const mine = await group.reduceScatter(v.read(0, v.length), { op: 'sum', codec });
    const out = makeStore(precision, mine.length, mine); // a copy: v's memory goes back to the pool
    this.dispose(v);
    return out;
  }

  async allGather(own: VectorStore, length: number, group: CollectiveGroup, codec: WireCodec): Promise<VectorStore> {
    return new Fp32Store(await group.allGather(own.read(0, own.length), length, { codec }));
  }
}

function fp32(v: VectorStore): Float32Array {
  if (!(v instanceof Fp32Store)) throw new Error('internal: optimizer state must be fp32');
  return v.data;
}

const ROUND_CHUNK = 1 << 16;
const codes = new Uint16Array(ROUND_CHUNK);

/** Rounds fp32 values to the nearest bf16/fp16 value (ties to even), in place. */
export function roundInPlace(values: Float32Array, precision: 'bf16' | 'fp16'): void {
  const encode = precision === 'bf16' ? encodeBf16 : encodeFp16;
  const decode = precision === 'bf16' ? decodeBf16 : decodeFp16;
  for (let at = 0; at < values.length; at += ROUND_CHUNK) {
    const part = values.subarray(at, Math.min(values.length, at + ROUND_CHUNK));
    const c = codes.subarray(0, part.length);
    encode(part, c);
    decode(c, part);
  }
}
