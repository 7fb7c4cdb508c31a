import { describe, expect, it } from 'vitest';
import { ToCoordinatorSchema } from '../control-protocol.js';
import { TrainJobSchema } from '../job-spec.js';
import { shardFileName } from './checkpoint-spec.js';
import { parseSaveFault, saveFaultFor } from './save-fault.js';

describe('checkpoint control messages and options', () => {
  const written = {
    type: 'checkpoint-written', rank: 1, step: 6, optimizerStep: 6, file: shardFileName(1, 4), bytes: 1024, sha256: 'a'.repeat(64),
    copyMs: 1.5, writeMs: 3,
  };

  it('accepts a well-formed shard report and refuses file names that leave the folder, bad hashes and sizes', () => {
    expect(ToCoordinatorSchema.safeParse(written).success).toBe(true);
    expect(written.file).toBe('rank-00001-of-00004.safetensors');
    for (const bad of [
      { ...written, file: '../../etc/passwd' },
      { ...written, file: 'sub/dir.safetensors' },
      { ...written, sha256: 'xyz' },
      { ...written, bytes: 1.5 },
      { ...written, step: -1 },
    ]) expect(ToCoordinatorSchema.safeParse(bad).success, JSON.stringify(bad).slice(0, 80)).toBe(false);
    expect(ToCoordinatorSchema.safeParse({ type: 'checkpoint-failed', rank: 0, step: 2, error: { code: 'TRAINER_ERR_CHECKPOINT_DISK_FULL', message: 'full' } }).success).toBe(true);
  });

  it('a job checkpoint spec names a run id of safe characters', () => {
    const spec = { dir: '/runs/a/checkpoints', saveEvery: 3, keepLast: 0, runId: 'ab12cd34', resume: null };
    const job = TrainJobSchema.shape.checkpoint;
    expect(job.safeParse(spec).success).toBe(true);
    expect(job.safeParse({ ...spec, runId: '../x' }).success).toBe(false);
    expect(job.safeParse(undefined).success).toBe(true);
  });

  it('TRAINER_SAVE_FAULT is parsed strictly and applies to one rank and step', () => {
    const f = parseSaveFault('rank=1,step=4,kind=enospc');
    expect(saveFaultFor(f, 1, 4)).toBe('enospc');
    expect(saveFaultFor(f, 0, 4)).toBeUndefined();
    expect(saveFaultFor(f, 1, 6)).toBeUndefined();
    expect(parseSaveFault(undefined)).toBeUndefined();
    expect(() => parseSaveFault('rank=1,step=4,kind=melt')).toThrow(expect.objectContaining({ code: 'TRAINER_ERR_BAD_ENV' }));
  });
});
