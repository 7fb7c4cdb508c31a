import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BufferPool } from '../collectives/buffer-pool.js';
import { decodeFp16 } from '../codecs/fp16.js';
import { CODEC_KERNELS_SOURCE_SHA256, CODEC_KERNELS_WASM_BASE64 } from './codec-kernels.generated.js';
import { KernelArena } from './kernel-arena.js';

declare const WebAssembly: {
  Module: { new (bytes: Uint8Array): object; imports(m: object): { module: string; name: string; kind: string }[] };
};

const pkgRoot = join(dirname(fileURLToPath(import.meta.url)), '../..');

type KernelBuild = { compileKernels: () => Buffer; sourceHash: () => string; sectionIds: (bytes: Uint8Array) => number[] };
/** The package's kernel build script (scripts/build-kernels.mjs, over the shared scripts/wasm-kernels.mjs). */
const kernelBuild = async () => (await import(join(pkgRoot, 'scripts/build-kernels.mjs'))) as KernelBuild;

describe('codec kernel module', () => {
  it('is generated from the current assembly/*.ts', async () => {
    const build = await kernelBuild();
    expect(build.sourceHash(), 'run pnpm --filter @trainer/comm build:kernels').toBe(CODEC_KERNELS_SOURCE_SHA256);
    expect(build.compileKernels().toString('base64'), 'run pnpm --filter @trainer/comm build:kernels').toBe(CODEC_KERNELS_WASM_BASE64);
  }, 120_000);

  it('writes nothing of its own into the memory it imports: no data, no globals, no start function', async () => {
    const { sectionIds } = await kernelBuild();
    const bytes = Buffer.from(CODEC_KERNELS_WASM_BASE64, 'base64');
    const ids = sectionIds(bytes);
    expect(ids).not.toContain(11);
    expect(ids).not.toContain(6);
    expect(ids).not.toContain(8);
    expect(WebAssembly.Module.imports(new WebAssembly.Module(bytes))).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
  });
});

describe('KernelArena', () => {
  it('hands out distinct slots, takes them back, and knows its views', () => {
    const arena = new KernelArena(1024, 3);
    const a = arena.acquire(1024)!;
    const b = arena.acquire(100)!;
    const c = arena.acquire(8)!;
    expect(arena.acquire(4)).toBeUndefined();
    expect(new Set([a.byteOffset, b.byteOffset, c.byteOffset]).size).toBe(3);
    for (const v of [a, b, c]) {
      expect(KernelArena.of(v)).toBe(arena);
      expect(KernelArena.of(v.subarray(3))).toBe(arena);
      expect(v.byteOffset % 64).toBe(0);
      expect(v.byteOffset).toBeGreaterThanOrEqual(arena.scratch + 1024); // not the scratch area
    }
    expect(arena.release(new Uint8Array(8))).toBe(false);
    expect(arena.release(b)).toBe(true);
    expect(arena.release(b)).toBe(false); // twice is ignored
    expect(arena.acquire(16)!.byteOffset).toBe(b.byteOffset);
    expect(KernelArena.of(new Uint8Array(4))).toBeUndefined();
    expect(() => new KernelArena(6, 1)).toThrow(RangeError);
  });

  it('kernels touch exactly the elements they are given (tails included)', () => {
    const arena = new KernelArena(4096, 2);
    const k = arena.kernels;
    const heap = new Uint8Array(arena.scratchF32.buffer);
    for (const n of [1, 3, 7, 8, 9, 13]) {
      heap.fill(0xa5, 64); // everything but the kernels' own temporary
      const f = arena.scratch + 64; // fp32 values at an offset inside the scratch area
      const w = arena.scratch + 4096 + 64; // codes in the first slot
      k.reduceLocalFp16(f, w, n, 0, 3, 1);
      k.reduceWireBf16(f, w, n, 1);
      k.encodeFp16(f, w, n, 1);
      k.decodeBf16(w, f, n);
      k.combineF32(f, w, n, 0);
      k.divideF32(f, n, 7);
      for (let i = 64; i < heap.length; i++) {
        const inF = i >= f && i < f + 4 * n;
        const inW = i >= w && i < w + 4 * n; // combineF32 reads w as fp32 (4n bytes), the others write 2n
        if (!inF && !inW && heap[i] !== 0xa5) throw new Error(`n=${n}: byte ${i} changed`);
      }
    }
  });

  it('decodes every half exactly (SIMD body and tail)', () => {
    const pool = new BufferPool(65536 * 4);
    const wire = pool.acquire(65536 * 2);
    new Uint16Array(wire.buffer, wire.byteOffset, 65536).forEach((_, i, a) => (a[i] = i));
    const arena = KernelArena.of(wire)!;
    const got = new Float32Array(65535); // an odd count, so the last 7 run through the tail
    arena.kernels.decodeFp16(wire.byteOffset, arena.scratch, got.length);
    arena.unplace(got, arena.scratch);
    const want = new Float32Array(65535);
    decodeFp16(new Uint16Array(wire.buffer, wire.byteOffset, 65535), want);
    for (let h = 0; h < got.length; h++) {
      if (!(Object.is(got[h], want[h]) || (Number.isNaN(got[h]) && Number.isNaN(want[h])))) throw new Error(`half ${h}: ${got[h]} != ${want[h]}`);
    }
  });
});

describe('BufferPool', () => {
  it('adds arenas when every slot is taken and reuses released buffers', () => {
    const pool = new BufferPool(32 * 1024 * 1024); // two slots per 64 MiB arena
    const bufs = [pool.acquire(100), pool.acquire(32 * 1024 * 1024), pool.acquire(4)];
    expect(pool.arenaCount).toBe(2);
    for (const b of bufs) pool.release(b);
    pool.acquire(64);
    pool.acquire(64);
    pool.acquire(64);
    expect(pool.arenaCount).toBe(2);
    expect(() => pool.acquire(32 * 1024 * 1024 + 4)).toThrow(RangeError);
  });

  it('adopts foreign payloads by copying them into a slot', () => {
    const pool = new BufferPool(1024);
    const own = pool.acquire(16);
    expect(pool.adopt(own)).toBe(own);
    const foreign = Uint8Array.from({ length: 12 }, (_, i) => i + 1);
    const adopted = pool.adopt(foreign);
    expect(KernelArena.of(adopted)).toBeDefined();
    expect(Array.from(adopted)).toEqual(Array.from(foreign));
  });
});
