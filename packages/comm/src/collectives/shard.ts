import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';

/**
 * The index range of part `index` when `length` elements are split into `parts` contiguous,
 * balanced parts: the first `length % parts` parts get one extra element. Works for any length,
 * including length < parts (the trailing parts are then empty).
 *
 *   shardRange(10, 4, i) -> [0,3) [3,6) [6,8) [8,10)
 */
export function shardRange(length: number, parts: number, index: number): { start: number; end: number } {
  if (!Number.isInteger(length) || length < 0) throw badArg(`length must be a non-negative integer, got ${length}`);
  if (!Number.isInteger(parts) || parts < 1) throw badArg(`parts must be a positive integer, got ${parts}`);
  if (!Number.isInteger(index) || index < 0 || index >= parts) throw badArg(`index must be in [0, ${parts}), got ${index}`);
  const base = Math.floor(length / parts);
  const extra = length % parts;
  const start = index * base + Math.min(index, extra);
  return { start, end: start + base + (index < extra ? 1 : 0) };
}

function badArg(message: string): TrainerError {
  return new TrainerError(CommErrorCode.INVALID_ARGUMENT, `shardRange: ${message}`, { hint: 'pass the total length, the number of parts and a part index' });
}
