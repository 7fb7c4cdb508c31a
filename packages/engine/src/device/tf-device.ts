import * as tf from '@tensorflow/tfjs-core';
import { shardRange } from '@trainer/comm';
import { constant } from '@trainer/model';
import type { CollectiveGroup, GradBuffer, ReduceGroup, TensorLike, WireCodec } from '../interfaces.js';
import type { AdamWStep, Device, OuterPieceState, OuterStep, PieceOptimizerState, Precision, Range } from './device.js';
import { outerNesterovTf } from './outer-nesterov-tf.js';
import { decayMask } from './decay-mask.js';
import { roundInPlace } from './host-device.js';
import { roundOnDevice } from './device-rounding.js';
import { adamwOnWebGpu, fusedAdamWAvailable } from './webgpu-adamw.js';
import { downloadAsCodes, uploadAsCodes, verifyWireCodes, type HalfFormat } from './wire-codes.js';

/**
 * State as TF.js tensors on the active backend, for the 'tf' kernel set: on tfjs-node-gpu the
 * master weights, AdamW's moments and the gradients live in GPU memory, and the update is a
 * handful of element-wise kernels per piece. Values cross to the host only inside the
 * collectives, and only the bytes the wire needs: a reduce-scatter downloads the other ranks'
 * pieces (its own piece's sum is uploaded and added on the device), an fp32 all-gather downloads
 * this rank's piece and uploads the others'. Reads are awaited (`data()`), never synchronous.
 *
 * TF.js has no 16-bit float dtype: a bf16/fp16 vector is an fp32 tensor whose values are
 * rounded to the format (device-rounding.ts). Such a vector crosses to and from the host as its
 * 16-bit wire codes, packed on the device (wire-codes.ts), once prepareWire has checked that the
 * backend computes them exactly: a 16-bit collective moves 2 bytes per element each way.
 */
export class DeviceVector {
  constructor(readonly t: tf.Tensor1D, readonly precision: Precision) {}
}

/** Backward's gradient of one unit: one tensor per parameter (by offset), summed as they come. */
class TfGradBuffer implements GradBuffer {
  readonly entries = new Map<number, tf.Tensor1D>();

  constructor(readonly length: number, private readonly live: LiveBytes) {}

  add(offset: number, g: Float32Array | TensorLike): void {
    const flat: tf.Tensor1D = g instanceof Float32Array ? tf.tensor1d(g) : reshape1d(g as tf.Tensor);
    if (!(g instanceof Float32Array)) (g as tf.Tensor).dispose();
    const had = this.entries.get(offset);
    if (had) {
      if (had.size !== flat.size) throw new Error(`internal: gradient at offset ${offset} has ${flat.size} elements, ${had.size} before`);
      this.entries.set(offset, tf.add(had, flat));
      had.dispose();
      flat.dispose();
      return;
    }
    if (offset + flat.size > this.length) throw new Error(`internal: gradient [${offset}, ${offset + flat.size}) outside a unit of ${this.length}`);
    this.entries.set(offset, flat);
    this.live.change(4 * flat.size);
  }

  dispose(): void {
    for (const t of this.entries.values()) {
      this.live.change(-4 * t.size);
      t.dispose();
    }
    this.entries.clear();
  }
}

/** Bytes of gradient entries alive, and the most at once. */
class LiveBytes {
  now = 0;
  peak = 0;
  change(delta: number): void {
    this.now += delta;
    if (this.now > this.peak) this.peak = this.now;
  }
}

/**
 * A tensor of host values. The cpu backend adopts the array it is given: a view would keep its
 * whole buffer alive (and share it), so views are copied there.
 */
function uploadFp32(values: Float32Array): tf.Tensor1D {
  const view = values.byteOffset !== 0 || values.byteLength !== values.buffer.byteLength;
  return tf.tensor1d(view && tf.getBackend() === 'cpu' ? values.slice() : values);
}

function reshape1d(t: tf.Tensor): tf.Tensor1D {
  return tf.reshape(t, [t.size]) as tf.Tensor1D;
}

function tfBuffer(buf: GradBuffer): TfGradBuffer {
  if (!(buf instanceof TfGradBuffer)) throw new Error('internal: a gradient buffer of another device');
  return buf;
}

/** The per-step scalars of one AdamW update, uploaded once and shared by every piece. */
interface AdamWScalars {
  gradFactor: tf.Scalar;
  stepSize: tf.Scalar;
  invSqrtBc2: tf.Scalar;
  decay: tf.Scalar;
  dispose(): void;
}

export class TfDevice implements Device<DeviceVector, tf.Scalar> {
  readonly kind = 'tf' as const;
  /** Gradient bytes alive: buffers' entries, and flattened gradients until disposed. */
  private readonly live = new LiveBytes();
  private readonly flattened = new WeakSet<tf.Tensor>();
  private stepScalars: { h: AdamWStep; s: AdamWScalars } | null = null;
  /** Resolves once the last collective asked for has been issued (inOrder). */
  private issueQueue: Promise<void> = Promise.resolve();
  /** The 16-bit formats that cross the boundary as codes (prepareWire). */
  private readonly wireCodes = new Set<HalfFormat>();
  /** Why a 16-bit codec's values cross as fp32 instead (a backend that failed the code check). */
  wireFallback: string | null = null;

  async prepareWire(codec: WireCodec): Promise<void> {
    if (codec === 'fp32' || this.wireCodes.has(codec)) return;
    const key = `${tf.getBackend()}|${codec}`;
    let verdict = wireVerdicts.get(key);
    if (verdict === undefined) {
      verdict = await verifyWireCodes(codec);
      wireVerdicts.set(key, verdict);
    }
    if (verdict === null) this.wireCodes.add(codec);
    else this.wireFallback = `${codec} codes on the ${tf.getBackend()} backend: ${verdict}; ${codec} collectives move fp32 across the host boundary`;
  }

  zeros(length: number, precision: Precision): DeviceVector {
    return new DeviceVector(tf.fill([length], 0) as tf.Tensor1D, precision); // a kernel: nothing uploaded
  }

  fromHost(values: Float32Array, precision: Precision): DeviceVector {
    if (precision !== 'fp32') {
      values = values.slice();
      roundInPlace(values, precision);
    }
    return new DeviceVector(tf.tensor1d(values), precision);
  }

  async toHost(v: DeviceVector, start = 0, end = v.t.size): Promise<Float32Array> {
    const part = start === 0 && end === v.t.size ? v.t : tf.slice(v.t, [start], [end - start]);
    try {
      const values = (await part.data()) as Float32Array;
      // The cpu backend hands out its own storage: copy before anyone writes into it.
      return tf.getBackend() === 'cpu' ? values.slice() : values;
    } finally {
      if (part !== v.t) part.dispose();
    }
  }

  length(v: DeviceVector): number {
    return v.t.size;
  }

  bytes(v: DeviceVector): number {
    return 4 * v.t.size;
  }

  slice(v: DeviceVector, start: number, end: number): DeviceVector {
    return new DeviceVector(tf.slice(v.t, [start], [end - start]), v.precision);
  }

  add(acc: DeviceVector, x: DeviceVector): DeviceVector {
    const sum = tf.add(acc.t, x.t) as tf.Tensor1D;
    this.dispose(acc);
    return this.stored(sum, acc.precision);
  }

  toPrecision(v: DeviceVector, precision: Precision): DeviceVector {
    if (v.precision === precision) return v;
    const out = precision === 'fp32' ? tf.clone(v.t) : (roundOnDevice(v.t, precision, constant) as tf.Tensor1D);
    this.dispose(v);
    return new DeviceVector(out, precision);
  }

  rounded(v: DeviceVector, precision: Precision): DeviceVector {
    return new DeviceVector(precision === 'fp32' ? tf.clone(v.t) : (roundOnDevice(v.t, precision, constant) as tf.Tensor1D), 'fp32');
  }

  difference(a: DeviceVector, b: DeviceVector): DeviceVector {
    return new DeviceVector(tf.sub(a.t, b.t) as tf.Tensor1D, 'fp32');
  }

  outerNesterov(state: OuterPieceState<DeviceVector>, delta: DeviceVector, h: OuterStep): void {
    const next = outerNesterovTf(state.anchor.t, state.momentum.t, delta.t, h);
    for (const v of [state.anchor, state.momentum, delta]) this.dispose(v);
    state.anchor = new DeviceVector(next.anchor, 'fp32');
    state.momentum = new DeviceVector(next.momentum, 'fp32');
  }

  computeValues(v: DeviceVector): tf.Tensor1D {
    return v.t;
  }

  dispose(v: DeviceVector): void {
    if (this.flattened.has(v.t)) {
      this.flattened.delete(v.t);
      this.live.change(-4 * v.t.size);
    }
    v.t.dispose();
  }

  release(): void {
    this.stepScalars?.s.dispose();
    this.stepScalars = null;
  }

  gradBuffer(length: number): GradBuffer {
    return new TfGradBuffer(length, this.live);
  }

  flatten(buf: GradBuffer, precision: Precision): DeviceVector {
    const b = tfBuffer(buf);
    // The entries in offset order, zeros where a parameter got no gradient.
    const parts: tf.Tensor1D[] = [];
    const zeros: tf.Tensor1D[] = [];
    const gap = (n: number) => parts.push(zeros[zeros.push(tf.fill([n], 0) as tf.Tensor1D) - 1]);
    let pos = 0;
    for (const offset of [...b.entries.keys()].sort((x, y) => x - y)) {
      const t = b.entries.get(offset)!;
      if (offset > pos) gap(offset - pos);
      parts.push(t);
      pos = offset + t.size;
    }
    if (pos < b.length) gap(b.length - pos);
    const flat = parts.length === 1 ? tf.clone(parts[0]) : (tf.concat(parts) as tf.Tensor1D);
    tf.dispose(zeros);
    b.dispose();
    const out = this.stored(flat, precision);
    this.flattened.add(out.t);
    this.live.change(4 * out.t.size);
    return out;
  }

  dropGradBuffer(buf: GradBuffer): void {
    tfBuffer(buf).dispose();
  }

  get gradBufferBytes(): number {
    return this.live.peak;
  }

  sumOfSquares(v: DeviceVector, start: number, end: number): tf.Scalar {
    return tf.tidy(() => tf.sum(tf.square(start === 0 && end === v.t.size ? v.t : tf.slice(v.t, [start], [end - start]))));
  }

  async total(parts: readonly tf.Scalar[]): Promise<number> {
    const t = tf.addN([constant(0), ...parts]);
    tf.dispose([...parts]);
    try {
      return (await t.data())[0];
    } finally {
      t.dispose();
    }
  }

  /**
   * AdamW as element-wise kernels (adamw.ts has the math):
   *   g = grad * factor;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
   *   p = p - lr wd mask p - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
   * with mask 1 on the decay ranges, built per call from fills (no persistent mask memory).
   * Every intermediate is freed as soon as the next one exists, and each old state as its new
   * one is made, so at most ADAMW_TEMPORARIES piece-sized tensors exist beside the state (three,
   * and the scaled gradient when clipping or a loss scale applies; the memory planner counts them).
   */
  adamw(state: PieceOptimizerState<DeviceVector>, grad: DeviceVector, decay: readonly Range[], h: AdamWStep): void {
    if (fusedAdamWAvailable()) {
      // WebGPU: three fused WGSL programs (webgpu-adamw.ts)
      const mask = h.weightDecay !== 0 ? decayMask(decay, grad.t.size) : null;
      const next = adamwOnWebGpu({ p: state.master.t, m: state.m.t, v: state.v.t }, grad.t, mask, h);
      tf.dispose([state.master.t, state.m.t, state.v.t, ...(mask ? [mask] : [])]);
      state.master = new DeviceVector(next.p, 'fp32');
      state.m = new DeviceVector(next.m, 'fp32');
      state.v = new DeviceVector(next.v, 'fp32');
      return;
    }
    const s = this.scalarsFor(h);
    const n = grad.t.size;
    const g = h.gradFactor === 1 ? grad.t : tf.mul(grad.t, s.gradFactor);
    // m = b1 m + (1 - b1) g
    const bm = tf.mul(state.m.t, constant(h.beta1));
    const gm = tf.mul(g, constant(1 - h.beta1));
    const m = tf.add(bm, gm) as tf.Tensor1D;
    tf.dispose([bm, gm, state.m.t]);
    state.m = new DeviceVector(m, 'fp32');
    // v = b2 v + (1 - b2) g^2
    const sq = tf.square(g);
    const gv = tf.mul(sq, constant(1 - h.beta2));
    sq.dispose();
    if (g !== grad.t) g.dispose();
    const bv = tf.mul(state.v.t, constant(h.beta2));
    const v = tf.add(bv, gv) as tf.Tensor1D;
    tf.dispose([bv, gv, state.v.t]);
    state.v = new DeviceVector(v, 'fp32');
    // update = (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
    const root = tf.sqrt(v);
    const scaled = tf.mul(root, s.invSqrtBc2);
    root.dispose();
    const denom = tf.add(scaled, constant(h.eps));
    scaled.dispose();
    const ms = tf.mul(m, s.stepSize);
    const update = tf.div(ms, denom);
    tf.dispose([ms, denom]);
    // Decoupled decay uses the parameter before this step's Adam update, as PyTorch does.
    let decayed = state.master.t;
    const mask = h.weightDecay !== 0 ? decayMask(decay, n) : null;
    if (mask) {
      const pm = tf.mul(state.master.t, mask);
      mask.dispose();
      const pmd = tf.mul(pm, s.decay);
      pm.dispose();
      decayed = tf.sub(state.master.t, pmd) as tf.Tensor1D;
      pmd.dispose();
    }
    const p = tf.sub(decayed, update) as tf.Tensor1D;
    tf.dispose([update, state.master.t]);
    if (decayed !== state.master.t) decayed.dispose();
    state.master = new DeviceVector(p, 'fp32');
  }

  async allReduce(v: DeviceVector, group: ReduceGroup, codec: WireCodec): Promise<DeviceVector> {
    if (group.size === 1) return v;
    const format = this.codesOf(codec);
    const values = await this.inOrder(this.download(v, 0, v.t.size, format), (h) => group.allReduce(h, { op: 'sum', codec }).then(() => h));
    this.dispose(v);
    return this.received(values, format, v.precision);
  }

  async allReduceRange(v: DeviceVector, start: number, end: number, group: ReduceGroup, codec: WireCodec): Promise<DeviceVector> {
    if (group.size === 1 || end <= start) return v;
    const format = this.codesOf(codec);
    const values = await this.inOrder(this.download(v, start, end, format), (h) => group.allReduce(h, { op: 'sum', codec }).then(() => h));
    const n = v.t.size;
    const reduced = this.upload(values, format);
    const parts = [start > 0 ? tf.slice(v.t, [0], [start]) : null, reduced, end < n ? tf.slice(v.t, [end], [n - end]) : null].filter((t): t is tf.Tensor1D => t !== null);
    const out = parts.length === 1 ? reduced : (tf.concat(parts) as tf.Tensor1D);
    if (out !== reduced) tf.dispose(parts);
    this.dispose(v);
    return this.stored(out, v.precision);
  }

  /**
   * Downloads every piece but this rank's own (those are what it sends), reduces with zeros in
   * its own piece, uploads its piece's sum of the other ranks and adds its own values on the
   * device: the ring adds a rank's own values last too, so the sum is the same.
   */
  async reduceScatter(v: DeviceVector, group: CollectiveGroup, codec: WireCodec, precision: Precision): Promise<DeviceVector> {
    const n = v.t.size;
    if (group.size === 1) return this.toPrecision(v, precision);
    const { start, end } = shardRange(n, group.size, group.rank);
    const format = this.codesOf(codec);
    const download = async () => {
      const host = new Float32Array(n);
      if (start > 0) host.set(await this.download(v, 0, start, format), 0);
      if (end < n) host.set(await this.download(v, end, n, format), end);
      return host;
    };
    const others = await this.inOrder(download(), (host) => group.reduceScatter(host, { op: 'sum', codec }));
    const sum = tf.tidy(() => tf.add(this.upload(others, format), tf.slice(v.t, [start], [end - start]))) as tf.Tensor1D;
    this.dispose(v);
    return this.stored(sum, precision);
  }

  async allGather(own: DeviceVector, length: number, group: CollectiveGroup, codec: WireCodec): Promise<DeviceVector> {
    if (group.size === 1) return new DeviceVector(tf.clone(own.t), 'fp32');
    const format = this.codesOf(codec);
    if (codec !== 'fp32' && !format) {
      // fp32 down, the ring rounds this rank's piece as it encodes it, all of it comes back up
      const full = await this.inOrder(this.toHost(own), (mine) => group.allGather(mine, length, { codec }));
      return new DeviceVector(tf.tensor1d(full), 'fp32');
    }
    // This rank's piece goes down as the wire will carry it (rounded on the device); only the
    // others' pieces come back up.
    const mine = format ? (roundOnDevice(own.t, format, constant) as tf.Tensor1D) : own.t;
    try {
      const full = await this.inOrder(this.download(new DeviceVector(mine, format ?? 'fp32'), 0, mine.size, format), (h) => group.allGather(h, length, { codec }));
      const { start, end } = shardRange(length, group.size, group.rank);
      const parts = [start > 0 ? this.upload(full.subarray(0, start), format) : null, mine, end < length ? this.upload(full.subarray(end), format) : null].filter((t): t is tf.Tensor1D => t !== null);
      const out = parts.length === 1 ? tf.clone(mine) : (tf.concat(parts) as tf.Tensor1D);
      for (const p of parts) if (p !== mine) p.dispose();
      return new DeviceVector(out, 'fp32');
    } finally {
      if (mine !== own.t) mine.dispose();
    }
  }

  /**
   * Issues collectives in the order they were asked for: every rank must enter a group's
   * collectives in the same order, and a collective here first awaits a device read whose
   * completion order the backend does not promise. `prepare` (the read) starts at once; `issue`
   * runs only after every earlier collective has been issued (not finished), so reads and
   * collectives of consecutive calls still overlap.
   */
  private inOrder<X, T>(prepare: Promise<X>, issue: (x: X) => Promise<T>): Promise<T> {
    const issued = this.issueQueue.then(async () => ({ done: issue(await prepare) }));
    this.issueQueue = issued.then(() => undefined, () => undefined);
    return issued.then((i) => i.done);
  }

  /** The format whose codes carry values over `codec` (the backend passed the check); null: fp32. */
  private codesOf(codec: WireCodec): HalfFormat | null {
    return codec !== 'fp32' && this.wireCodes.has(codec) ? codec : null;
  }

  /** [start, end) of v to the host: as 16-bit codes with a format (an fp32 vector rounded to it first, as the wire would), else fp32. */
  private download(v: DeviceVector, start: number, end: number, format: HalfFormat | null): Promise<Float32Array> {
    return format ? downloadAsCodes(v.t, start, end, format, v.precision !== format) : this.toHost(v, start, end);
  }

  /** Host values onto the device: as 16-bit codes when the format holds every one exactly (what a 16-bit wire delivers), else fp32. */
  private upload(values: Float32Array, format: HalfFormat | null): tf.Tensor1D {
    return (format && uploadAsCodes(values, format)) || uploadFp32(values);
  }

  /** Host values from the wire as a vector of `precision`: values that came as codes of that format need no rounding. */
  private received(values: Float32Array, format: HalfFormat | null, precision: Precision): DeviceVector {
    const coded = format ? uploadAsCodes(values, format) : null;
    if (coded && precision === format) return new DeviceVector(coded, precision);
    return this.stored(coded ?? uploadFp32(values), precision);
  }

  /** `t` as a vector of `precision` (rounded for 16 bits; consumes t). */
  private stored(t: tf.Tensor1D, precision: Precision): DeviceVector {
    if (precision === 'fp32') return new DeviceVector(t, precision);
    const r = roundOnDevice(t, precision, constant) as tf.Tensor1D;
    t.dispose();
    return new DeviceVector(r, precision);
  }

  private scalarsFor(h: AdamWStep): AdamWScalars {
    if (this.stepScalars?.h !== h) {
      this.stepScalars?.s.dispose();
      const s = {
        gradFactor: tf.keep(tf.scalar(h.gradFactor)),
        stepSize: tf.keep(tf.scalar(h.lr / h.bc1)),
        invSqrtBc2: tf.keep(tf.scalar(1 / Math.sqrt(h.bc2))),
        decay: tf.keep(tf.scalar(h.lr * h.weightDecay)),
        dispose: () => tf.dispose([s.gradFactor, s.stepSize, s.invSqrtBc2, s.decay]),
      };
      this.stepScalars = { h, s };
    }
    return this.stepScalars.s;
  }
}

/** Per backend and format: null when its codes passed verifyWireCodes, else what differed. */
const wireVerdicts = new Map<string, string | null>();
