import * as tf from '@tensorflow/tfjs-core';

/**
 * The active backend's own plain 2-D matMul throughput [m, k] x [k, n] (default 1024^3), the
 * denominator of MFU. Runs for about `seconds` (default 1) after a warm-up and reads the last
 * product back so asynchronous backends are timed to completion.
 */
export async function measureMatMulPeak(opts: { m?: number; k?: number; n?: number; seconds?: number } = {}): Promise<{ gflops: number }> {
  const m = opts.m ?? 1024;
  const k = opts.k ?? 1024;
  const n = opts.n ?? 1024;
  const seconds = opts.seconds ?? 1;
  const a = tf.randomUniform([m, k], -1, 1, 'float32', 1);
  const b = tf.randomUniform([k, n], -1, 1, 'float32', 2);
  try {
    for (let i = 0; i < 2; i++) {
      const c = tf.matMul(a, b);
      await c.data();
      c.dispose();
    }
    let iterations = 0;
    const t0 = performance.now();
    let elapsed = 0;
    while (elapsed < seconds * 1000) {
      const c = tf.matMul(a, b);
      if (iterations % 4 === 3 || elapsed > seconds * 900) await c.data();
      c.dispose();
      iterations++;
      elapsed = performance.now() - t0;
    }
    const last = tf.matMul(a, b);
    await last.data();
    last.dispose();
    iterations++;
    elapsed = performance.now() - t0;
    return { gflops: (2 * m * k * n * iterations) / (elapsed / 1000) / 1e9 };
  } finally {
    tf.dispose([a, b]);
  }
}
