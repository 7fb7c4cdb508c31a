import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { randomArray, relError, useBackend } from '../testing/helpers.js';
import { transpose } from './math.js';
import { setSimdKernelsEnabled, simdKernels, simdOp } from './simd.js';
import { KERNELS_SOURCE_SHA256, KERNELS_WASM_BASE64 } from './simd-kernels.generated.js';
import { hostOp } from './tensor-io.js';

declare const WebAssembly: {
  Module: { new (bytes: Uint8Array): object; imports(m: object): { module: string; name: string; kind: string }[] };
};

const pkgRoot = join(dirname(fileURLToPath(import.meta.url)), '../..');

type KernelBuild = { compileKernels: () => Buffer; sourceHash: () => string; sectionIds: (bytes: Uint8Array) => number[] };
/** The package's kernel build script (scripts/build-kernels.mjs, over the shared scripts/wasm-kernels.mjs). */
const kernelBuild = async () => (await import(join(pkgRoot, 'scripts/build-kernels.mjs'))) as KernelBuild;

describe('SIMD kernel module', () => {
  it('is generated from the current assembly/*.ts', async () => {
    const build = await kernelBuild();
    expect(build.sourceHash(), 'run pnpm --filter @trainer/model build:kernels').toBe(KERNELS_SOURCE_SHA256);
    expect(build.compileKernels().toString('base64'), 'run pnpm --filter @trainer/model build:kernels').toBe(KERNELS_WASM_BASE64);
  }, 120_000);

  it('writes nothing of its own into the memory it imports: no data, no globals, no start function', async () => {
    const { sectionIds } = await kernelBuild();
    const bytes = Buffer.from(KERNELS_WASM_BASE64, 'base64');
    const ids = sectionIds(bytes);
    expect(ids).not.toContain(11); // data
    expect(ids).not.toContain(6); // globals
    expect(ids).not.toContain(8); // start
    const mod = new WebAssembly.Module(bytes);
    expect(WebAssembly.Module.imports(mod)).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
  });
});

describe('SIMD kernels on wasm', () => {
  beforeAll(async () => useBackend('wasm'));

  it('are available on wasm and can be switched off', () => {
    expect(simdKernels()).not.toBeNull();
    setSimdKernelsEnabled(false);
    expect(simdKernels()).toBeNull();
    expect(simdOp([], [[4]], () => {})).toBeNull();
    setSimdKernelsEnabled(true);
    expect(simdKernels()).not.toBeNull();
  });

  it('transpose matches the JS transpose and leaves neighbouring memory alone', () => {
    const before = tf.memory().numTensors;
    const [r, c] = [12, 20];
    const a = tf.tensor2d(randomArray(r * c, 1), [r, c]);
    const guard = tf.tensor1d(randomArray(64, 2)); // allocated next to the output
    const guardBefore = guard.dataSync().slice();
    const [simd] = simdOp([a], [[c, r]], (k, [src], [dst]) => k.transpose(src, r, c, dst)) as tf.Tensor[];
    const [js] = hostOp([a], [[c, r]], ([src], [dst]) => transpose(src, r, c, dst));
    expect(simd.dataSync()).toEqual(js.dataSync());
    expect(guard.dataSync()).toEqual(guardBefore);
    tf.dispose([a, guard, simd, js]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('column sums and strided block copies match plain loops', () => {
    const [N, w] = [10, 8];
    const x = randomArray(N * w, 3);
    const t = tf.tensor2d(x, [N, w]);
    const [sums] = simdOp([t], [[w]], (k, [src], [out]) => k.columnSums(src, N, w, out)) as tf.Tensor[];
    const want = new Float32Array(w);
    for (let i = 0; i < N * w; i++) want[i % w] += x[i];
    expect(relError(sums.dataSync(), want)).toBeLessThan(1e-6);
    // rows 2..5, columns 4..7 of x, scaled by 0.5, into a [4, 4] block; and the same block transposed
    const [block, blockT] = simdOp([t], [[4, 4], [4, 4]], (k, [src], [dst, dstT]) => {
      k.copyBlock(src, 2 * w + 4, w, dst, 0, 4, 4, 4, 0.5);
      k.copyBlockTransposed(src, 2 * w + 4, w, dstT, 4, 4);
    }) as tf.Tensor[];
    const b = block.dataSync();
    const bt = blockT.dataSync();
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 4; j++) {
        expect(b[i * 4 + j]).toBe(0.5 * x[(2 + i) * w + 4 + j]);
        expect(bt[j * 4 + i]).toBe(x[(2 + i) * w + 4 + j]);
      }
    }
    tf.dispose([t, sums, block, blockT]);
  });
});
