import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { initBackend, nativeAddonProblem } from './backend.js';

// This machine cannot install libtensorflow (see docs), so the native backends are unavailable here.
const nativeMissing = nativeAddonProblem('@tensorflow/tfjs-node') !== null && nativeAddonProblem('@tensorflow/tfjs-node-gpu') !== null;

describe('initBackend', () => {
  it.runIf(nativeMissing)('auto falls back to wasm and logs why cuda and tensorflow were unavailable', async () => {
    const logs: string[] = [];
    const info = await initBackend('auto', (m) => logs.push(m));
    expect(info.name).toBe('wasm');
    expect(info.tfBackend).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(info.simd).toBe(true);
    expect(info.reasons).toHaveLength(2);
    expect(info.reasons[0]).toMatch(/^cuda: .*tfjs-node-gpu/);
    expect(info.reasons[1]).toMatch(/^tensorflow: .*tfjs-node/);
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

  it('reports a package that is not installed', () => {
    expect(nativeAddonProblem('@tensorflow/not-a-package')).toMatch(/not installed/);
  });
});
