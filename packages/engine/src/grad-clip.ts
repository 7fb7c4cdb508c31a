/**
 * Clipping by global norm: g <- g * min(1, maxNorm / ||g||_2), the norm taken over all
 * parameters together (torch.nn.utils.clip_grad_norm_). The trainer computes the norm over the
 * partitioned gradient (ZeroTrainer.globalSumOfSquares) and folds the factor into the update.
 */

/** The factor to multiply gradients by, given their global norm (1 when no clipping is needed). */
export function clipFactor(globalNorm: number, maxNorm: number): number {
  if (!(maxNorm > 0) || !Number.isFinite(globalNorm)) return 1;
  // PyTorch adds 1e-6 to the norm in the denominator.
  return globalNorm > maxNorm ? maxNorm / (globalNorm + 1e-6) : 1;
}
