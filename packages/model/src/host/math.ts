/**
 * Plain-JS numeric building blocks for the host kernels: loops over Float32Arrays, chosen by
 * measurement on wasm/cpu (see bench/ops.ts). No TF.js in here.
 */

/** dst[c * rows + r] = src[srcOffset + r * cols + c]: transposes a row-major [rows, cols] matrix. */
export function transpose(src: Float32Array, rows: number, cols: number, dst: Float32Array, srcOffset = 0, dstOffset = 0): void {
  // 8x8 tiles keep both the read and the write streams in cache (measured ~2x over naive).
  const B = 8;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) {
        const o = srcOffset + r * cols;
        for (let c = c0; c < c1; c++) dst[dstOffset + c * rows + r] = src[o + c];
      }
    }
  }
}

/** out[c] = sum over rows of x[r * cols + c] (the gradient of a bias broadcast over rows). */
export function columnSums(x: Float32Array, rows: number, cols: number): Float32Array {
  const acc = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) acc[c] += x[o + c];
  }
  return Float32Array.from(acc);
}

const LOG2E = 1.4426950408889634;
const LN2 = 0.6931471805599453;
/** POW2[n + 150] = 2^n for n in [-150, 149]. */
const POW2 = new Float64Array(300).map((_, i) => Math.pow(2, i - 150));

/**
 * exp(x) for x in float32 range, relative error < 3e-7 (about 2x faster than Math.exp in V8):
 * exp(x) = 2^n * e^g with n = round(x log2 e), g = x - n ln2 in [-ln2/2, ln2/2], e^g by its
 * degree-6 Taylor polynomial. Inputs are clamped to [-87, 88]; -Infinity gives ~1.6e-38, so callers
 * that need an exact 0 (masked positions) skip the call instead.
 */
export function fastExp(x: number): number {
  if (x < -87) x = -87;
  else if (x > 88) x = 88;
  const n = Math.floor(x * LOG2E + 0.5);
  const g = x - n * LN2;
  return (
    POW2[n + 150] *
    (1 + g * (1 + g * (0.5 + g * (0.16666666666666666 + g * (0.041666666666666664 + g * (0.008333333333333333 + g * 0.001388888888888889))))))
  );
}
