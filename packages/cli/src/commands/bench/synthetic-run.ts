import { Coordinator, createLogger, detectGpus, generateClusterToken, launchLocal, prepareTrainJob, type EmulatedNetwork, type LaunchResult, type TrainJob } from '@trainer/launcher';
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
  /** Reduce gradients while backward runs (default true). */
  overlap?: boolean;
  /** ...on a data-plane thread (--comm-thread; default auto: when the workers span hosts). */
  commThread?: TrainJob['commThread'];
  /** DiLoCo: --sync-every and its settings (replicas: every data-parallel rank). */
  outer?: { syncEvery: number; lr: number; momentum: number; precision: 'fp32' | 'bf16'; overlap?: number };
  /** Workers world / hosts per emulated host (network namespaces), the coordinator on their bridge; default: all on this host. */
  hosts?: EmulatedNetwork;
  /** How collectives move data (--collective-algorithm); default auto. */
  collectiveAlgorithm?: TrainJob['collectiveAlgorithm'];
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
    ...(o.outer ? { outer: o.outer } : {}),
    ...(o.overlap === false ? { overlap: false } : {}),
    ...(o.commThread ? { commThread: o.commThread } : {}),
  }, (m) => log.info(m));
  if (o.collectiveAlgorithm) prepared.job.collectiveAlgorithm = o.collectiveAlgorithm;
  if (o.hosts) return runOnHosts(o.hosts, o.world, prepared.job, prepared.tokenizerJson, log);
  return launchLocal({
    world: o.world, token: generateClusterToken(), job: prepared.job, logger: log, gpus: await detectGpus(),
    workerCommand: { execPath: process.execPath, args: [CLI_BIN, 'worker'] },
    jobPayload: prepared.tokenizerJson ? Buffer.from(prepared.tokenizerJson) : undefined,
    env: { TRAINER_LOG_LEVEL: 'warn' },
    ...(o.quiet ? { workerLogs: 'stderr' as const } : {}),
  });
}

/** The coordinator on the emulated network's bridge, world / hosts workers in each host's namespace (torchrun-style: each connects by address). */
async function runOnHosts(net: EmulatedNetwork, world: number, job: TrainJob, tokenizerJson: string | undefined, log: ReturnType<typeof createLogger>): Promise<LaunchResult> {
  const perHost = world / net.hosts.length;
  if (!Number.isInteger(perHost)) throw new RangeError(`runOnHosts: ${world} workers do not split over ${net.hosts.length} hosts`);
  const token = generateClusterToken();
  const coordinator = await Coordinator.start({
    host: net.gatewayIp, port: 0, token, world, job, logger: log, jobPayload: tokenizerJson ? Buffer.from(tokenizerJson) : undefined, dashboard: false,
  });
  const workers = net.hosts.flatMap((h) => Array.from({ length: perHost }, () => h)).map((h) => net.spawn(h, process.execPath, [CLI_BIN, 'worker', '--coordinator', `${net.gatewayIp}:${coordinator.address.port}`], {
    env: { ...process.env, TRAINER_TOKEN: token, TRAINER_HOST_NAME: h.name, TRAINER_LOG_LEVEL: 'warn' },
  }));
  for (const w of workers) {
    w.stdout?.resume();
    w.stderr?.on('data', (d: Buffer) => process.stderr.write(d));
  }
  const exits = workers.map((w, rank) => new Promise<{ rank: number; code: number | null; signal: NodeJS.Signals | null }>((resolve) => w.once('exit', (code, signal) => resolve({ rank, code, signal }))));
  try {
    const outcome = await coordinator.done;
    const done = await Promise.race([Promise.all(exits), new Promise<null>((r) => setTimeout(() => r(null), 10_000).unref())]);
    const ended = done ?? workers.map((_, rank) => ({ rank, code: null, signal: 'SIGKILL' as const }));
    return { outcome, exitCode: outcome.ok && ended.every((e) => e.code === 0) ? 0 : 1, exits: ended, restarts: { max_restarts: 0, restarts: 0, lost_steps: 0, rounds: [] } };
  } finally {
    for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
    await coordinator.close();
  }
}
