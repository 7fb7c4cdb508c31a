import { createLogger, detectGpus, generateClusterToken, launchLocal, prepareTrainJob, type LaunchResult, type TrainJob } from '@trainer/launcher';
import { CLI_BIN } from '../../paths.js';

/**
 * A training run on random tokens (as the PyTorch peer measures), on local workers, for the
 * throughput benchmarks. Workers log only warnings; the launcher too when `quiet`.
 */
export interface SyntheticRunOptions {
  model: string;
  world: number;
  globalBatch: number;
  steps: number;
  warmup: number;
  backend: TrainJob['backend'];
  zero?: number;
  tp?: number;
  pp?: number;
  microBatches?: number;
  quiet?: boolean;
}

export async function runSynthetic(o: SyntheticRunOptions): Promise<LaunchResult> {
  const log = createLogger({ base: { role: 'bench' }, level: o.quiet ? 'warn' : 'info' });
  const prepared = await prepareTrainJob({
    modelName: o.model, modelOverrides: {}, data: 'synthetic', world: o.world, steps: o.steps + o.warmup,
    zero: o.zero ?? 0, tp: o.tp ?? 1, pp: o.pp ?? 1, microBatches: o.microBatches,
    globalBatch: o.globalBatch, lr: 1e-4, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, gradClip: 1, seed: 0,
    backend: o.backend, evalBatches: 0, valFraction: 0.05, warmupTimingSteps: o.warmup, outDir: '',
    sample: { prompt: '', maxNewTokens: 0, temperature: 0, topK: 0 },
  }, (m) => log.info(m));
  return launchLocal({
    world: o.world, token: generateClusterToken(), job: prepared.job, logger: log, gpus: await detectGpus(),
    workerCommand: { execPath: process.execPath, args: [CLI_BIN, 'worker'] },
    env: { TRAINER_LOG_LEVEL: 'warn' },
  });
}
