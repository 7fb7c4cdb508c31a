import { createLogger, detectGpus, generateClusterToken, launchLocal, prepareTrainJob, type LaunchResult, type TrainJob } from '@trainer/launcher';
import { CLI_BIN } from '../../paths.js';

/**
 * A training run on local workers for the benchmarks: on random tokens by default (as the
 * PyTorch peer measures), or on a corpus with a validation at the end. Workers log only
 * warnings; the launcher too when `quiet`.
 */
export interface SyntheticRunOptions {
  model: string;
  world: number;
  globalBatch: number;
  steps: number;
  warmup: number;
  backend: TrainJob['backend'];
  kernels?: TrainJob['kernels'];
  zero?: number;
  tp?: number;
  pp?: number;
  microBatches?: number;
  precision?: TrainJob['precision'];
  activationCheckpointing?: boolean;
  /** A corpus ('moby-dick', 'sotu', paths) instead of random tokens; validated at the end. */
  data?: string;
  evalBatches?: number;
  lr?: number;
  /** Only warnings are logged, on stderr (stdout is left to a command's JSON). */
  quiet?: boolean;
}

export async function runSynthetic(o: SyntheticRunOptions): Promise<LaunchResult> {
  const log = createLogger({ base: { role: 'bench' }, level: o.quiet ? 'warn' : 'info', ...(o.quiet ? { to: 'stderr' as const } : {}) });
  const prepared = await prepareTrainJob({
    modelName: o.model, modelOverrides: {}, data: o.data ?? 'synthetic', world: o.world, steps: o.steps + o.warmup,
    zero: o.zero ?? 0, tp: o.tp ?? 1, pp: o.pp ?? 1, microBatches: o.microBatches,
    precision: o.precision ?? 'fp32', activationCheckpointing: o.activationCheckpointing ?? false,
    globalBatch: o.globalBatch, lr: o.lr ?? 1e-4, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, gradClip: 1, seed: 0,
    backend: o.backend, kernels: o.kernels ?? 'auto', evalBatches: o.data ? (o.evalBatches ?? 4) : 0, evalEvery: 0, valFraction: 0.05, warmupTimingSteps: o.warmup, outDir: '',
    sample: { prompt: '', maxNewTokens: 0, temperature: 0, topK: 0 },
  }, (m) => log.info(m));
  return launchLocal({
    world: o.world, token: generateClusterToken(), job: prepared.job, logger: log, gpus: await detectGpus(),
    workerCommand: { execPath: process.execPath, args: [CLI_BIN, 'worker'] },
    jobPayload: prepared.tokenizerJson ? Buffer.from(prepared.tokenizerJson) : undefined,
    env: { TRAINER_LOG_LEVEL: 'warn' },
    ...(o.quiet ? { workerLogs: 'stderr' as const } : {}),
  });
}
