// SIMD host kernels for the wasm backend, in AssemblyScript (compiled by scripts/build-kernels.mjs
// into src/host/simd-kernels.generated.ts). The module imports TF.js's own WebAssembly.Memory, so
// every pointer below is a tensor's byte offset in the wasm heap: no copies in or out.
// Rules that keep it safe inside someone else's memory: no static data, no allocation, no stack
// (locals and v128 values only); every store goes through a pointer the caller owns.

import { exp4, hsum } from './simd-math';

// ---------------------------------------------------------------- GELU (tanh form)

const K2: f32 = 1.5957691216057308; // 2 sqrt(2/pi)
const A: f32 = 0.044715;

/** y = x s, s = sigmoid(2 sqrt(2/pi) (x + A x^3)); s is kept for backward. n % 4 == 0 not required. */
export function geluForward(x: usize, y: usize, s: usize, n: i32): void {
  let i = 0;
  const one = f32x4.splat(1.0);
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(x + o);
    const u = f32x4.mul(f32x4.splat(-K2), f32x4.add(v, f32x4.mul(f32x4.splat(A), f32x4.mul(v, f32x4.mul(v, v)))));
    const sig = f32x4.div(one, f32x4.add(one, exp4(u)));
    v128.store(y + o, f32x4.mul(v, sig));
    v128.store(s + o, sig);
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(x + o);
    const u = f32x4.splat(-K2 * (v + A * v * v * v));
    const sig: f32 = <f32>1.0 / (<f32>1.0 + f32x4.extract_lane(exp4(u), 0));
    store<f32>(y + o, v * sig);
    store<f32>(s + o, sig);
  }
}

/** dx = dy (s + x s (1 - s) K2 (1 + 3 A x^2)). */
export function geluBackward(x: usize, s: usize, dy: usize, dx: usize, n: i32): void {
  let i = 0;
  const one = f32x4.splat(1.0);
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(x + o);
    const sig = v128.load(s + o);
    const du = f32x4.mul(f32x4.splat(K2), f32x4.add(one, f32x4.mul(f32x4.splat(3.0 * A), f32x4.mul(v, v))));
    const grad = f32x4.add(sig, f32x4.mul(f32x4.mul(v, f32x4.mul(sig, f32x4.sub(one, sig))), du));
    v128.store(dx + o, f32x4.mul(v128.load(dy + o), grad));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(x + o);
    const sig = load<f32>(s + o);
    store<f32>(dx + o, load<f32>(dy + o) * (sig + v * sig * (1.0 - sig) * K2 * (1.0 + 3.0 * A * v * v)));
  }
}

// ---------------------------------------------------------------- LayerNorm (C % 4 == 0)

/** y = (x - mean) rstd g + b per row of C; writes mean[N], rstd[N]. */
export function layerNormForward(x: usize, g: usize, b: usize, y: usize, mean: usize, rstd: usize, N: i32, C: i32, eps: f32): void {
  const rowBytes = <usize>C << 2;
  for (let r = 0; r < N; r++) {
    const xr = x + <usize>r * rowBytes;
    const yr = y + <usize>r * rowBytes;
    let acc = f32x4.splat(0);
    for (let c: usize = 0; c < rowBytes; c += 16) acc = f32x4.add(acc, v128.load(xr + c));
    const m = hsum(acc) / <f32>C;
    const mv = f32x4.splat(m);
    let sq = f32x4.splat(0);
    for (let c: usize = 0; c < rowBytes; c += 16) {
      const d = f32x4.sub(v128.load(xr + c), mv);
      sq = f32x4.add(sq, f32x4.mul(d, d));
    }
    const rs: f32 = 1.0 / Mathf.sqrt(hsum(sq) / <f32>C + eps);
    const rv = f32x4.splat(rs);
    for (let c: usize = 0; c < rowBytes; c += 16) {
      const nrm = f32x4.mul(f32x4.sub(v128.load(xr + c), mv), rv);
      v128.store(yr + c, f32x4.add(f32x4.mul(nrm, v128.load(g + c)), v128.load(b + c)));
    }
    store<f32>(mean + (<usize>r << 2), m);
    store<f32>(rstd + (<usize>r << 2), rs);
  }
}

/**
 * dx = rstd (dy g - mean(dy g) - norm mean(dy g norm)); dW[C] = sum_rows dy norm, dB[C] = sum_rows dy.
 */
export function layerNormBackward(x: usize, dy: usize, g: usize, mean: usize, rstd: usize, dx: usize, dW: usize, dB: usize, N: i32, C: i32): void {
  const rowBytes = <usize>C << 2;
  for (let c: usize = 0; c < rowBytes; c += 16) {
    v128.store(dW + c, f32x4.splat(0));
    v128.store(dB + c, f32x4.splat(0));
  }
  for (let r = 0; r < N; r++) {
    const xr = x + <usize>r * rowBytes;
    const dyr = dy + <usize>r * rowBytes;
    const dxr = dx + <usize>r * rowBytes;
    const mv = f32x4.splat(load<f32>(mean + (<usize>r << 2)));
    const rv = f32x4.splat(load<f32>(rstd + (<usize>r << 2)));
    let sD = f32x4.splat(0);
    let sDN = f32x4.splat(0);
    for (let c: usize = 0; c < rowBytes; c += 16) {
      const nrm = f32x4.mul(f32x4.sub(v128.load(xr + c), mv), rv);
      const d = v128.load(dyr + c);
      const dn = f32x4.mul(d, v128.load(g + c));
      sD = f32x4.add(sD, dn);
      sDN = f32x4.add(sDN, f32x4.mul(dn, nrm));
      v128.store(dW + c, f32x4.add(v128.load(dW + c), f32x4.mul(d, nrm)));
      v128.store(dB + c, f32x4.add(v128.load(dB + c), d));
    }
    const mD = f32x4.splat(hsum(sD) / <f32>C);
    const mDN = f32x4.splat(hsum(sDN) / <f32>C);
    for (let c: usize = 0; c < rowBytes; c += 16) {
      const nrm = f32x4.mul(f32x4.sub(v128.load(xr + c), mv), rv);
      const dn = f32x4.mul(v128.load(dyr + c), v128.load(g + c));
      v128.store(dxr + c, f32x4.mul(rv, f32x4.sub(f32x4.sub(dn, mD), f32x4.mul(nrm, mDN))));
    }
  }
}

// ---------------------------------------------------------------- transposes and sums

/** dst [cols, rows] = src [rows, cols]^T, in 4x4 tiles; rows % 4 == 0 and cols % 4 == 0. */
export function transpose(src: usize, rows: i32, cols: i32, dst: usize): void {
  const sRow = <usize>cols << 2;
  const dRow = <usize>rows << 2;
  for (let r0 = 0; r0 < rows; r0 += 4) {
    for (let c0 = 0; c0 < cols; c0 += 4) {
      const s = src + <usize>r0 * sRow + (<usize>c0 << 2);
      const a = v128.load(s);
      const b = v128.load(s + sRow);
      const c = v128.load(s + 2 * sRow);
      const d = v128.load(s + 3 * sRow);
      const ab0 = i32x4.shuffle(a, b, 0, 4, 1, 5); // a0 b0 a1 b1
      const ab1 = i32x4.shuffle(a, b, 2, 6, 3, 7); // a2 b2 a3 b3
      const cd0 = i32x4.shuffle(c, d, 0, 4, 1, 5);
      const cd1 = i32x4.shuffle(c, d, 2, 6, 3, 7);
      const t = dst + <usize>c0 * dRow + (<usize>r0 << 2);
      v128.store(t, i64x2.shuffle(ab0, cd0, 0, 2)); // a0 b0 c0 d0
      v128.store(t + dRow, i64x2.shuffle(ab0, cd0, 1, 3)); // a1 b1 c1 d1
      v128.store(t + 2 * dRow, i64x2.shuffle(ab1, cd1, 0, 2));
      v128.store(t + 3 * dRow, i64x2.shuffle(ab1, cd1, 1, 3));
    }
  }
}

/** out[c] = sum_r x[r, c] for x [rows, cols], cols % 4 == 0. */
export function columnSums(x: usize, rows: i32, cols: i32, out: usize): void {
  const rowBytes = <usize>cols << 2;
  for (let c: usize = 0; c < rowBytes; c += 16) v128.store(out + c, f32x4.splat(0));
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * rowBytes;
    for (let c: usize = 0; c < rowBytes; c += 16) v128.store(out + c, f32x4.add(v128.load(out + c), v128.load(xr + c)));
  }
}

/**
 * Copies a [rows, w] block between strided layouts (offsets and strides in floats, w % 4 == 0):
 * dst[dOff + t * dStride + j] = mul * src[sOff + t * sStride + j].
 */
export function copyBlock(src: usize, sOff: i32, sStride: i32, dst: usize, dOff: i32, dStride: i32, rows: i32, w: i32, mul: f32): void {
  const m = f32x4.splat(mul);
  for (let t = 0; t < rows; t++) {
    const s = src + ((<usize>sOff + <usize>t * <usize>sStride) << 2);
    const d = dst + ((<usize>dOff + <usize>t * <usize>dStride) << 2);
    for (let j: usize = 0; j < (<usize>w << 2); j += 16) v128.store(d + j, f32x4.mul(v128.load(s + j), m));
  }
}

/** Transposing copy: dst[j * rows + t] = src[sOff + t * sStride + j] for t < rows, j < w (rows, w % 4 == 0). */
export function copyBlockTransposed(src: usize, sOff: i32, sStride: i32, dst: usize, rows: i32, w: i32): void {
  const sRow = <usize>sStride << 2;
  const dRow = <usize>rows << 2;
  for (let t0 = 0; t0 < rows; t0 += 4) {
    for (let j0 = 0; j0 < w; j0 += 4) {
      const s = src + ((<usize>sOff + <usize>t0 * <usize>sStride + <usize>j0) << 2);
      const a = v128.load(s);
      const b = v128.load(s + sRow);
      const c = v128.load(s + 2 * sRow);
      const d = v128.load(s + 3 * sRow);
      const ab0 = i32x4.shuffle(a, b, 0, 4, 1, 5);
      const ab1 = i32x4.shuffle(a, b, 2, 6, 3, 7);
      const cd0 = i32x4.shuffle(c, d, 0, 4, 1, 5);
      const cd1 = i32x4.shuffle(c, d, 2, 6, 3, 7);
      const t = dst + <usize>j0 * dRow + (<usize>t0 << 2);
      v128.store(t, i64x2.shuffle(ab0, cd0, 0, 2));
      v128.store(t + dRow, i64x2.shuffle(ab0, cd0, 1, 3));
      v128.store(t + 2 * dRow, i64x2.shuffle(ab1, cd1, 0, 2));
      v128.store(t + 3 * dRow, i64x2.shuffle(ab1, cd1, 1, 3));
    }
  }
}

// ---------------------------------------------------------------- causal softmax backward

/**
 * dS = P (dP - rowsum(P dP)) on the lower triangle of [T, T], 0 above; also writes dS^T.
 * T % 4 == 0.
 */
export function causalSoftmaxBackward(p: usize, dp: usize, ds: usize, dst: usize, T: i32): void {
  const row = <usize>T << 2;
  for (let i = 0; i < T; i++) {
    const o = <usize>i * row;
    const lim = <usize>(i + 1) << 2; // bytes of the lower-triangle part of the row
    let acc = f32x4.splat(0);
    let j: usize = 0;
    for (; j + 16 <= lim; j += 16) acc = f32x4.add(acc, f32x4.mul(v128.load(p + o + j), v128.load(dp + o + j)));
    let dot = hsum(acc);
    for (; j < lim; j += 4) dot += load<f32>(p + o + j) * load<f32>(dp + o + j);
    const dv = f32x4.splat(dot);
    j = 0;
    for (; j + 16 <= lim; j += 16) v128.store(ds + o + j, f32x4.mul(v128.load(p + o + j), f32x4.sub(v128.load(dp + o + j), dv)));
    for (; j < lim; j += 4) store<f32>(ds + o + j, load<f32>(p + o + j) * (load<f32>(dp + o + j) - dot));
    for (; j < row; j += 4) store<f32>(ds + o + j, 0);
  }
  transpose(ds, T, T, dst);
}

// ---------------------------------------------------------------- cross-entropy gradient

/**
 * dlogits[n] = scale (p[n] - onehot(target_n)) for target_n >= 0, 0 for masked rows, from the
 * softmax probabilities p [N, V]; targets are float32 ids (exact below 2^24). V % 4 == 0.
 */
export function crossEntropyGrad(p: usize, targets: usize, dl: usize, N: i32, V: i32, scale: f32): void {
  const rowBytes = <usize>V << 2;
  const s = f32x4.splat(scale);
  for (let n = 0; n < N; n++) {
    const o = <usize>n * rowBytes;
    const t = <i32>load<f32>(targets + (<usize>n << 2));
    if (t < 0) {
      for (let j: usize = 0; j < rowBytes; j += 16) v128.store(dl + o + j, f32x4.splat(0));
      continue;
    }
    for (let j: usize = 0; j < rowBytes; j += 16) v128.store(dl + o + j, f32x4.mul(v128.load(p + o + j), s));
    const at = dl + o + (<usize>t << 2);
    store<f32>(at, load<f32>(at) - scale);
  }
}

// ---------------------------------------------------------------- causal softmax (attention)

/** p[i, j] = softmax_j(s[i, 0..i]) for j <= i, 0 for j > i ([T, T], T % 4 == 0). */
export function causalSoftmax(s: usize, p: usize, T: i32): void {
  const row = <usize>T << 2;
  for (let i = 0; i < T; i++) {
    const o = <usize>i * row;
    const lim = <usize>(i + 1) << 2;
    const full = lim & ~(<usize>15); // bytes covered by whole vectors
    let mv = f32x4.splat(-Infinity);
    let j: usize = 0;
    for (; j < full; j += 16) mv = f32x4.max(mv, v128.load(s + o + j));
    let m = Mathf.max(Mathf.max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), Mathf.max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
    for (; j < lim; j += 4) m = Mathf.max(m, load<f32>(s + o + j));
    const mm = f32x4.splat(m);
    let acc = f32x4.splat(0);
    for (j = 0; j < full; j += 16) {
      const e = exp4(f32x4.sub(v128.load(s + o + j), mm));
      v128.store(p + o + j, e);
      acc = f32x4.add(acc, e);
    }
    let sum = hsum(acc);
    // the partial last vector: lanes past the diagonal become 0
    if (j < lim) {
      const e = exp4(f32x4.sub(v128.load(s + o + j), mm));
      const lanes = <i32>((lim - j) >> 2); // 1..3 valid lanes
      const keep = i32x4.lt_s(i32x4(0, 1, 2, 3), i32x4.splat(lanes));
      const ev = v128.and(e, keep);
      v128.store(p + o + j, ev);
      sum += hsum(ev);
      j += 16;
    }
    const inv = f32x4.splat(<f32>1.0 / sum);
    for (let q: usize = 0; q < j; q += 16) v128.store(p + o + q, f32x4.mul(v128.load(p + o + q), inv));
    for (; j < row; j += 16) v128.store(p + o + j, f32x4.splat(0));
  }
}

export { gemmCausalScores, gemmTriangular, gemmNN, gemmTN } from './gemm';
