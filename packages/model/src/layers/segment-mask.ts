/**
 * Packed rows (several sequences in one row of T positions, fine-tuning's packing): a segment id
 * per position, each segment a contiguous run, so that
 *
 *   attention   query i sees key j  iff  j <= i  and  segment(i) == segment(j)   (block-diagonal causal)
 *   positions   restart at 0 at each segment's first position                    (learned or rotary)
 *
 * A row whose positions are one segment is exactly the plain causal case. The attention kernels
 * apply the mask before the softmax; their backward needs nothing more, because the saved
 * probabilities are zero wherever the mask is, and every gradient through a masked score is a
 * product with them (dS = P * (dP - rowsum(P * dP))).
 */
import { TrainerError } from '@trainer/errors';
import { ModelErrorCode } from '../codes.js';

/** Added to masked scores by the tf kernels (as the causal mask does, constants.ts). */
export const MASKED_SCORE = -1e9;

export class PackedRows {
  readonly T: number;
  /** Position of each element within its segment [B*T]. */
  readonly positions: Int32Array;
  /** The first position of each element's segment, relative to its row [B*T]. */
  private readonly starts: Int32Array;

  constructor(readonly segments: Int32Array, readonly batch: number) {
    if (!(segments instanceof Int32Array) || batch <= 0 || segments.length % batch !== 0) {
      throw new TrainerError(ModelErrorCode.MODEL_INPUT, `segments must be an Int32Array of batch x T ids, got ${segments?.length} for batch ${batch}`, { hint: 'give one segment id per token, like tokens' });
    }
    const T = (this.T = segments.length / batch);
    this.positions = new Int32Array(segments.length);
    this.starts = new Int32Array(segments.length);
    for (let b = 0; b < batch; b++) {
      let start = 0;
      for (let t = 0; t < T; t++) {
        const i = b * T + t;
        if (t > 0 && segments[i] !== segments[i - 1]) {
          for (let u = 0; u < t; u++) {
            if (segments[b * T + u] === segments[i]) {
              throw new TrainerError(ModelErrorCode.MODEL_INPUT, `segment ${segments[i]} of row ${b} is not contiguous (it resumes at position ${t})`, { hint: 'a packed row holds each sequence as one run of positions' });
            }
          }
          start = t;
        }
        this.starts[i] = start;
        this.positions[i] = t - start;
      }
    }
  }

  /** Whether query t of row b sees key j (j <= t, same segment). */
  sees(b: number, t: number, j: number): boolean {
    return j <= t && j >= this.starts[b * this.T + t];
  }

  /** Masks row b's scores [T, T] in place: MASKED_SCORE (-inf-like) wherever query t must not see key j. */
  maskScores(s: Float32Array, b: number, value = MASKED_SCORE): void {
    const T = this.T;
    for (let t = 0; t < T; t++) {
      const o = t * T;
      s.fill(value, o, o + this.starts[b * T + t]);
      s.fill(value, o + t + 1, o + T);
    }
  }
}

/** The packing of a micro-batch with segment ids (null without): one per segments array, reused by every block. */
const cache = new WeakMap<Int32Array, PackedRows>();
export function packedRowsOf(mb: { segments?: Int32Array; batch: number }): PackedRows | null {
  if (mb.segments === undefined) return null;
  let p = cache.get(mb.segments);
  if (p === undefined || p.batch !== mb.batch) {
    p = new PackedRows(mb.segments, mb.batch);
    cache.set(mb.segments, p);
  }
  return p;
}
