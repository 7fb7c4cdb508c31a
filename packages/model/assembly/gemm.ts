// GEMM kernels of the SIMD module (see kernels.ts for the rules: no data, no allocation, no stack).

// ---------------------------------------------------------------- causal attention (per (b, h))
// Small GEMMs on one (batch, head) pair, T % 8 == 0 and head size K % 8 == 0, skipping the blocks
// that the causal mask zeroes. 4 x 8 output tiles in 8 v128 accumulators; each step loads one row
// segment of the right operand and splats one value per output row.

/**
 * C[i, j] = sum_d A[i, d] Bt[d, j] for every 4x8 tile that touches j <= i (A [T, K], Bt [K, T],
 * C [T, T]). Entries of other tiles are left untouched: callers read only j <= i.
 */
export function gemmCausalScores(a: usize, bt: usize, c: usize, T: i32, K: i32): void {
  const tb = <usize>T << 2;
  const kb = <usize>K << 2;
  for (let i0 = 0; i0 < T; i0 += 4) {
    const a0 = a + <usize>i0 * kb;
    for (let j0 = 0; j0 < i0 + 4; j0 += 8) {
      let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
      let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
      let brow = bt + (<usize>j0 << 2);
      for (let d: usize = 0; d < kb; d += 4) {
        const b0 = v128.load(brow);
        const b1 = v128.load(brow + 16);
        const x0 = v128.load32_splat(a0 + d);
        const x1 = v128.load32_splat(a0 + kb + d);
        const x2 = v128.load32_splat(a0 + 2 * kb + d);
        const x3 = v128.load32_splat(a0 + 3 * kb + d);
        c00 = f32x4.add(c00, f32x4.mul(x0, b0));
        c01 = f32x4.add(c01, f32x4.mul(x0, b1));
        c10 = f32x4.add(c10, f32x4.mul(x1, b0));
        c11 = f32x4.add(c11, f32x4.mul(x1, b1));
        c20 = f32x4.add(c20, f32x4.mul(x2, b0));
        c21 = f32x4.add(c21, f32x4.mul(x2, b1));
        c30 = f32x4.add(c30, f32x4.mul(x3, b0));
        c31 = f32x4.add(c31, f32x4.mul(x3, b1));
        brow += tb;
      }
      const o = c + <usize>i0 * tb + (<usize>j0 << 2);
      v128.store(o, c00);
      v128.store(o + 16, c01);
      v128.store(o + tb, c10);
      v128.store(o + tb + 16, c11);
      v128.store(o + 2 * tb, c20);
      v128.store(o + 2 * tb + 16, c21);
      v128.store(o + 3 * tb, c30);
      v128.store(o + 3 * tb + 16, c31);
    }
  }
}

/**
 * C = A B for a triangular A [T, T] (lower: A[i, j] = 0 for j > i; upper: for j < i), B [T, K],
 * C [T, K]; the zero half of A is skipped (A must hold zeros there for the 4-row tiles' edges).
 */
export function gemmTriangular(a: usize, b: usize, c: usize, T: i32, K: i32, upper: bool): void {
  const tb = <usize>T << 2;
  const kb = <usize>K << 2;
  for (let i0 = 0; i0 < T; i0 += 4) {
    const a0 = a + <usize>i0 * tb;
    const jStart = upper ? i0 : 0;
    const jEnd = upper ? T : i0 + 4;
    for (let k0: usize = 0; k0 < kb; k0 += 32) {
      let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
      let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
      let brow = b + <usize>jStart * kb + k0;
      for (let j: usize = <usize>jStart << 2; j < (<usize>jEnd << 2); j += 4) {
        const b0 = v128.load(brow);
        const b1 = v128.load(brow + 16);
        const x0 = v128.load32_splat(a0 + j);
        const x1 = v128.load32_splat(a0 + tb + j);
        const x2 = v128.load32_splat(a0 + 2 * tb + j);
        const x3 = v128.load32_splat(a0 + 3 * tb + j);
        c00 = f32x4.add(c00, f32x4.mul(x0, b0));
        c01 = f32x4.add(c01, f32x4.mul(x0, b1));
        c10 = f32x4.add(c10, f32x4.mul(x1, b0));
        c11 = f32x4.add(c11, f32x4.mul(x1, b1));
        c20 = f32x4.add(c20, f32x4.mul(x2, b0));
        c21 = f32x4.add(c21, f32x4.mul(x2, b1));
        c30 = f32x4.add(c30, f32x4.mul(x3, b0));
        c31 = f32x4.add(c31, f32x4.mul(x3, b1));
        brow += kb;
      }
      const o = c + <usize>i0 * kb + k0;
      v128.store(o, c00);
      v128.store(o + 16, c01);
      v128.store(o + kb, c10);
      v128.store(o + kb + 16, c11);
      v128.store(o + 2 * kb, c20);
      v128.store(o + 2 * kb + 16, c21);
      v128.store(o + 3 * kb, c30);
      v128.store(o + 3 * kb + 16, c31);
    }
  }
}

// ---------------------------------------------------------------- dense GEMMs (M % 4 == 0, N % 8 == 0)
// The same 4 x 8 loadsplat tiles as above (as fast as XNNPACK's plain matMul here) but with no
// packing of the right-hand operand, no TF.js op, and A^T read in place. Cache blocking: K in
// blocks of KC, M in blocks of MC rows, so a KC x 8 panel of B and an MC x KC block of A stay in
// L1 (8 + 32 kB) while the tiles sweep them; partial sums across K blocks go through C.

const KC = 256;
/** Rows of A per block: an MC x min(K, KC) block of A is 32 kB. */
// @ts-ignore: decorator
@inline function rowsPerBlock(K: i32): i32 {
  return max(4, (8192 / min(K, KC)) & ~3);
}

/** C [M, N] = A [M, K] B [K, N] (+ bias [N] when hasBias). */
export function gemmNN(a: usize, b: usize, bias: usize, c: usize, M: i32, K: i32, N: i32, hasBias: bool): void {
  const kb = <usize>K << 2;
  const nb = <usize>N << 2;
  const MC = rowsPerBlock(K);
  for (let k0 = 0; k0 < K; k0 += KC) {
    const k1 = min(K, k0 + KC);
    for (let m0 = 0; m0 < M; m0 += MC) {
      const m1 = min(M, m0 + MC);
      for (let j0: usize = 0; j0 < nb; j0 += 32) {
        for (let i0 = m0; i0 < m1; i0 += 4) {
          const o = c + <usize>i0 * nb + j0;
          let c00: v128, c01: v128, c10: v128, c11: v128, c20: v128, c21: v128, c30: v128, c31: v128;
          if (k0 > 0) {
            c00 = v128.load(o); c01 = v128.load(o + 16);
            c10 = v128.load(o + nb); c11 = v128.load(o + nb + 16);
            c20 = v128.load(o + 2 * nb); c21 = v128.load(o + 2 * nb + 16);
            c30 = v128.load(o + 3 * nb); c31 = v128.load(o + 3 * nb + 16);
          } else {
            const z0 = hasBias ? v128.load(bias + j0) : f32x4.splat(0);
            const z1 = hasBias ? v128.load(bias + j0 + 16) : f32x4.splat(0);
            c00 = z0; c01 = z1; c10 = z0; c11 = z1; c20 = z0; c21 = z1; c30 = z0; c31 = z1;
          }
          const a0 = a + <usize>i0 * kb;
          let brow = b + <usize>k0 * nb + j0;
          for (let k: usize = <usize>k0 << 2; k < (<usize>k1 << 2); k += 4) {
            const b0 = v128.load(brow);
            const b1 = v128.load(brow + 16);
            const x0 = v128.load32_splat(a0 + k);
            const x1 = v128.load32_splat(a0 + kb + k);
            const x2 = v128.load32_splat(a0 + 2 * kb + k);
            const x3 = v128.load32_splat(a0 + 3 * kb + k);
            c00 = f32x4.add(c00, f32x4.mul(x0, b0));
            c01 = f32x4.add(c01, f32x4.mul(x0, b1));
            c10 = f32x4.add(c10, f32x4.mul(x1, b0));
            c11 = f32x4.add(c11, f32x4.mul(x1, b1));
            c20 = f32x4.add(c20, f32x4.mul(x2, b0));
            c21 = f32x4.add(c21, f32x4.mul(x2, b1));
            c30 = f32x4.add(c30, f32x4.mul(x3, b0));
            c31 = f32x4.add(c31, f32x4.mul(x3, b1));
            brow += nb;
          }
          storeTile(o, nb, c00, c01, c10, c11, c20, c21, c30, c31);
        }
      }
    }
  }
}

/** C [M, N] = A^T B for A [K, M], B [K, N] (e.g. dW = X^T dY over K tokens). */
export function gemmTN(a: usize, b: usize, c: usize, M: i32, K: i32, N: i32): void {
  const mb = <usize>M << 2;
  const nb = <usize>N << 2;
  const MC = rowsPerBlock(K);
  for (let k0 = 0; k0 < K; k0 += KC) {
    const k1 = min(K, k0 + KC);
    for (let m0 = 0; m0 < M; m0 += MC) {
      const m1 = min(M, m0 + MC);
      for (let j0: usize = 0; j0 < nb; j0 += 32) {
        for (let i0 = m0; i0 < m1; i0 += 4) {
          const o = c + <usize>i0 * nb + j0;
          let c00: v128, c01: v128, c10: v128, c11: v128, c20: v128, c21: v128, c30: v128, c31: v128;
          if (k0 > 0) {
            c00 = v128.load(o); c01 = v128.load(o + 16);
            c10 = v128.load(o + nb); c11 = v128.load(o + nb + 16);
            c20 = v128.load(o + 2 * nb); c21 = v128.load(o + 2 * nb + 16);
            c30 = v128.load(o + 3 * nb); c31 = v128.load(o + 3 * nb + 16);
          } else {
            c00 = f32x4.splat(0); c01 = c00; c10 = c00; c11 = c00; c20 = c00; c21 = c00; c30 = c00; c31 = c00;
          }
          let arow = a + <usize>k0 * mb + (<usize>i0 << 2);
          let brow = b + <usize>k0 * nb + j0;
          for (let k = k0; k < k1; k++) {
            const b0 = v128.load(brow);
            const b1 = v128.load(brow + 16);
            const x0 = v128.load32_splat(arow);
            const x1 = v128.load32_splat(arow + 4);
            const x2 = v128.load32_splat(arow + 8);
            const x3 = v128.load32_splat(arow + 12);
            c00 = f32x4.add(c00, f32x4.mul(x0, b0));
            c01 = f32x4.add(c01, f32x4.mul(x0, b1));
            c10 = f32x4.add(c10, f32x4.mul(x1, b0));
            c11 = f32x4.add(c11, f32x4.mul(x1, b1));
            c20 = f32x4.add(c20, f32x4.mul(x2, b0));
            c21 = f32x4.add(c21, f32x4.mul(x2, b1));
            c30 = f32x4.add(c30, f32x4.mul(x3, b0));
            c31 = f32x4.add(c31, f32x4.mul(x3, b1));
            arow += mb;
            brow += nb;
          }
          storeTile(o, nb, c00, c01, c10, c11, c20, c21, c30, c31);
        }
      }
    }
  }
}

// @ts-ignore: decorator
@inline function storeTile(o: usize, rowBytes: usize, c00: v128, c01: v128, c10: v128, c11: v128, c20: v128, c21: v128, c30: v128, c31: v128): void {
  v128.store(o, c00);
  v128.store(o + 16, c01);
  v128.store(o + rowBytes, c10);
  v128.store(o + rowBytes + 16, c11);
  v128.store(o + 2 * rowBytes, c20);
  v128.store(o + 2 * rowBytes + 16, c21);
  v128.store(o + 3 * rowBytes, c30);
  v128.store(o + 3 * rowBytes + 16, c31);
}
