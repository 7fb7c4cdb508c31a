import * as tf from '@tensorflow/tfjs-core';

/**
 * The active backend's own plain 2-D matMul throughput [m, k] x [k, n] (default 1024^3, operands
 * reused so XNNPACK's packed right-hand side is cached: the kernel's best case), the denominator of
 * MFU. Runs windows of ~0.25 s for about `seconds` (default 1) after a warm-up and returns the best
 * window, so a briefly busy machine lowers it less; each window ends with a read-back so
 * asynchronous backends (WebGPU, CUDA) are timed to completion.
 */
export async function measureMatMulPeak(opts: { m?: number; k?: number; n?: number; seconds?: number } = {}): Promise<{ gflops: number }> {
  const m = opts.m ?? 1024;
  const k = opts.k ?? 1024;
  const n = opts.n ?? 1024;
  const seconds = opts.seconds ?? 1;
  const flops = 2 * m * k * n;
  const a = tf.randomUniform([m, k], -1, 1, 'float32', 1);
  const b = tf.randomUniform([k, n], -1, 1, 'float32', 2);
  const product = async (): Promise<void> => {
    const c = tf.matMul(a, b);
    await c.data();
    c.dispose();
  };
  try {
    await product();
    await product();
    // Windows of `batch` products, the last read back (an asynchronous backend is timed to
    // completion, and never given more queued work than a window holds); batch doubles until a
    // window lasts 250 ms.
    let best = 0;
    let batch = 1;
    const end = performance.now() + seconds * 1000;
    do {
      const t0 = performance.now();
      for (let i = 0; i < batch; i++) {
        const c = tf.matMul(a, b);
        if (i === batch - 1) await c.data();
        c.dispose();
      }
      const ms = performance.now() - t0;
      best = Math.max(best, (flops * batch) / (ms / 1000) / 1e9);
      if (ms < 250) batch *= 2;
    } while (performance.now() < end);
    return { gflops: best };
  } finally {
    tf.dispose([a, b]);
  }
}

/**
 * Host<->device copy bandwidth of the active backend (GB/s, 1e9 bytes/s), best of a few 16 MiB
 * copies each way: upload = tf.tensor() of host values until a one-element read of the result
 * returns; download = an awaited read of a tensor made on the device. What a step's byte counts
 * take on the bus is bytes / bandwidth (on wasm and cpu, a memcpy).
 */
export async function measureTransferBandwidth(opts: { bytes?: number; repeats?: number } = {}): Promise<{ hostToDeviceGBs: number; deviceToHostGBs: number }> {
  const n = (opts.bytes ?? 16 * 2 ** 20) / 4;
  const repeats = opts.repeats ?? 3;
  const host = new Float32Array(n).fill(1);
  let up = 0;
  let down = 0;
  for (let r = 0; r < repeats + 1; r++) { // the first round warms up
    const t0 = performance.now();
    const t = tf.tensor1d(host);
    const one = tf.slice(t, [n - 1], [1]);
    await one.data();
    const upMs = performance.now() - t0;
    const made = tf.fill([n], 2);
    const first = tf.slice(made, [0], [1]);
    await first.data(); // made exists on the device
    const t1 = performance.now();
    await made.data();
    const downMs = performance.now() - t1;
    tf.dispose([t, one, made, first]);
    if (r > 0) {
      up = Math.max(up, (4 * n) / (upMs / 1000) / 1e9);
      down = Math.max(down, (4 * n) / (downMs / 1000) / 1e9);
    }
  }
  return { hostToDeviceGBs: up, deviceToHostGBs: down };
}
