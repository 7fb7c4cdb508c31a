import * as tf from '@tensorflow/tfjs-core';

/**
 * The active backend's own plain 2-D matMul throughput [m, k] x [k, n] (default 1024^3, operands
 * reused so XNNPACK's packed right-hand side is cached: the kernel's best case), the denominator of
 * MFU. Runs windows of ~0.25 s for about `seconds` (default 1) after a warm-up and returns the best
 * window, so a briefly busy machine lowers it less; each window ends with a read-back so
 * asynchronous backends are timed to completion.
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
    let best = 0;
    const end = performance.now() + seconds * 1000;
    do {
      const t0 = performance.now();
      let iterations = 0;
      while (iterations === 0 || performance.now() - t0 < 250) {
        const c = tf.matMul(a, b);
        if (performance.now() - t0 >= 200) await c.data(); // the window's last product is read back
        c.dispose();
        iterations++;
      }
      await product();
      iterations++;
      best = Math.max(best, (flops * iterations) / ((performance.now() - t0) / 1000) / 1e9);
    } while (performance.now() < end);
    return { gflops: best };
  } finally {
    tf.dispose([a, b]);
  }
}
