// Wire-codec kernels of the ring collectives (AssemblyScript, 128-bit SIMD).
//
// Pointers are byte offsets into the imported memory (a KernelArena), counts are elements.
// Bytes [0, 64) of that memory are this module's temporary: the last n % 8 elements of a 16-bit
// codec kernel are copied there and run through the same 8-lane code, so a tail is converted
// exactly like the body. Every function is elementwise and deterministic (wasm floats are IEEE
// 754 binary32 with round-to-nearest-even and no flush-to-zero), so the results match the
// JavaScript references of src/codecs/ bit for bit (NaN payloads aside).

const SUM: i32 = 0;
const MAX: i32 = 1;
const BF16: i32 = 0;
const FP16: i32 = 1;
/** 8 fp32 of temporary at TEMP_F32, 8 codes at TEMP_CODES. */
const TEMP_F32: usize = 0;
const TEMP_CODES: usize = 32;

// ---------------------------------------------------------------- per-lane math

// @ts-ignore: decorator
@inline function combine(op: i32, a: v128, b: v128): v128 {
  return op == MAX ? f32x4.max(a, b) : f32x4.add(a, b);
}

// @ts-ignore: decorator
@inline function combine1(op: i32, a: f32, b: f32): f32 {
  return op == MAX ? max<f32>(a, b) : a + b;
}

/** fp32 bits -> bf16 code per i32 lane: round to nearest even; NaN stays NaN (quiet bit set). */
// @ts-ignore: decorator
@inline function encodeBf16x4(b: v128): v128 {
  const hi = i32x4.shr_u(b, 16);
  const lsb = i32x4.shr_u(i32x4.shl(b, 15), 31); // bit 16, the lowest kept bit
  const rounded = i32x4.shr_u(i32x4.add(i32x4.add(b, i32x4.splat(0x7fff)), lsb), 16);
  return v128.bitselect(v128.or(hi, i32x4.splat(0x40)), rounded, f32x4.ne(b, b));
}

/**
 * fp32 bits -> IEEE half code per i32 lane, round to nearest even. |x| < 2^-14: x + 0.5 rounds
 * x to a multiple of 2^-24 (the half subnormal step) in one fp32 add, whose low bits are the code;
 * normal: rebias the exponent and round the 13 dropped bits (a carry may reach infinity);
 * |x| >= 65536 and infinities: infinity; NaN: quiet NaN keeping the top payload bits.
 */
// @ts-ignore: decorator
@inline function encodeFp16x4(b: v128): v128 {
  const a = v128.and(b, i32x4.splat(0x7fffffff));
  const sign = v128.and(i32x4.shr_u(b, 16), i32x4.splat(0x8000));
  const lsb = v128.and(i32x4.shr_u(a, 13), i32x4.splat(1));
  const normal = i32x4.shr_u(i32x4.add(i32x4.sub(a, i32x4.splat(0x38000000)), i32x4.add(lsb, i32x4.splat(0xfff))), 13);
  const subnormal = i32x4.sub(f32x4.add(a, f32x4.splat(0.5)), i32x4.splat(0x3f000000));
  let r = v128.bitselect(subnormal, normal, i32x4.lt_s(a, i32x4.splat(0x38800000)));
  r = v128.bitselect(i32x4.splat(0x7c00), r, i32x4.ge_s(a, i32x4.splat(0x47800000)));
  const nan = v128.or(i32x4.splat(0x7e00), v128.and(i32x4.shr_u(a, 13), i32x4.splat(0x3ff)));
  r = v128.bitselect(nan, r, i32x4.gt_s(a, i32x4.splat(0x7f800000)));
  return v128.or(r, sign);
}

/** Half code per i32 lane -> fp32 bits, exact. */
// @ts-ignore: decorator
@inline function decodeFp16x4(h: v128): v128 {
  const em = v128.and(h, i32x4.splat(0x7fff));
  const exp = v128.and(em, i32x4.splat(0x7c00));
  const shifted = i32x4.shl(em, 13);
  const normal = i32x4.add(shifted, i32x4.splat(112 << 23));
  const special = i32x4.add(shifted, i32x4.splat(224 << 23)); // infinities and NaNs
  const subnormal = f32x4.mul(f32x4.convert_i32x4_s(em), f32x4.splat(5.9604644775390625e-8)); // m * 2^-24
  let r = v128.bitselect(special, normal, i32x4.eq(exp, i32x4.splat(0x7c00)));
  r = v128.bitselect(subnormal, r, i32x4.eq(exp, i32x4.splat(0)));
  return v128.or(r, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

// @ts-ignore: decorator
@inline function encode4(codec: i32, f: v128): v128 {
  return codec == BF16 ? encodeBf16x4(f) : encodeFp16x4(f);
}

// @ts-ignore: decorator
@inline function decode4(codec: i32, h: v128): v128 {
  return codec == BF16 ? i32x4.shl(h, 16) : decodeFp16x4(h);
}

// ---------------------------------------------------------------- 8-element blocks of 16-bit codecs

/** codes[0..8) = enc(f[0..8)); with keep, f = dec(codes) too (the owner keeps what others decode). */
// @ts-ignore: decorator
@inline function encode8(codec: i32, f: usize, w: usize, keep: bool): void {
  const codes = i16x8.narrow_i32x4_u(encode4(codec, v128.load(f)), encode4(codec, v128.load(f, 16)));
  v128.store(w, codes);
  if (keep) {
    v128.store(f, decode4(codec, i32x4.extend_low_i16x8_u(codes)));
    v128.store(f, decode4(codec, i32x4.extend_high_i16x8_u(codes)), 16);
  }
}

// @ts-ignore: decorator
@inline function decode8(codec: i32, w: usize, f: usize): void {
  const codes = v128.load(w);
  v128.store(f, decode4(codec, i32x4.extend_low_i16x8_u(codes)));
  v128.store(f, decode4(codec, i32x4.extend_high_i16x8_u(codes)), 16);
}

/** codes = enc(op(dec(codes), f)): a ring step that forwards the partial result. */
// @ts-ignore: decorator
@inline function reduceWire8(codec: i32, op: i32, f: usize, w: usize): void {
  const codes = v128.load(w);
  const lo = combine(op, decode4(codec, i32x4.extend_low_i16x8_u(codes)), v128.load(f));
  const hi = combine(op, decode4(codec, i32x4.extend_high_i16x8_u(codes)), v128.load(f, 16));
  v128.store(w, i16x8.narrow_i32x4_u(encode4(codec, lo), encode4(codec, hi)));
}

/** f = op(f, dec(codes)) / div; with round, codes = enc(f) and f = dec(codes) (all in registers). */
// @ts-ignore: decorator
@inline function reduceLocal8(codec: i32, op: i32, f: usize, w: usize, div: f32, round: bool): void {
  const codes = v128.load(w);
  let lo = combine(op, v128.load(f), decode4(codec, i32x4.extend_low_i16x8_u(codes)));
  let hi = combine(op, v128.load(f, 16), decode4(codec, i32x4.extend_high_i16x8_u(codes)));
  if (div != 1) {
    lo = f32x4.div(lo, f32x4.splat(div));
    hi = f32x4.div(hi, f32x4.splat(div));
  }
  if (round) {
    const out = i16x8.narrow_i32x4_u(encode4(codec, lo), encode4(codec, hi));
    v128.store(w, out);
    lo = decode4(codec, i32x4.extend_low_i16x8_u(out));
    hi = decode4(codec, i32x4.extend_high_i16x8_u(out));
  }
  v128.store(f, lo);
  v128.store(f, hi, 16);
}

/** Copies the tail (fewer than 8 elements) to the temporary, so the 8-lane code can run on it. */
// @ts-ignore: decorator
@inline function tailIn(f: usize, w: usize, rest: usize): void {
  v128.store(TEMP_F32, i32x4.splat(0));
  v128.store(TEMP_F32, i32x4.splat(0), 16);
  v128.store(TEMP_CODES, i32x4.splat(0));
  memory.copy(TEMP_F32, f, rest << 2);
  memory.copy(TEMP_CODES, w, rest << 1);
}

// @ts-ignore: decorator
@inline function tailOut(f: usize, w: usize, rest: usize): void {
  memory.copy(f, TEMP_F32, rest << 2);
  memory.copy(w, TEMP_CODES, rest << 1);
}

// ---------------------------------------------------------------- 16-bit codec loops

// @ts-ignore: decorator
@inline function encodeLoop(codec: i32, f: usize, w: usize, n: i32, keep: bool): void {
  const body = <usize>(n & ~7);
  for (let i: usize = 0; i < body; i += 8) encode8(codec, f + (i << 2), w + (i << 1), keep);
  const rest = <usize>n - body;
  if (rest == 0) return;
  tailIn(f + (body << 2), w + (body << 1), rest);
  encode8(codec, TEMP_F32, TEMP_CODES, keep);
  tailOut(f + (body << 2), w + (body << 1), rest);
}

// @ts-ignore: decorator
@inline function decodeLoop(codec: i32, w: usize, f: usize, n: i32): void {
  const body = <usize>(n & ~7);
  for (let i: usize = 0; i < body; i += 8) decode8(codec, w + (i << 1), f + (i << 2));
  const rest = <usize>n - body;
  if (rest == 0) return;
  tailIn(f + (body << 2), w + (body << 1), rest);
  decode8(codec, TEMP_CODES, TEMP_F32);
  tailOut(f + (body << 2), w + (body << 1), rest);
}

// @ts-ignore: decorator
@inline function reduceWireLoop(codec: i32, op: i32, f: usize, w: usize, n: i32): void {
  const body = <usize>(n & ~7);
  for (let i: usize = 0; i < body; i += 8) reduceWire8(codec, op, f + (i << 2), w + (i << 1));
  const rest = <usize>n - body;
  if (rest == 0) return;
  tailIn(f + (body << 2), w + (body << 1), rest);
  reduceWire8(codec, op, TEMP_F32, TEMP_CODES);
  tailOut(f + (body << 2), w + (body << 1), rest);
}

// @ts-ignore: decorator
@inline function reduceLocalLoop(codec: i32, op: i32, f: usize, w: usize, n: i32, div: f32, round: bool): void {
  const body = <usize>(n & ~7);
  for (let i: usize = 0; i < body; i += 8) reduceLocal8(codec, op, f + (i << 2), w + (i << 1), div, round);
  const rest = <usize>n - body;
  if (rest == 0) return;
  tailIn(f + (body << 2), w + (body << 1), rest);
  reduceLocal8(codec, op, TEMP_F32, TEMP_CODES, div, round);
  tailOut(f + (body << 2), w + (body << 1), rest);
}

// ---------------------------------------------------------------- exports: 16-bit codecs

/** codes[i] = enc(f[i]); keep != 0: also f[i] = dec(codes[i]). */
export function encodeBf16(f: usize, w: usize, n: i32, keep: i32): void {
  if (keep) encodeLoop(BF16, f, w, n, true);
  else encodeLoop(BF16, f, w, n, false);
}

export function encodeFp16(f: usize, w: usize, n: i32, keep: i32): void {
  if (keep) encodeLoop(FP16, f, w, n, true);
  else encodeLoop(FP16, f, w, n, false);
}

/** f[i] = dec(codes[i]) */
export function decodeBf16(w: usize, f: usize, n: i32): void {
  decodeLoop(BF16, w, f, n);
}

export function decodeFp16(w: usize, f: usize, n: i32): void {
  decodeLoop(FP16, w, f, n);
}

/** codes[i] = enc(op(dec(codes[i]), f[i])) */
export function reduceWireBf16(f: usize, w: usize, n: i32, op: i32): void {
  if (op == MAX) reduceWireLoop(BF16, MAX, f, w, n);
  else reduceWireLoop(BF16, SUM, f, w, n);
}

export function reduceWireFp16(f: usize, w: usize, n: i32, op: i32): void {
  if (op == MAX) reduceWireLoop(FP16, MAX, f, w, n);
  else reduceWireLoop(FP16, SUM, f, w, n);
}

/** f[i] = op(f[i], dec(codes[i])) / div; round != 0: then codes[i] = enc(f[i]), f[i] = dec(codes[i]). */
export function reduceLocalBf16(f: usize, w: usize, n: i32, op: i32, div: f32, round: i32): void {
  if (op == MAX) {
    if (round) reduceLocalLoop(BF16, MAX, f, w, n, div, true);
    else reduceLocalLoop(BF16, MAX, f, w, n, div, false);
  } else if (round) reduceLocalLoop(BF16, SUM, f, w, n, div, true);
  else reduceLocalLoop(BF16, SUM, f, w, n, div, false);
}

export function reduceLocalFp16(f: usize, w: usize, n: i32, op: i32, div: f32, round: i32): void {
  if (op == MAX) {
    if (round) reduceLocalLoop(FP16, MAX, f, w, n, div, true);
    else reduceLocalLoop(FP16, MAX, f, w, n, div, false);
  } else if (round) reduceLocalLoop(FP16, SUM, f, w, n, div, true);
  else reduceLocalLoop(FP16, SUM, f, w, n, div, false);
}

// ---------------------------------------------------------------- exports: fp32

// @ts-ignore: decorator
@inline function combineF32Loop(op: i32, dst: usize, src: usize, n: i32): void {
  const body = <usize>(n & ~15);
  for (let i: usize = 0; i < body; i += 16) {
    const d = dst + (i << 2);
    const s = src + (i << 2);
    v128.store(d, combine(op, v128.load(d), v128.load(s)));
    v128.store(d, combine(op, v128.load(d, 16), v128.load(s, 16)), 16);
    v128.store(d, combine(op, v128.load(d, 32), v128.load(s, 32)), 32);
    v128.store(d, combine(op, v128.load(d, 48), v128.load(s, 48)), 48);
  }
  for (let i = body; i < <usize>n; i++) store<f32>(dst + (i << 2), combine1(op, load<f32>(dst + (i << 2)), load<f32>(src + (i << 2))));
}

/** dst[i] = op(dst[i], src[i]) */
export function combineF32(dst: usize, src: usize, n: i32, op: i32): void {
  if (op == MAX) combineF32Loop(MAX, dst, src, n);
  else combineF32Loop(SUM, dst, src, n);
}

/** dst[i] = dst[i] / div */
export function divideF32(dst: usize, n: i32, div: f32): void {
  const body = <usize>(n & ~3);
  const d4 = f32x4.splat(div);
  for (let i: usize = 0; i < body; i += 4) v128.store(dst + (i << 2), f32x4.div(v128.load(dst + (i << 2)), d4));
  for (let i = body; i < <usize>n; i++) store<f32>(dst + (i << 2), load<f32>(dst + (i << 2)) / div);
}

// @ts-ignore: decorator
@inline function fold4(op: i32, count: i32, dst: usize, a: usize, b: usize, c: usize, o: usize): v128 {
  let t = v128.load(a + o);
  if (count > 1) t = combine(op, t, v128.load(b + o));
  if (count > 2) t = combine(op, t, v128.load(c + o));
  return combine(op, t, v128.load(dst + o));
}

// @ts-ignore: decorator
@inline function foldLoop(op: i32, count: i32, dst: usize, a: usize, b: usize, c: usize, n: i32, div: f32): void {
  const body = <usize>(n & ~3);
  const d4 = f32x4.splat(div);
  for (let i: usize = 0; i < body; i += 4) {
    const o = i << 2;
    let r = fold4(op, count, dst, a, b, c, o);
    if (div != 1) r = f32x4.div(r, d4);
    v128.store(dst + o, r);
  }
  for (let i = body; i < <usize>n; i++) {
    const o = i << 2;
    let t = load<f32>(a + o);
    if (count > 1) t = combine1(op, t, load<f32>(b + o));
    if (count > 2) t = combine1(op, t, load<f32>(c + o));
    t = combine1(op, t, load<f32>(dst + o));
    store<f32>(dst + o, div != 1 ? t / div : t);
  }
}

/**
 * dst[i] = op(op(op(a[i], b[i]), c[i]), dst[i]) / div with `count` (1..3) of a, b, c: the
 * contributions to a piece summed in their fixed order and our own values (dst) last, in one
 * pass instead of one pass per contribution.
 */
export function foldF32(dst: usize, a: usize, b: usize, c: usize, count: i32, n: i32, op: i32, div: f32): void {
  if (op == MAX) {
    if (count >= 3) foldLoop(MAX, 3, dst, a, b, c, n, div);
    else if (count == 2) foldLoop(MAX, 2, dst, a, b, c, n, div);
    else foldLoop(MAX, 1, dst, a, b, c, n, div);
  } else if (count >= 3) foldLoop(SUM, 3, dst, a, b, c, n, div);
  else if (count == 2) foldLoop(SUM, 2, dst, a, b, c, n, div);
  else foldLoop(SUM, 1, dst, a, b, c, n, div);
}
