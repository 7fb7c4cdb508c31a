import { randomBytes } from 'node:crypto';
import { verifyCheckpoint } from '@trainer/checkpoint';
import { asTrainerError } from '@trainer/errors';
import type { CheckpointSpec } from '../checkpointing/checkpoint-spec.js';

/**
 * Where a restarted round starts: the newest checkpoint committed by this launch that still
 * verifies completely (every shard present and matching its SHA-256), else the checkpoint the
 * launch itself resumed from, else step 0. Checkpoints of other launches in the same folder are
 * never picked up: a fresh run that fails at step 3 must not jump to an old run's step 100.
 */
export interface ResumePoint {
  /** The checkpoint spec for the next round (a fresh run id names its temporary folders). */
  spec: CheckpointSpec;
  /** The step the round starts at (0 without a checkpoint). */
  step: number;
  /** Checkpoints passed over, newest first, and why. */
  skipped: { path: string; problem: string }[];
}

/**
 * `committed`: checkpoints this launch committed ({ step, path }), in any order. Returns the
 * next round's spec, or undefined when the job neither saves nor resumes (it starts over).
 */
export async function chooseResumePoint(spec: CheckpointSpec | undefined, committed: readonly { step: number; path: string }[], initial: CheckpointSpec['resume']): Promise<ResumePoint | undefined> {
  if (!spec) return undefined;
  const candidates = [...committed].sort((a, b) => b.step - a.step).map((c) => c.path);
  if (initial && !candidates.includes(initial.dir)) candidates.push(initial.dir);
  const skipped: ResumePoint['skipped'] = [];
  for (const path of candidates) {
    try {
      const report = await verifyCheckpoint(path);
      if (report.problems.length) {
        skipped.push({ path, problem: `${report.problems[0].code}: ${report.problems[0].message}` });
        continue;
      }
      return { spec: { ...spec, runId: newRunId(), resume: { dir: report.dir, step: report.manifest.step } }, step: report.manifest.step, skipped };
    } catch (err) {
      const e = asTrainerError(err);
      skipped.push({ path, problem: `${e.code}: ${e.message}` });
    }
  }
  return { spec: { ...spec, runId: newRunId(), resume: null }, step: 0, skipped };
}

export function newRunId(): string {
  return randomBytes(6).toString('hex');
}
