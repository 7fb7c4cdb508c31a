import * as tf from '@tensorflow/tfjs-core';
import { it } from 'vitest';
let live = 0, peak = 0;
const backendBytes = () => live;
const takePeakBackendBytes = () => { const p = peak; peak = live; return p; };
import { GPTSegments, type UnitGradBuffer } from '../segments.js';
import { initParams } from '../init.js';
import type { UnitParams } from '../model-params.js';
import { randomTokens, useBackend } from '../testing/helpers.js';
import { setSimdKernelsEnabled } from '../host/simd.js';
import type { GradValue } from '../layers/layer.js';
import type { TensorParallelGroup } from '../tensor-parallel/mappings.js';

const log: string[] = [];
let logging = false;
function installLog() {
  const engine = tf.engine() as any;
  const track = engine.trackTensor.bind(engine);
  engine.trackTensor = (a: tf.Tensor, be: unknown) => {
    const known = engine.state.tensorInfo.has(a.dataId);
    track(a, be);
    if (!known) { live += engine.state.tensorInfo.get(a.dataId)?.bytes ?? 0; if (live > peak) peak = live; }
    if (!known && logging) log.push(`+${engine.state.tensorInfo.get(a.dataId)?.bytes} ${a.dtype}[${a.shape}] live=${backendBytes()}`);
  };
  const rm = engine.removeDataId.bind(engine);
  engine.removeDataId = (id: unknown, be: unknown) => {
    const info = engine.state.tensorInfo.get(id);
    rm(id, be);
    if (info && !engine.state.tensorInfo.has(id)) live -= info.bytes;
    if (info && logging && !engine.state.tensorInfo.has(id)) log.push(`-${info.bytes} ${info.dtype}[${info.shape}] live=${backendBytes()}`);
  };
}
class Keep implements UnitGradBuffer {
  kept: tf.Tensor[] = [];
  constructor(readonly host?: Float32Array) {}
  add(_o: number, g: GradValue) { if (!(g instanceof Float32Array)) this.kept.push(g); }
}
function loop(size: number): TensorParallelGroup {
  return { size, rank: 0, allReduce: async () => {} };
}
const backend = (process.env.PB ?? 'wasm') as 'wasm' | 'cpu';
const kernels = (process.env.PK ?? 'tf') as 'host' | 'tf';
const simd = process.env.PS !== '0';
const tp = Number(process.env.PT ?? 1);
const B = Number(process.env.PBATCH ?? 2), T = Number(process.env.PSEQ ?? 8);
const config = { vocabSize: Number(process.env.PV ?? 64), contextLength: 32, layers: 1, heads: Number(process.env.PH ?? 2), dModel: Number(process.env.PC ?? 16), layerNormEps: 1e-5 };
it('probe', async () => {
  await useBackend(backend);
  setSimdKernelsEnabled(simd);
  installLog();
  const model = new GPTSegments(config, { kernels, tensorParallel: tp > 1 ? loop(tp) : undefined });
  const full = initParams(config, 1);
  const flat = model.shardOf(full);
  const params = new Map<number, UnitParams>(model.units.map((u, i) => [i, model.unitParams(i, flat.subarray(u.start, u.end))]));
  const mb = { tokens: randomTokens(B * T, config.vocabSize, 1), targets: randomTokens(B * T, config.vocabSize, 2), batch: B };
  for (let rep = 0; rep < 2; rep++) {
    let x: tf.Tensor | null = null;
    const saved = [];
    const bufs = new Map(model.units.map((u, i) => [i, new Keep(kernels === 'host' ? new Float32Array(u.end - u.start) : undefined)]));
    for (let s = 0; s < model.segments.length; s++) {
      logging = rep === 1; log.push(`== fwd ${s} live=${backendBytes()}`);
      takePeakBackendBytes();
      const b0 = backendBytes();
      const r = await model.forward(s, params, x, mb, true);
      if (r.loss) await r.loss.loss;
      log.push(`== fwd ${s} peak+${takePeakBackendBytes() - b0} after+${backendBytes() - b0} y=${r.y ? r.y.size * 4 : 0}`);
      x?.dispose(); x = r.y; saved.push(r.saved);
    }
    let dy: tf.Tensor | null = null;
    for (let s = model.segments.length - 1; s >= 0; s--) {
      log.push(`== bwd ${s} live=${backendBytes()}`);
      takePeakBackendBytes();
      const b0 = backendBytes();
      const dx = await model.backward(s, params, saved[s], dy, 1, bufs);
      log.push(`== bwd ${s} peak+${takePeakBackendBytes() - b0} after+${backendBytes() - b0}`);
      dy?.dispose(); dy = dx;
    }
    dy?.dispose();
    for (const b of bufs.values()) b.kept.forEach((t) => t.dispose());
    logging = false;
  }
  console.log(log.filter((l, i) => i > log.findIndex((m) => m.startsWith('== fwd 0 live')) || true).join('\n'));
});
