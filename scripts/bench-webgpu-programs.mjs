#!/usr/bin/env node
// Our WGSL programs against the generic TF.js kernels on the WebGPU backend, one process each way
// (TRAINER_WEBGPU_PROGRAMS=0 turns ours off): an AdamW update and a bf16 pack + unpack of n values,
// median of 5 after a warm-up, each timed to an awaited read. Prints one JSON line per variant.
//   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json node scripts/bench-webgpu-programs.mjs [n]
import { spawnSync } from 'node:child_process';

const n = Number(process.argv[2] ?? 1 << 20);
if (process.env.BENCH_CHILD) {
  const { initBackend } = await import('../packages/model/dist/index.js');
  const tf = (await import('node:module')).createRequire(new URL('../packages/model/package.json', import.meta.url))('@tensorflow/tfjs-core');
  const { TfDevice } = await import('../packages/engine/dist/index.js');
  await initBackend('webgpu');
  const d = new TfDevice();
  await d.prepareWire('bf16');
  const host = new Float32Array(n).map((_, i) => Math.sin(i) * 1e-2);
  const state = { master: d.fromHost(host, 'fp32'), m: d.fromHost(host, 'fp32'), v: d.fromHost(host.map(Math.abs), 'fp32') };
  const grad = d.fromHost(host, 'fp32');
  const h = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, bc1: 0.5, bc2: 0.5, gradFactor: 0.5 };
  const time = async (fn) => {
    const ms = [];
    for (let r = 0; r < 6; r++) {
      const t0 = performance.now();
      await fn();
      if (r > 0) ms.push(performance.now() - t0);
    }
    return ms.sort((a, b) => a - b)[2];
  };
  const readOne = async (t) => {
    const one = tf.slice(t, [0], [1]);
    await one.data();
    one.dispose();
  };
  const adamwMs = await time(async () => {
    d.adamw(state, grad, [{ start: 0, end: n }], h);
    await readOne(state.master.t);
  });
  const rounded = d.toPrecision(d.fromHost(host, 'fp32'), 'bf16');
  const codesMs = await time(async () => {
    const { downloadAsCodes, uploadAsCodes } = await import('../packages/engine/dist/device/wire-codes.js');
    const values = await downloadAsCodes(rounded.t, 0, n, 'bf16');
    const back = uploadAsCodes(values, 'bf16');
    await readOne(back);
    back.dispose();
  });
  process.stdout.write(`${JSON.stringify({ programs: process.env.TRAINER_WEBGPU_PROGRAMS !== '0' ? 'ours (WGSL)' : 'generic TF.js', n, adamw_ms: adamwMs, bf16_codes_round_trip_ms: codesMs })}\n`);
  process.exit(0);
}
for (const programs of ['1', '0']) {
  const r = spawnSync(process.execPath, [new URL(import.meta.url).pathname, String(n)], { env: { ...process.env, BENCH_CHILD: '1', TRAINER_WEBGPU_PROGRAMS: programs }, encoding: 'utf8' });
  process.stdout.write(r.stdout || r.stderr);
}
