/**
 * Clipping by global norm: g <- g * min(1, maxNorm / ||g||_2), the norm taken over all
 * parameters together (torch.nn.utils.clip_grad_norm_). The sum of squares is accumulated in
 * float64 so the result does not depend on how the vector is split into pieces.
 */
export function sumOfSquares(values: Float32Array): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i] * values[i];
  return s;
}

/** The factor to multiply gradients by, given their global norm (1 when no clipping is needed). */
export function clipFactor(globalNorm: number, maxNorm: number): number {
  if (!(maxNorm > 0) || !Number.isFinite(globalNorm)) return 1;
  // PyTorch adds 1e-6 to the norm in the denominator.
  return globalNorm > maxNorm ? maxNorm / (globalNorm + 1e-6) : 1;
}

export function scaleInPlace(values: Float32Array, factor: number): void {
  if (factor === 1) return;
  for (let i = 0; i < values.length; i++) values[i] *= factor;
}
