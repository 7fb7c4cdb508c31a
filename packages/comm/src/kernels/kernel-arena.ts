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
 * memory) and `slots` wire buffers of `slotBytes` each, handed out as Uint8Array views. The memory
 * is never grown: growing would detach every view handed out, including ones a socket is still
 * writing from. A view's byteOffset is its address for the kernels.
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

  constructor(slotBytes: number, slots: number) {
    if (!Number.isInteger(slotBytes) || slotBytes < 4 || slotBytes % 4 !== 0 || !Number.isInteger(slots) || slots < 1) {
      throw new RangeError(`KernelArena: bad geometry ${slotBytes} x ${slots}`);
    }
    const stride = align64(slotBytes);
    const bytes = KERNEL_TEMP_BYTES + stride * (slots + 1);
    if (bytes > MAX_ARENA_BYTES) throw new RangeError(`KernelArena: ${bytes} bytes exceeds ${MAX_ARENA_BYTES}`);
    compiled ??= new WebAssembly.Module(Buffer.from(CODEC_KERNELS_WASM_BASE64, 'base64'));
    const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / PAGE_BYTES) });
    this.kernels = new WebAssembly.Instance(compiled, { env: { memory } }).exports as CodecKernelExports;
    this.heap = memory.buffer;
    this.slotBytes = slotBytes;
    this.scratch = KERNEL_TEMP_BYTES;
    this.scratchF32 = new Float32Array(this.heap, this.scratch, slotBytes / 4);
    for (let s = slots; s >= 1; s--) this.free.push(KERNEL_TEMP_BYTES + s * stride);
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

  /** Copies `values` into the scratch area (values.length <= slotBytes / 4). */
  stage(values: Float32Array): void {
    this.scratchF32.set(values);
  }

  /** Copies the first values.length scratch values back into `values`. */
  unstage(values: Float32Array): void {
    values.set(this.scratchF32.subarray(0, values.length));
  }
}

function align64(n: number): number {
  return Math.ceil(n / 64) * 64;
}
