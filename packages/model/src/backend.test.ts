import * as tf from '@tensorflow/tfjs-core';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { initBackend, nativeAddonProblem } from './backend.js';
import { deviceLossWaiters, failOnDeviceLoss } from './webgpu-adapter.js';

// This machine cannot install libtensorflow (see docs), so the native backends are unavailable here.
/** The software Vulkan driver Debian's chromium ships (scripts/setup.sh installs chromium and libvulkan1). */
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';

const nativeMissing = nativeAddonProblem('@tensorflow/tfjs-node') !== null && nativeAddonProblem('@tensorflow/tfjs-node-gpu') !== null;

describe('initBackend', () => {
  it.runIf(nativeMissing)('auto falls back to wasm and logs why cuda and tensorflow were unavailable', async () => {
    const logs: string[] = [];
    const info = await initBackend('auto', (m) => logs.push(m));
    expect(info.name).toBe('wasm');
    expect(info.tfBackend).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(info.simd).toBe(true);
    expect(info.reasons).toHaveLength(3);
    expect(info.reasons[0]).toMatch(/^cuda: .*tfjs-node-gpu/);
    expect(info.reasons[1]).toMatch(/^webgpu: (no Vulkan driver|only a software adapter)/); // no GPU here
    expect(info.reasons[2]).toMatch(/^tensorflow: .*tfjs-node/);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toContain('wasm');
    expect(logs[0]).toContain('cuda:');
  });

  it.runIf(nativeMissing)('explicit cuda / tensorflow fail with TRAINER_ERR_BACKEND_UNAVAILABLE and an install hint', async () => {
    await expect(initBackend('cuda')).rejects.toMatchObject({
      code: 'TRAINER_ERR_BACKEND_UNAVAILABLE',
      hint: expect.stringMatching(/pnpm add @tensorflow\/tfjs-node-gpu.*CUDA 11\.2.*cuDNN 8\.1/),
    });
    await expect(initBackend('tensorflow')).rejects.toMatchObject({
      code: 'TRAINER_ERR_BACKEND_UNAVAILABLE',
      hint: expect.stringContaining('pnpm add @tensorflow/tfjs-node'),
    });
  });

  it('selects cpu and wasm explicitly', async () => {
    expect((await initBackend('cpu')).name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    const wasm = await initBackend('wasm');
    expect(wasm).toMatchObject({ name: 'wasm', tfBackend: 'wasm', reasons: [] });
  });

  it('rejects an unknown name', async () => {
    await expect(initBackend('gpu' as never)).rejects.toMatchObject({ code: 'TRAINER_ERR_UNKNOWN_BACKEND' });
  });

  it.runIf(existsSync(SWIFTSHADER))('webgpu: Dawn on a software Vulkan driver is taken when asked for, and says it is software; auto passes it over', async () => {
    const before = process.env.VK_ICD_FILENAMES;
    process.env.VK_ICD_FILENAMES = SWIFTSHADER; // read by the Vulkan loader when Dawn starts
    try {
      const logs: string[] = [];
      const info = await initBackend('webgpu', (m) => logs.push(m));
      expect(info).toMatchObject({ name: 'webgpu', tfBackend: 'webgpu', adapter: { software: true } });
      expect(logs[0]).toMatch(/webgpu .*swiftshader.*a software adapter: correct but slow, not a GPU/);
      const y = tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2]));
      expect(Array.from(await y.data())).toEqual([19, 22, 43, 50]);
      const z = tf.add(y, y); // not read yet: nothing cached on the host
      expect(() => z.dataSync()).toThrow(); // a GPU's rule in Node: reads are awaited
      tf.dispose([y, z]);
      // Work raced against device loss leaves nothing subscribed once it settles (a step per call, for hours).
      for (let i = 0; i < 100; i++) expect(await failOnDeviceLoss(Promise.resolve(i))).toBe(i);
      await expect(failOnDeviceLoss(Promise.reject(new Error('step failed')))).rejects.toThrow('step failed');
      expect(deviceLossWaiters()).toBe(0);
      const auto = await initBackend('auto');
      expect(auto.reasons.find((r) => r.startsWith('webgpu:'))).toMatch(/only a software adapter/);
    } finally {
      if (before === undefined) delete process.env.VK_ICD_FILENAMES;
      else process.env.VK_ICD_FILENAMES = before;
      await initBackend('wasm');
    }
  });

  it('reports a package that is not installed', () => {
    expect(nativeAddonProblem('@tensorflow/not-a-package')).toMatch(/not installed/);
  });
});
