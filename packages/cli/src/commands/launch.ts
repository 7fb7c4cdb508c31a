import { exitCode } from '../action.js';
import { Command } from 'commander';
import { TrainerError } from '@trainer/errors';
import {
  assertWorldFitsGpus, createLogger, detectGpus, elasticRendezvous, generateClusterToken, inSlurmAllocation, launchLocal, prepareTrainJob, resolveClusterToken, RunReporter,
} from '@trainer/launcher';
import { addRestartOptions, addTlsOptions, applyFailureOptions, type RestartCliOptions, type TlsCliOptions } from '../cluster-options.js';
import { oneOf } from '../parse.js';
import { channelTls, tlsEnv } from '../tls.js';
import { runHostLaunch } from './launch-hosts.js';
import { CLI_BIN } from '../paths.js';
import { checkJobMemory, kernelsOf, memoryCapacity, onGpu } from '../memory-check.js';
import { int } from '../parse.js';
import { printRunSummary } from '../summary.js';
import { addConfigOption, recordRunConfig, resolvedRunConfig, userGave, type ConfigCliOptions, type RunConfig } from '../run-config.js';
import { addTrainOptions, dashboardSettings, toTrainRequest, type TrainCliOptions } from '../train-options.js';
import type { Logger, TrainRequest } from '@trainer/launcher';

export interface LaunchOptions extends TrainCliOptions, RestartCliOptions, TlsCliOptions, ConfigCliOptions {
  nodes: number;
  procsPerNode?: number;
  port?: number;
  tokenFile?: string;
  hostfile?: string;
  launcher?: 'local' | 'ssh' | 'srun';
  sshOpts?: string;
  masterAddr?: string;
  bindHost?: string;
}

export function launchCommand(): Command {
  const cmd = addLaunchOptions(new Command('launch')
    .description('train on this machine: a coordinator and one worker process per node (per GPU when GPUs are present)'));
  addConfigOption(addHostOptions(cmd));
  return cmd.action(exitCode((o: LaunchOptions, command: Command) => launchAnywhere(o, command)));
}

/** The options that pick where the workers run: this machine, hosts over SSH, or srun (launch and finetune). */
export function addHostOptions(cmd: Command): Command {
  cmd.option('--hostfile <file>', 'several machines: one host per line (NAME [slots=N]); an agent is started on each over SSH, which starts its workers')
    .option('--launcher <how>', 'local, ssh (with --hostfile) or srun (default: srun inside a Slurm allocation of several nodes, ssh with --hostfile, else local)', oneOf(['local', 'ssh', 'srun'] as const))
    .option('--ssh-opts <options>', 'extra options for ssh, e.g. "-p 2222 -i ~/.ssh/cluster -F ./ssh_config"')
    .option('--master-addr <host>', 'the address the hosts use to reach this machine (default: the interface that routes to the first host)')
    .option('--bind-host <addr>', 'address the coordinator listens on in a multi-host launch (default 0.0.0.0)');
  return addTlsOptions(cmd);
}

/**
 * Runs the job where the options say: local workers, or agents on the hostfile's hosts (SSH) or
 * on a Slurm allocation's nodes (srun). `extra` overrides the request (fine-tuning); `runConfig`
 * is what the run folder and checkpoints record (run-config.ts).
 */
export function launchAnywhere(o: LaunchOptions, command: Command, extra: Partial<TrainRequest> = {}, log?: Logger, runConfig: RunConfig = resolvedRunConfig(command)): Promise<number> {
  const how = o.launcher ?? (o.hostfile ? 'ssh' : inSlurmAllocation() ? 'srun' : 'local');
  if (how === 'ssh' && !o.hostfile) throw new TrainerError('TRAINER_ERR_USAGE', '--launcher ssh needs --hostfile', { hint: 'list the hosts in a file, one per line: NAME [slots=N]' });
  if (how === 'local') return runLaunch(o, extra, log, runConfig);
  return runHostLaunch(how === 'srun' ? { ...o, hostfile: undefined } : o, userGave(command, 'nodes'), extra, log, runConfig);
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
export async function runLaunch(o: LaunchOptions, extra: Partial<TrainRequest> = {}, log: Logger = createLogger({ base: { role: 'launcher' } }), runConfig?: RunConfig): Promise<number> {
  const gpus = await detectGpus();
  const perNode = o.procsPerNode ?? 1;
  const world = o.nodes * perNode;
  assertWorldFitsGpus(world, gpus, o.backend);
  if (gpus.length) log.info(`${gpus.length} GPU(s) found: ${gpus.map((g) => `${g.index}: ${g.name}`).join(', ')}`);
  const prepared = await prepareTrainJob(toTrainRequest(o, world, extra), (msg) => log.info(msg));
  const job = applyFailureOptions(prepared.job, o);
  // Will it fit? The planner's peak per worker against --max-memory (refused) or the machine (warned).
  const gpu = onGpu(job.backend, kernelsOf(job.backend, job.kernels, gpus.length > 0), gpus.length > 0);
  checkJobMemory(job, world, gpus.length > 0, await memoryCapacity(o.maxMemory, gpu, world), (msg) => log.warn(msg));
  const token = (await resolveClusterToken({ tokenFile: o.tokenFile, required: false })) ?? generateClusterToken();
  const reporter = new RunReporter(job.outDir, job.steps, log, { model: job.modelName, kind: job.init ? 'finetune' : 'train', world, tp: job.tp, global_batch: job.globalBatch, seq_len: job.seqLen, out: job.outDir });
  await reporter.open(Boolean(job.checkpoint?.resume)); // a resumed run appends to its metrics.jsonl
  if (runConfig) await recordRunConfig(job, runConfig, job.init ? 'finetune' : 'launch');
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
    env: tlsEnv(o), ...(await channelTls(o)),
    ...(o.minNodes !== undefined ? { elastic: elasticRendezvous(o.minNodes * perNode, { microBatch: o.microBatch, microBatches: o.microBatches }) } : {}),
  });
  const summary = await reporter.finish(result.outcome, { ...result.restarts, exit_code: result.exitCode });
  printRunSummary(summary, job.outDir);
  return result.exitCode;
}
