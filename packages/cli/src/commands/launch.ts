import { exitCode } from '../action.js';
import { Command } from 'commander';
import {
  assertWorldFitsGpus, createLogger, detectGpus, elasticRendezvous, generateClusterToken, launchLocal, prepareTrainJob, resolveClusterToken, RunReporter,
} from '@trainer/launcher';
import { addRestartOptions, type RestartCliOptions } from '../cluster-options.js';
import { CLI_BIN } from '../paths.js';
import { warnIfModelStateExceedsMemory } from '../memory-check.js';
import { int } from '../parse.js';
import { printRunSummary } from '../summary.js';
import { addTrainOptions, dashboardSettings, toTrainRequest, type TrainCliOptions } from '../train-options.js';
import type { Logger, TrainRequest } from '@trainer/launcher';

export interface LaunchOptions extends TrainCliOptions, RestartCliOptions {
  nodes: number;
  procsPerNode?: number;
  port?: number;
  tokenFile?: string;
}

export function launchCommand(): Command {
  const cmd = addLaunchOptions(new Command('launch')
    .description('train on this machine: a coordinator and one worker process per node (per GPU when GPUs are present)'));
  return cmd.action(exitCode((o: LaunchOptions) => runLaunch(o)));
}

/** The options of `launch` (also those of `finetune`, the same launch with another data source). */
export function addLaunchOptions(cmd: Command): Command {
  cmd.option('--nodes <n>', 'worker processes to start (one per GPU on GPU machines)', int(1, 1024), 1)
    .option('--procs-per-node <n>', 'workers per node (default 1; on GPU machines one per GPU)', int(1, 1024))
    .option('--port <n>', 'coordinator port (default: any free port)', int(0, 65535))
    .option('--token-file <file>', 'cluster token file (default: TRAINER_TOKEN, or a fresh token per launch)');
  return addRestartOptions(addTrainOptions(cmd));
}

/** Runs a local launch; `extra` overrides the request (fine-tuning: the task and the initial model). */
export async function runLaunch(o: LaunchOptions, extra: Partial<TrainRequest> = {}, log: Logger = createLogger({ base: { role: 'launcher' } })): Promise<number> {
  const gpus = await detectGpus();
  const perNode = o.procsPerNode ?? 1;
  const world = o.nodes * perNode;
  assertWorldFitsGpus(world, gpus, o.backend);
  if (gpus.length) log.info(`${gpus.length} GPU(s) found: ${gpus.map((g) => `${g.index}: ${g.name}`).join(', ')}`);
  const prepared = await prepareTrainJob(toTrainRequest(o, world, extra), (msg) => log.info(msg));
  const { job } = prepared;
  warnIfModelStateExceedsMemory(job, world, gpus.length > 0, (msg) => log.warn(msg));
  const token = (await resolveClusterToken({ tokenFile: o.tokenFile, required: false })) ?? generateClusterToken();
  const reporter = new RunReporter(job.outDir, job.steps, log, { model: job.modelName, kind: job.init ? 'finetune' : 'train', world, tp: job.tp, global_batch: job.globalBatch, seq_len: job.seqLen, out: job.outDir });
  await reporter.open(Boolean(job.checkpoint?.resume)); // a resumed run appends to its metrics.jsonl
  log.info(`${job.init ? 'fine-tuning' : 'training'} ${job.modelName} on ${world} worker(s): ${job.steps} steps of ${job.globalBatch} x ${job.seqLen} tokens; run folder ${job.outDir}`);
  const result = await launchLocal({
    world, token, job, logger: log, gpus, port: o.port,
    jobPayload: prepared.tokenizerJson ? Buffer.from(prepared.tokenizerJson) : undefined,
    workerCommand: { execPath: process.execPath, args: [CLI_BIN, 'worker'] },
    heartbeatTimeoutMs: o.heartbeatTimeout * 1000,
    rendezvousTimeoutMs: o.rendezvousTimeout * 1000,
    dashboard: dashboardSettings(o),
    onCoordinator: (c) => reporter.attach(c),
    maxRestarts: o.maxRestarts,
    ...(o.minNodes !== undefined ? { elastic: elasticRendezvous(o.minNodes * perNode, { microBatch: o.microBatch, microBatches: o.microBatches }) } : {}),
  });
  const summary = await reporter.finish(result.outcome, { ...result.restarts, exit_code: result.exitCode });
  printRunSummary(summary, job.outDir);
  return result.exitCode;
}
