/**
 * Device-resident constants for the tf kernel set.
 *
 * A JS number given to a TF.js op is converted to a tensor on every call: tf.mul(x, 0.5) uploads
 * a 4-byte scalar each time (engine.makeTensor), and so do tf.add(x, eps), tf.pow(x, 3) and
 * tf.sub(1, s). On a GPU each is a host -> device copy in the middle of the step. Here each value
 * is uploaded once per backend and kept (tf.keep: no tidy disposes it), so after the first call
 * `tf.mul(x, constant(0.5))` crosses nothing. The same for the causal mask, per (backend, T), and
 * the head's row numbers, per (backend, N).
 *
 * The cache is keyed by the active backend's name: a tensor of another backend would be moved
 * (downloaded and re-uploaded) by the engine when an op mixes them. Cached tensors live for the
 * process; they count in tf.memory().numTensors once created.
 */
import * as tf from '@tensorflow/tfjs-core';

/** The dtypes constants come in: float32 for arithmetic, int32 to compare with token ids. */
export type ConstantDtype = 'float32' | 'int32';

const scalars = new Map<string, tf.Scalar>();
const masks = new Map<string, tf.Tensor2D>();
const rows = new Map<string, tf.Tensor2D>();

/** A number's cache key (distinguishes -0 from 0: they differ as divisors). */
function numberKey(value: number): string {
  return Object.is(value, -0) ? '-0' : String(value);
}

/**
 * A kept scalar of `value` on the active backend, created on first use. Never dispose it; use it
 * as an operand (`tf.mul(x, constant(0.5))`), never as a layer's result.
 */
export function constant(value: number, dtype: ConstantDtype = 'float32'): tf.Scalar {
  const key = `${tf.getBackend()}|${dtype}|${numberKey(value)}`;
  let s = scalars.get(key);
  if (s === undefined || s.isDisposed) {
    s = tf.keep(tf.scalar(value, dtype));
    scalars.set(key, s);
  }
  return s;
}

/**
 * Additive causal mask [T, T], kept per (backend, T): 0 on and below the diagonal, -1e9 above
 * (position t sees 0..t; exp underflows to 0). Never dispose it.
 */
export function causalMask(T: number): tf.Tensor2D {
  const key = `${tf.getBackend()}|${T}`;
  let m = masks.get(key);
  if (m === undefined || m.isDisposed) {
    const values = new Float32Array(T * T);
    for (let i = 0; i < T; i++) values.fill(-1e9, i * T + i + 1, (i + 1) * T);
    m = tf.keep(tf.tensor2d(values, [T, T])); // one upload per (backend, T), then cached
    masks.set(key, m);
  }
  return m;
}

/**
 * Row numbers 0..N-1 as int32 [N, 1], kept per (backend, N): the first column of the (row, target)
 * pairs at which the head reads and writes its [N, V] tensors (tf.gatherND, tf.tensorScatterUpdate).
 * tf.range would build them per call, and on TensorFlow upload its bounds each time. Never dispose it.
 */
export function rowIndices(N: number): tf.Tensor2D {
  const key = `${tf.getBackend()}|${N}`;
  let r = rows.get(key);
  if (r === undefined || r.isDisposed) {
    const values = new Int32Array(N);
    for (let i = 0; i < N; i++) values[i] = i;
    r = tf.keep(tf.tensor2d(values, [N, 1], 'int32')); // one upload per (backend, N), then cached
    rows.set(key, r);
  }
  return r;
}
