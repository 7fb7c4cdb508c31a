import { exitCode } from '../action.js';
import { Command } from 'commander';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { checkJobMemory, memoryCapacity } from '../memory-check.js';
import { Coordinator, createLogger, elasticRendezvous, generateClusterToken, prepareTrainJob, resolveClusterToken, RestartSupervisor, RunReporter, writeTokenFile } from '@trainer/launcher';
import { addRestartOptions, addTlsOptions, applyFailureOptions, type RestartCliOptions, type TlsCliOptions } from '../cluster-options.js';
import { channelTls } from '../tls.js';
import { int } from '../parse.js';
import { printRunSummary } from '../summary.js';
import { addTrainOptions, dashboardSettings, toTrainRequest, type TrainCliOptions } from '../train-options.js';
import { addConfigOption, recordRunConfig, resolvedRunConfig, type ConfigCliOptions } from '../run-config.js';

interface CoordinatorCliOptions extends TrainCliOptions, RestartCliOptions, TlsCliOptions, ConfigCliOptions {
  nodes: number;
  port: number;
  host: string;
  tokenFile?: string;
}

export function coordinatorCommand(): Command {
  const cmd = new Command('coordinator')
    .description('run only the coordinator, for workers on other hosts (`trainer worker --coordinator HOST:PORT`)')
    .requiredOption('--nodes <n>', 'number of workers that will join', int(1, 1 << 20))
    .option('--port <n>', 'port to listen on', int(1, 65535), 29500)
    .option('--host <addr>', 'address to listen on', '0.0.0.0')
    .option('--token-file <file>', 'cluster token file (default: TRAINER_TOKEN, or a new token written to <out>/cluster.token)');
  addRestartOptions(addTrainOptions(cmd));
  addConfigOption(addTlsOptions(cmd));
  return cmd.action(exitCode(async (o: CoordinatorCliOptions) => {
    const log = createLogger({ base: { role: 'coordinator' } });
    const prepared = await prepareTrainJob(toTrainRequest(o, o.nodes), (msg) => log.info(msg));
    const job = applyFailureOptions(prepared.job, o);
    // Workers run elsewhere: only a limit the user set is checked (refused before anyone joins).
    if (o.maxMemory !== undefined) checkJobMemory(job, o.nodes, job.backend === 'cuda', await memoryCapacity(o.maxMemory, false, 1), (msg) => log.warn(msg));
    let token = await resolveClusterToken({ tokenFile: o.tokenFile, required: false });
    if (!token) {
      token = generateClusterToken();
      await mkdir(job.outDir, { recursive: true });
      const file = join(job.outDir, 'cluster.token');
      await writeTokenFile(file, token);
      log.info(`new cluster token written to ${file} (mode 600): give it to the workers with --token-file or TRAINER_TOKEN`);
    }
    const reporter = new RunReporter(job.outDir, job.steps, log, { model: job.modelName, world: o.nodes, global_batch: job.globalBatch, seq_len: job.seqLen, out: job.outDir });
    await reporter.open(Boolean(job.checkpoint?.resume)); // a resumed run appends to its metrics.jsonl
    await recordRunConfig(job, resolvedRunConfig(cmd), 'coordinator');
    const coordinator = await Coordinator.start({
      host: o.host, port: o.port, token, world: o.nodes, job, logger: log,
      jobPayload: prepared.tokenizerJson ? Buffer.from(prepared.tokenizerJson) : undefined,
      heartbeatTimeoutMs: o.heartbeatTimeout * 1000, rendezvousTimeoutMs: o.rendezvousTimeout * 1000,
      dashboard: dashboardSettings(o), ...(await channelTls(o)),
      ...(o.minNodes !== undefined ? { elastic: elasticRendezvous(o.minNodes, { microBatch: o.microBatch, microBatches: o.microBatches }) } : {}),
    });
    reporter.attach(coordinator);
    // Restarts: failed workers are restarted by whoever started them (a scheduler) and rejoin for the next round.
    const supervisor = new RestartSupervisor(coordinator, { maxRestarts: o.maxRestarts, job, world: o.nodes, logger: log });
    const stop = (signal: string) => coordinator.abort(`the coordinator received ${signal}`);
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    log.info(`waiting for ${o.nodes} worker(s): trainer worker --coordinator <this host>:${coordinator.address.port}`);
    const outcome = await coordinator.done;
    await coordinator.drain();
    await coordinator.close();
    const exit = supervisor.exitCode(outcome);
    const summary = await reporter.finish(outcome, { ...supervisor.summary(), exit_code: exit });
    printRunSummary(summary, job.outDir);
    return exit;
  }));
}
