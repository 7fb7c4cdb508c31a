import { CODEC_KERNELS_WASM_BASE64 } from './codec-kernels.generated.js';

/**
 * The exports of assembly/codec-kernels.ts. Pointers are byte offsets into the arena's memory,
 * counts are elements; `op` is 0 for sum, 1 for max; flags are 0 or 1.
 */
export interface CodecKernelExports {
  /** codes = enc(f); keep: f = dec(codes) too. */
  encodeBf16(f: number, codes: number, n: number, keep: number): void;
  encodeFp16(f: number, codes: number, n: number, keep: number): void;
  /** f = dec(codes) */
  decodeBf16(codes: number, f: number, n: number): void;
  decodeFp16(codes: number, f: number, n: number): void;
  /** codes = enc(op(dec(codes), f)) */
  reduceWireBf16(f: number, codes: number, n: number, op: number): void;
  reduceWireFp16(f: number, codes: number, n: number, op: number): void;
  /** f = op(f, dec(codes)) / div; round: then codes = enc(f), f = dec(codes). */
  reduceLocalBf16(f: number, codes: number, n: number, op: number, div: number, round: number): void;
  reduceLocalFp16(f: number, codes: number, n: number, op: number, div: number, round: number): void;
  /** dst = op(dst, src) */
  combineF32(dst: number, src: number, n: number, op: number): void;
  /** dst = dst / div */
  divideF32(dst: number, n: number, div: number): void;
  /** dst = op(op(op(a, b), c), dst) / div, with `count` (1..3) of a, b, c */
  foldF32(dst: number, a: number, b: number, c: number, count: number, n: number, op: number, div: number): void;
}

// The WebAssembly global (this package's TypeScript libs do not declare it).
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
declare const WebAssembly: {
  Memory: new (desc: { initial: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { exports: unknown };
};

const PAGE_BYTES = 65536;
/** Bytes [0, 64) of every arena belong to the kernels (their tail temporary). */
const KERNEL_TEMP_BYTES = 64;
/** Largest memory an arena may take (wasm32 addresses up to 4 GiB; stay well below). */
export const MAX_ARENA_BYTES = 2 ** 31;

let compiled: object | undefined;
const arenas = new WeakMap<ArrayBuffer, KernelArena>();

/**
 * A fixed-size WebAssembly memory with its own instance of the codec kernels: an fp32 scratch
 * area of `slotBytes` (where caller values are staged, since a kernel can only touch its own
 * memory), `slots` wire buffers of `slotBytes` each, handed out as Uint8Array views, and
 * optionally a caller's fp32 buffer (Communicator.allocBuffer), which the kernels then read and
 * write in place. The memory is never grown: growing would detach every view handed out,
 * including ones a socket is still writing from. A view's byteOffset is its address for the kernels.
 */
export class KernelArena {
  readonly kernels: CodecKernelExports;
  /** Byte offset of the scratch area, and the same area as fp32 values. */
  readonly scratch: number;
  readonly scratchF32: Float32Array;
  readonly slotBytes: number;
  private readonly heap: ArrayBuffer;
  private readonly free: number[] = [];
  private readonly inUse = new Set<number>();

  /** The caller's buffer (bufferLength fp32 values after the slots), if the arena was made with one. */
  readonly buffer: Float32Array | undefined;

  constructor(slotBytes: number, slots: number, bufferLength = 0) {
    if (!Number.isInteger(slotBytes) || slotBytes < 4 || slotBytes % 4 !== 0 || !Number.isInteger(slots) || slots < 1 || !Number.isInteger(bufferLength) || bufferLength < 0) {
      throw new RangeError(`KernelArena: bad geometry ${slotBytes} x ${slots} + ${bufferLength}`);
    }
    const stride = align64(slotBytes);
    const bufferStart = KERNEL_TEMP_BYTES + stride * (slots + 1);
    const bytes = bufferStart + bufferLength * 4;
    if (bytes > MAX_ARENA_BYTES) throw new RangeError(`KernelArena: ${bytes} bytes exceeds ${MAX_ARENA_BYTES}`);
    compiled ??= new WebAssembly.Module(Buffer.from(CODEC_KERNELS_WASM_BASE64, 'base64'));
    const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / PAGE_BYTES) });
    this.kernels = new WebAssembly.Instance(compiled, { env: { memory } }).exports as CodecKernelExports;
    this.heap = memory.buffer;
    this.slotBytes = slotBytes;
    this.scratch = KERNEL_TEMP_BYTES;
    this.scratchF32 = new Float32Array(this.heap, this.scratch, slotBytes / 4);
    for (let s = slots; s >= 1; s--) this.free.push(KERNEL_TEMP_BYTES + s * stride);
    this.buffer = bufferLength > 0 ? new Float32Array(this.heap, bufferStart, bufferLength) : undefined;
    arenas.set(this.heap, this);
  }

  /** The arena a view points into, if any. */
  static of(view: ArrayBufferView): KernelArena | undefined {
    return arenas.get(view.buffer as ArrayBuffer);
  }

  get available(): number {
    return this.free.length;
  }

  /** A wire buffer of `bytes` (at most slotBytes) at the start of a free slot, or undefined when all are taken. */
  acquire(bytes: number): Uint8Array | undefined {
    const offset = this.free.pop();
    if (offset === undefined) return undefined;
    this.inUse.add(offset);
    return new Uint8Array(this.heap, offset, bytes);
  }

  /** Gives back a slot acquired here; false if `view` is not one. */
  release(view: Uint8Array): boolean {
    if (view.buffer !== this.heap || !this.inUse.delete(view.byteOffset)) return false;
    this.free.push(view.byteOffset);
    return true;
  }

  /**
   * The address of `values` for the kernels: their own when they live in this arena (no copy),
   * else the scratch area holding a copy (values.length <= slotBytes / 4).
   */
  place(values: Float32Array): number {
    if (values.buffer === this.heap) return values.byteOffset;
    this.scratchF32.set(values);
    return this.scratch;
  }

  /** Where a kernel should write values it produces: in place when they live here, else the scratch area. */
  outputFor(values: Float32Array): number {
    return values.buffer === this.heap ? values.byteOffset : this.scratch;
  }

  /** After a kernel wrote at `at` (from place or outputFor): copies the result into `values` unless it was written in place. */
  unplace(values: Float32Array, at: number): void {
    if (at === this.scratch) values.set(this.scratchF32.subarray(0, values.length));
  }
}

function align64(n: number): number {
  return Math.ceil(n / 64) * 64;
}
