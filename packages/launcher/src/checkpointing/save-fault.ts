import { TrainerError } from '@trainer/errors';
import type { ShardWriteFault } from '@trainer/checkpoint';

/**
 * Deliberate checkpoint faults, for tests (like TRAINER_FAULT for the training loop):
 *
 *   TRAINER_SAVE_FAULT="rank=1,step=6,kind=enospc"   rank 1's shard of checkpoint step 6 fails
 *                                                     halfway with ENOSPC, as on a full disk
 *   kind=corrupt   the shard is written with one byte flipped after hashing (silent corruption:
 *                  the coordinator's verification must catch it)
 */
export interface SaveFault {
  rank: number;
  step: number;
  kind: NonNullable<ShardWriteFault>;
}

export function parseSaveFault(spec: string | undefined): SaveFault | undefined {
  if (!spec) return undefined;
  const fields = Object.fromEntries(spec.split(',').map((kv) => kv.split('=').map((s) => s.trim()) as [string, string]));
  const rank = Number(fields.rank);
  const step = Number(fields.step);
  const kind = fields.kind;
  if (!Number.isInteger(rank) || !Number.isInteger(step) || (kind !== 'enospc' && kind !== 'corrupt')) {
    throw new TrainerError('TRAINER_ERR_BAD_ENV', `TRAINER_SAVE_FAULT=${JSON.stringify(spec)} is not "rank=R,step=S,kind=enospc|corrupt"`, { hint: 'unset TRAINER_SAVE_FAULT' });
  }
  return { rank, step, kind };
}

export function saveFaultFor(fault: SaveFault | undefined, rank: number, step: number): ShardWriteFault {
  return fault && fault.rank === rank && fault.step === step ? fault.kind : undefined;
}
