import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';

const UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kib: 1024, kb: 1000,
  m: 1024 ** 2, mib: 1024 ** 2, mb: 1000 ** 2,
  g: 1024 ** 3, gib: 1024 ** 3, gb: 1000 ** 3,
};

/** '16MiB' -> 16777216. K/M/G and KiB/MiB/GiB are powers of 1024 (as in nccl-tests), KB/MB/GB powers of 1000. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(String(text));
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new TrainerError(CommErrorCode.INVALID_ARGUMENT, `cannot parse size ${JSON.stringify(text)}`, {
      hint: 'write a number with an optional unit: 4096, 64KiB, 16MiB, 1GiB (or KB/MB/GB for powers of 1000)',
    });
  }
  const bytes = Number(m[1]) * unit;
  if (!Number.isSafeInteger(bytes)) {
    throw new TrainerError(CommErrorCode.INVALID_ARGUMENT, `size ${JSON.stringify(text)} is not a whole number of bytes`, { hint: 'use a whole number of bytes' });
  }
  return bytes;
}
