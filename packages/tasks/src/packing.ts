import type { EncodedExample, TaskBatch } from './task-batches.js';
import { placeTargets } from './task-batches.js';

/**
 * Packing (TRL's `packing=True`): several examples share a row of T positions. Greedy first-fit
 * of whole examples in the order drawn (an example goes into the first row with room for its
 * T-position window; examples are never split, and none is longer than a row: encodeTask refuses
 * those). Each row carries a segment id per position (examples 0, 1, .. of the row, then the
 * padding as a segment of its own), from which the model masks attention block-diagonally (no
 * token attends across examples) and restarts positions at 0 per segment; an example's targets
 * stay inside its own segment (its last position predicts nothing across the boundary).
 *
 *   row:      [ a0 a1 a2 a3 | b0 b1 b2 | pad pad ]
 *   segments: [ 0  0  0  0  | 1  1  1  | 2   2   ]
 *   positions [ 0  1  2  3  | 0  1  2  | 0   1   ]
 */

/** Positions an example occupies in a row: its ids but the last (which is only a target). */
export function windowOf(e: EncodedExample, seqLen: number): number {
  return Math.min(Math.max(e.ids.length - 1, 1), seqLen);
}

/** Row index of each example (first fit, in order) and the number of rows. */
export function firstFit(lengths: readonly number[], seqLen: number): { rowOf: number[]; rows: number } {
  const used: number[] = [];
  const rowOf = lengths.map((n) => {
    let r = used.findIndex((u) => u + n <= seqLen);
    if (r < 0) {
      r = used.length;
      used.push(0);
    }
    used[r] += n;
    return r;
  });
  return { rowOf, rows: used.length };
}

/** Packed rows [R, T] of the examples, R as first-fit gives (see the file comment). */
export function packRows(examples: readonly EncodedExample[], seqLen: number, pad: number): TaskBatch {
  const windows = examples.map((e) => windowOf(e, seqLen));
  const { rowOf, rows } = firstFit(windows, seqLen);
  const tokens = new Int32Array(rows * seqLen).fill(pad);
  const targets = new Int32Array(rows * seqLen).fill(-1);
  const segments = new Int32Array(rows * seqLen);
  const ids = new Int32Array(rows * seqLen).fill(-1); // each position's example (LoRA dropout's key), -1 padding
  const fill = new Array<number>(rows).fill(0);
  const count = new Array<number>(rows).fill(0);
  examples.forEach((e, i) => {
    const r = rowOf[i];
    const at = r * seqLen + fill[r];
    tokens.set(e.ids.subarray(0, windows[i]), at);
    placeTargets(e, targets, at, windows[i]);
    segments.fill(count[r], at, at + windows[i]);
    ids.fill(i, at, at + windows[i]);
    fill[r] += windows[i];
    count[r]++;
  });
  for (let r = 0; r < rows; r++) segments.fill(count[r], r * seqLen + fill[r], (r + 1) * seqLen); // padding: a segment of its own
  return { tokens, targets, batch: rows, segments, examples: ids };
}

/**
 * What packing does to a set of examples in micro-batches of `microBatch` (in order): the share of
 * row positions holding an example's token rather than padding, and examples per row.
 */
export function packingStats(examples: readonly EncodedExample[], seqLen: number, microBatch: number, pack: boolean): { nonPaddingShare: number; examplesPerRow: number; rows: number; tokens: number } {
  let rows = 0;
  let used = 0;
  for (let first = 0; first < examples.length; first += microBatch) {
    const windows = examples.slice(first, first + microBatch).map((e) => windowOf(e, seqLen));
    rows += pack ? firstFit(windows, seqLen).rows : windows.length;
    used += windows.reduce((a, n) => a + n, 0);
  }
  return { nonPaddingShare: rows ? used / (rows * seqLen) : 0, examplesPerRow: rows ? examples.length / rows : 0, rows, tokens: used };
}
