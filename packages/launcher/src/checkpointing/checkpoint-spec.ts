import { z } from 'zod';

/**
 * The checkpointing part of a training job, and the control messages of the commit protocol
 * (worker -> coordinator), validated like every other control message.
 *
 *   worker r: copy its state out of the trainer, write + fsync its shard into the temporary
 *             folder (in the background), then report { file, bytes, sha256 } or a failure (the
 *             shard's header says which slice of which tensor each of its pieces is)
 *   coordinator: once all ranks reported, verify every file, write the manifest, rename, `latest`
 */
const count = z.number().int().nonnegative();

export const CheckpointSpecSchema = z.object({
  /** The checkpoints folder: <out>/checkpoints. */
  dir: z.string().min(1),
  /** Save after every this many steps, and after the last one (0: never save). */
  saveEvery: count,
  /** Keep the newest this many committed checkpoints (0: all). */
  keepLast: count,
  /** Names this launch's temporary folders, so an abandoned one is told from a live one. */
  runId: z.string().regex(/^[a-z0-9]{4,32}$/),
  /** The verified checkpoint this run starts from (null: from scratch). */
  resume: z.object({ dir: z.string().min(1), step: count }).nullable(),
});
export type CheckpointSpec = z.infer<typeof CheckpointSpecSchema>;

const rank = count;
const shardName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/);

export const CheckpointWrittenSchema = z.object({
  type: z.literal('checkpoint-written'),
  rank,
  /** Optimizer steps completed when the state was copied. */
  step: count,
  optimizerStep: count,
  file: shardName,
  bytes: count,
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Time the training loop spent copying the state, and the writer thread writing it. */
  copyMs: z.number().nonnegative(),
  writeMs: z.number().nonnegative(),
  /** fp16's loss-scale state when the state was copied (null or absent: no loss scaling). */
  lossScale: z.object({ scale: z.number().positive(), goodSteps: count, skipsAtMinimum: count }).nullable().optional(),
  /** Figures of the step (rank 0): loss, lr, validation loss. */
  metrics: z.record(z.string().max(100), z.number().nullable()).optional(),
});
export type CheckpointWritten = z.infer<typeof CheckpointWrittenSchema>;

export const CheckpointFailedSchema = z.object({
  type: z.literal('checkpoint-failed'),
  rank,
  step: count,
  error: z.object({ code: z.string().max(100), message: z.string().max(10_000), hint: z.string().max(2000).optional() }),
});
export type CheckpointFailed = z.infer<typeof CheckpointFailedSchema>;

/** Shard file name of a rank: rank-00001-of-00004.safetensors. */
export function shardFileName(rank: number, world: number): string {
  return `rank-${String(rank).padStart(5, '0')}-of-${String(world).padStart(5, '0')}.safetensors`;
}
