// Shared SIMD helpers for the kernels (inlined at every use).

// ---------------------------------------------------------------- exp

const LOG2E: f32 = 1.4426950408889634;
const LN2_HI: f32 = 0.693359375;
const LN2_LO: f32 = -2.12194440e-4;

/** e^x per lane, |relative error| < 2e-7 on [-87, 88] (inputs clamped there). */
// @ts-ignore: decorator
@inline export function exp4(x: v128): v128 {
  x = f32x4.min(f32x4.max(x, f32x4.splat(-87.0)), f32x4.splat(88.0));
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(LOG2E)));
  // g = x - n ln2 in two steps (Cody-Waite) to keep the reduction exact
  let g = f32x4.sub(x, f32x4.mul(n, f32x4.splat(LN2_HI)));
  g = f32x4.sub(g, f32x4.mul(n, f32x4.splat(LN2_LO)));
  // e^g, |g| <= ln2/2: degree-6 Taylor (Horner)
  let p = f32x4.splat(0.001388888888888889);
  p = f32x4.add(f32x4.mul(p, g), f32x4.splat(0.008333333333333333));
  p = f32x4.add(f32x4.mul(p, g), f32x4.splat(0.041666666666666664));
  p = f32x4.add(f32x4.mul(p, g), f32x4.splat(0.16666666666666666));
  p = f32x4.add(f32x4.mul(p, g), f32x4.splat(0.5));
  p = f32x4.add(f32x4.mul(p, g), f32x4.splat(1.0));
  p = f32x4.add(f32x4.mul(p, g), f32x4.splat(1.0));
  // 2^n from the exponent bits
  const pow2 = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return f32x4.mul(p, pow2);
}

// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

