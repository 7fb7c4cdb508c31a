import { describe, expect, it } from 'vitest';
import { checkpointLine, jobAxes, rankPlacements, runInfo } from './run-dashboard.js';
import type { JobSpec } from './job-spec.js';

const job = (over: Partial<JobSpec>): JobSpec => ({ modelName: 'gpt-nano', steps: 10, globalBatch: 8, seqLen: 32, zero: 0, tp: 1, pp: 1, ...over }) as JobSpec;
const workers = (n: number) => Array.from({ length: n }, (_, rank) => ({ rank, host: `h${rank >> 1}`, pid: 100 + rank, device: 'cpu' }));

describe('the dashboard view of a job', () => {
  it('places ranks on the mesh (tensor-parallel fastest) and says what each holds', () => {
    const j = job({ tp: 2, zero: 1 });
    expect(jobAxes(j, 4)).toEqual({ dp: 2, tp: 2, pp: 1 });
    const p = rankPlacements(j, 4, workers(4));
    expect(p.map((r) => r.coords)).toEqual([{ dp: 0, tp: 0, pp: 0 }, { dp: 0, tp: 1, pp: 0 }, { dp: 1, tp: 0, pp: 0 }, { dp: 1, tp: 1, pp: 0 }]);
    expect(p[3].holds).toEqual([
      'tensor-parallel shard 2/2: its heads and MLP columns/rows of every block, its slice of the vocabulary',
      'ZeRO-1: parameters and gradients (full), optimizer state shard 2/2',
    ]);
    expect(rankPlacements(job({ zero: 0 }), 2, workers(2))[1].holds).toEqual(['full replica: parameters, gradients, optimizer state']);
    expect(rankPlacements(job({ zero: 3 }), 1, workers(1))[0].holds[0]).toMatch(/^ZeRO-3: .* shard 1\/1 \(one data-parallel rank/);
    expect(rankPlacements(job({ pp: 2 } as Partial<JobSpec>), 2, workers(2))[1].holds[0]).toBe('pipeline stage 2/2: its share of the blocks');
  });

  it('tells fine-tuning from training, and describes checkpoint events', () => {
    expect(runInfo(job({}), 2).kind).toBe('train');
    expect(runInfo(job({ init: { kind: 'model', path: '/m' } } as Partial<JobSpec>), 2)).toMatchObject({ kind: 'finetune', dp: 2 });
    expect(checkpointLine({ kind: 'committed', step: 4, name: 'step-00000004', path: '/c', bytes: 3 * 2 ** 20, files: 2 })).toMatchObject({ kind: 'checkpoint', step: 4, title: 'checkpoint step-00000004 committed (3.0 MiB in 2 files)' });
    expect(checkpointLine({ kind: 'failed', step: 4, rank: 1, code: 'TRAINER_ERR_X', message: 'disk full' })).toMatchObject({ kind: 'checkpoint-failed', detail: 'TRAINER_ERR_X: disk full' });
  });
});
