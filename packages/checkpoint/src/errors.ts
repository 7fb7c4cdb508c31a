import { TrainerError } from '@trainer/errors';

/**
 * The checkpoint package's failures. Every one names the file at fault; codes are stable and
 * listed in docs/ERRORS.md.
 */
export const CheckpointErrorCode = {
  /** The path holds no checkpoint (no manifest.json; a half-written checkpoint never has one). */
  NOT_FOUND: 'TRAINER_ERR_CHECKPOINT_NOT_FOUND',
  /** manifest.json or a shard file that is foreign, malformed or inconsistent. */
  FORMAT: 'TRAINER_ERR_CHECKPOINT_FORMAT',
  /** A manifest or shard written by a newer (or unknown) format version. */
  VERSION: 'TRAINER_ERR_CHECKPOINT_VERSION',
  /** A shard file the manifest lists is not there. */
  SHARD_MISSING: 'TRAINER_ERR_CHECKPOINT_SHARD_MISSING',
  /** A shard file shorter (or longer) than the manifest says. */
  SHARD_TRUNCATED: 'TRAINER_ERR_CHECKPOINT_SHARD_TRUNCATED',
  /** A file's SHA-256 differs from the one recorded when it was written. */
  CHECKSUM: 'TRAINER_ERR_CHECKPOINT_CHECKSUM',
  /** The device filled up (ENOSPC, EDQUOT) while a checkpoint was written. */
  DISK_FULL: 'TRAINER_ERR_CHECKPOINT_DISK_FULL',
  /** The checkpoint was written for another model (config, tensors) or tokenizer than the one requested. */
  CONFIG_MISMATCH: 'TRAINER_ERR_CHECKPOINT_CONFIG_MISMATCH',
  /** Any other failure to write or commit a checkpoint. */
  WRITE: 'TRAINER_ERR_CHECKPOINT_WRITE',
} as const;

export type CheckpointErrorCode = (typeof CheckpointErrorCode)[keyof typeof CheckpointErrorCode];

const HINTS: Record<CheckpointErrorCode, string> = {
  TRAINER_ERR_CHECKPOINT_NOT_FOUND: 'pass a checkpoint folder (<out>/checkpoints/step-NNNNNN), a checkpoints folder or a run folder; a folder without manifest.json was never committed',
  TRAINER_ERR_CHECKPOINT_FORMAT: 'the checkpoint is corrupt or not a trainer checkpoint; resume from another one (--resume auto picks the newest that verifies)',
  TRAINER_ERR_CHECKPOINT_VERSION: 'this checkpoint was written by a newer trainer; resume it with that version',
  TRAINER_ERR_CHECKPOINT_SHARD_MISSING: 'a shard file was deleted or not copied with the checkpoint; copy the whole folder, or resume from another checkpoint',
  TRAINER_ERR_CHECKPOINT_SHARD_TRUNCATED: 'the shard file was cut short (an interrupted copy, a full disk); resume from another checkpoint',
  TRAINER_ERR_CHECKPOINT_CHECKSUM: 'the file changed after it was written (disk corruption, an edit, a partial copy); resume from another checkpoint',
  TRAINER_ERR_CHECKPOINT_DISK_FULL: 'free space on the checkpoint device or lower --keep-last; the previous checkpoint is intact',
  TRAINER_ERR_CHECKPOINT_CONFIG_MISMATCH: 'resume with the model options (and tokenizer) the checkpoint was trained with; `trainer checkpoint inspect PATH` shows them',
  TRAINER_ERR_CHECKPOINT_WRITE: 'check that the run folder is writable; the previous checkpoint is intact',
};

export function checkpointError(code: CheckpointErrorCode, message: string, opts: { cause?: unknown; file?: string; details?: Record<string, unknown>; hint?: string } = {}): TrainerError {
  return new TrainerError(code, message, {
    hint: opts.hint ?? HINTS[code], cause: opts.cause,
    details: { ...(opts.file ? { file: opts.file } : {}), ...opts.details },
  });
}

/** Maps a failed file-system write to DISK_FULL (ENOSPC, EDQUOT) or WRITE, naming the file. */
export function writeFailure(err: unknown, file: string, what = 'writing'): TrainerError {
  const errno = (err as { code?: unknown })?.code;
  const reason = err instanceof Error ? err.message : String(err);
  if (errno === 'ENOSPC' || errno === 'EDQUOT') {
    return checkpointError(CheckpointErrorCode.DISK_FULL, `no space left on the device ${what} ${file} (${reason})`, { cause: err, file, details: { errno } });
  }
  return checkpointError(CheckpointErrorCode.WRITE, `failed ${what} ${file}: ${reason}`, { cause: err, file, details: { errno } });
}
