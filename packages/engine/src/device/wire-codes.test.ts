import * as tf from '@tensorflow/tfjs-core';
import { decodeBf16, decodeFp16, encodeBf16, encodeFp16 } from '@trainer/comm';
import { initBackend } from '@trainer/model';
import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { installMemoryMeter, takePeakBackendBytes, backendBytes } from '@trainer/model';
import { downloadAsCodes, packOnDevice, unpackOnDevice, uploadAsCodes, valuesOfCodes, verifyWireCodes, WIRE_CODE_CHUNK, WIRE_CODE_TEMPORARIES } from './wire-codes.js';

/** Random values of every magnitude the format has, rounded by the host codec (so representable). */
function representable(n: number, format: 'bf16' | 'fp16', seed: number): { values: Float32Array; codes: Uint16Array } {
  const raw = new Float32Array(n);
  const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const span = format === 'bf16' ? [-140, 128] : [-26, 17];
  for (let i = 0; i < n; i++) raw[i] = (rand() < 0.5 ? -1 : 1) * (1 + rand()) * 2 ** Math.floor(span[0] + rand() * (span[1] - span[0]));
  raw.set([0, -0, Infinity, -Infinity, 1, -1].slice(0, n));
  const codes = new Uint16Array(n);
  (format === 'bf16' ? encodeBf16 : encodeFp16)(raw, codes);
  const values = new Float32Array(n);
  (format === 'bf16' ? decodeBf16 : decodeFp16)(codes, values);
  return { values, codes };
}

/** SwiftShader, the software Vulkan driver of Debian's chromium (scripts/setup.sh): WebGPU's WGSL codes run there. */
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
const BACKENDS = existsSync(SWIFTSHADER) ? (['cpu', 'wasm', 'webgpu'] as const) : (['cpu', 'wasm'] as const);
if (existsSync(SWIFTSHADER)) process.env.VK_ICD_FILENAMES = SWIFTSHADER;

describe('16-bit wire codes on the device', () => {
  afterAll(async () => {
    await initBackend('wasm');
  });

  for (const backend of BACKENDS) {
    for (const format of ['bf16', 'fp16'] as const) {
      it(`${format} on ${backend}: every code round-trips through the device exactly`, async () => {
        await initBackend(backend);
        expect(await verifyWireCodes(format)).toBeNull();
      });

      it(`${format} on ${backend}: packs representable values to the host codec's codes, bit for bit, and back (odd lengths too)`, async () => {
        await initBackend(backend);
        const before = tf.memory().numTensors;
        for (const n of [1, 2, 7, 10_001]) {
          const { values, codes } = representable(n, format, 11 + n);
          const x = tf.tensor1d(values);
          const packed = packOnDevice(x, format);
          expect(packed.dtype).toBe('int32');
          expect(packed.size).toBe(Math.ceil(n / 2)); // 2 bytes per value cross the boundary
          const got = new Uint16Array(((await packed.data()) as Int32Array).slice().buffer);
          expect(Array.from(got.subarray(0, n))).toEqual(Array.from(codes));
          const back = unpackOnDevice(packed, n, format);
          const decoded = (await back.data()) as Float32Array;
          for (let i = 0; i < n; i++) expect(Object.is(decoded[i], values[i]), `${values[i]} -> ${decoded[i]}`).toBe(true);
          tf.dispose([x, packed, back]);
        }
        // constants are cached per backend; nothing else outlives the calls
        const cachedConstants = tf.memory().numTensors - before;
        const { values } = representable(9, format, 3);
        const x = tf.tensor1d(values);
        const packed = packOnDevice(x, format);
        tf.dispose([unpackOnDevice(packed, 9, format), packed, x]);
        expect(tf.memory().numTensors - before).toBe(cachedConstants);
      });
    }
  }

  it.runIf(existsSync(SWIFTSHADER))('on WebGPU the WGSL pack rounds any fp32 value exactly as the host codec does (ties to even, overflow, subnormals, NaN)', async () => {
    await initBackend('webgpu');
    for (const format of ['bf16', 'fp16'] as const) {
      const n = 50_001;
      const raw = new Float32Array(n);
      let seed = 17;
      for (let i = 0; i < n; i++) {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        raw[i] = (seed / 2 ** 32 - 0.5) * 2 ** ((seed % 60) - 40);
      }
      raw.set([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -11, 65519, 65520, 3 * 2 ** -25, 2 ** -26, 2 ** -149, -0, Infinity, NaN, 3.4e38]); // ties, fp16's top and subnormals
      const want = new Uint16Array(n);
      (format === 'bf16' ? encodeBf16 : encodeFp16)(raw, want);
      const x = tf.tensor1d(raw);
      const packed = packOnDevice(x, format);
      const got = new Uint16Array(((await packed.data()) as Int32Array).slice().buffer).subarray(0, n);
      tf.dispose([x, packed]);
      let differ = 0;
      for (let i = 0; i < n; i++) if (got[i] !== want[i]) differ++;
      expect(differ, `${format}: codes that differ from the host encoder's`).toBe(0);
    }
  });

  it('uploads through codes only values the format holds exactly (NaN payloads aside); vectors past a chunk in pieces', async () => {
    await initBackend('wasm');
    const exact = new Float32Array([1, -2.5, 0, -0, Infinity, NaN, 3 * 2 ** -133]);
    const up = uploadAsCodes(exact, 'bf16')!;
    const got = Array.from((await up.data()) as Float32Array);
    up.dispose();
    expect(got.map((v) => (Object.is(v, -0) ? '-0' : v))).toEqual([1, -2.5, 0, '-0', Infinity, NaN, 3 * 2 ** -133]);
    expect(uploadAsCodes(new Float32Array([1 + 2 ** -10]), 'bf16')).toBeNull();
    const half = uploadAsCodes(new Float32Array([1 + 2 ** -10, 65504, 2 ** -24]), 'fp16')!;
    expect(Array.from((await half.data()) as Float32Array)).toEqual([1 + 2 ** -10, 65504, 2 ** -24]);
    half.dispose();
    expect(uploadAsCodes(new Float32Array([1 + 2 ** -11]), 'fp16')).toBeNull();
    expect(uploadAsCodes(new Float32Array([70000]), 'fp16')).toBeNull();
    // past one chunk: an odd tail, read back from an odd start
    const n = WIRE_CODE_CHUNK + 3;
    const { values } = representable(n, 'bf16', 5);
    const big = uploadAsCodes(values, 'bf16')!;
    const back = await downloadAsCodes(big, 1, n, 'bf16');
    big.dispose();
    expect(back.length).toBe(n - 1);
    let same = 0;
    for (let i = 1; i < n; i++) if (Object.is(back[i - 1], values[i])) same++;
    expect(same).toBe(n - 1);
  });

  it('keeps at most WIRE_CODE_TEMPORARIES vectors of its size alive while encoding or decoding', async () => {
    await initBackend('wasm');
    installMemoryMeter();
    const n = 100_000;
    const { values } = representable(n, 'bf16', 9);
    const x = tf.tensor1d(values);
    const warm = packOnDevice(x, 'bf16'); // the cached constants
    tf.dispose(unpackOnDevice(warm, n, 'bf16'));
    takePeakBackendBytes();
    const base = backendBytes(); // x and warm
    const packed = packOnDevice(x, 'bf16');
    const encodePeak = takePeakBackendBytes() - base;
    const decoded = unpackOnDevice(packed, n, 'bf16');
    const decodePeak = takePeakBackendBytes() - base - 2 * n; // beside its input (packed, 2 bytes a value)
    tf.dispose([x, warm, packed, decoded]);
    // 4-byte tensors plus the 1-byte masks alive beside them
    expect(encodePeak).toBeLessThanOrEqual((4 * WIRE_CODE_TEMPORARIES + 2) * n);
    expect(decodePeak).toBeLessThanOrEqual((4 * WIRE_CODE_TEMPORARIES + 2) * n);
    expect(encodePeak).toBeGreaterThan(4 * (WIRE_CODE_TEMPORARIES - 1) * n); // the bound is not loose
  });
});
