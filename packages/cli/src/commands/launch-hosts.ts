import {
  createLogger, elasticRendezvous, generateClusterToken, inSlurmAllocation, launchOnHosts, localAddressTowards, pickHosts, prepareTrainJob, probeHosts,
  readHostfile, resolveClusterToken, RunReporter, travellingEnv, type HostEntry, type Logger, type TrainRequest,
} from '@trainer/launcher';
import { TrainerError } from '@trainer/errors';
import { CLI_BIN } from '../paths.js';
import { printRunSummary } from '../summary.js';
import { dashboardSettings, toTrainRequest } from '../train-options.js';
import { channelTls, tlsEnv } from '../tls.js';
import { applyFailureOptions } from '../cluster-options.js';
import { recordRunConfig, type RunConfig } from '../run-config.js';
import type { LaunchOptions } from './launch.js';

/**
 * `trainer launch --hostfile FILE` (SSH) or `trainer launch` inside a Slurm allocation of
 * several nodes (srun): every host is checked before anything else (an unreachable one is an
 * error naming it), the world is the sum of the hosts' workers (slots=N, else one per GPU the
 * host has, else --procs-per-node or 1), then the job is prepared and launchOnHosts runs it.
 */
export async function runHostLaunch(o: LaunchOptions, nodesGiven: boolean, extra: Partial<TrainRequest> = {}, log: Logger = createLogger({ base: { role: 'launcher' } }), runConfig?: RunConfig): Promise<number> {
  const cwd = process.cwd();
  const sshOptions = o.sshOpts ? o.sshOpts.split(/\s+/).filter(Boolean) : [];
  let hosts: (HostEntry & { slots: number })[];
  let via: { kind: 'ssh'; sshOptions: string[] } | { kind: 'srun' };
  if (o.hostfile) {
    const picked = pickHosts(await readHostfile(o.hostfile), nodesGiven ? o.nodes : undefined, o.hostfile);
    log.info(`checking ${picked.length} host(s) over SSH: ${picked.map((h) => h.host).join(', ')}`);
    const probes = await probeHosts(picked, { sshOptions, execPath: process.execPath, cliPath: CLI_BIN, cwd });
    hosts = probes.map((p) => ({ ...p.host, slots: p.host.slots ?? o.procsPerNode ?? (p.gpus || 1) }));
    via = { kind: 'ssh', sshOptions };
  } else {
    const slurm = inSlurmAllocation();
    if (!slurm) throw new TrainerError('TRAINER_ERR_USAGE', '--launcher srun needs a Slurm allocation of several nodes (SLURM_JOB_ID, SLURM_JOB_NUM_NODES > 1)', { hint: 'run inside salloc/sbatch, or give --hostfile' });
    const nodes = nodesGiven ? o.nodes : slurm.nodes;
    const perNode = o.procsPerNode ?? (Number.parseInt(process.env.SLURM_GPUS_PER_NODE?.split(':').pop() ?? '', 10) || 1);
    hosts = Array.from({ length: nodes }, (_, i) => ({ host: `slurm-node-${i}`, where: 'SLURM_JOB_NODELIST', slots: perNode }));
    via = { kind: 'srun' };
  }
  const world = hosts.reduce((s, h) => s + h.slots, 0);
  log.info(`${hosts.length} host(s), ${world} worker(s): ${hosts.map((h) => `${h.host} x${h.slots}`).join(', ')}`);
  const prepared = await prepareTrainJob(toTrainRequest(o, world, extra), (msg) => log.info(msg));
  const job = applyFailureOptions(prepared.job, o);
  const token = (await resolveClusterToken({ tokenFile: o.tokenFile, required: false })) ?? generateClusterToken();
  const reporter = new RunReporter(job.outDir, job.steps, log, { model: job.modelName, kind: job.init ? 'finetune' : 'train', world, ...(via.kind === 'ssh' ? { hosts: hosts.map((h) => h.host) } : { nodes: hosts.length }), tp: job.tp, global_batch: job.globalBatch, seq_len: job.seqLen, out: job.outDir });
  await reporter.open(Boolean(job.checkpoint?.resume));
  // nodes: the hosts this run used (all of the hostfile's, or the allocation's, when --nodes was not given).
  if (runConfig) await recordRunConfig(job, { ...runConfig, nodes: hosts.length }, job.init ? 'finetune' : 'launch');
  const firstHost = hosts[0].host.replace(/^.*@/, '').replace(/^\[|\]$/g, '');
  const advertiseHost = o.masterAddr ?? (via.kind === 'ssh' ? await localAddressTowards(firstHost) : (await import('node:os')).hostname());
  const minWorld = o.minNodes === undefined ? undefined : [...hosts].map((h) => h.slots).sort((a, b) => a - b).slice(0, o.minNodes).reduce((s, n) => s + n, 0);
  log.info(`${job.init ? 'fine-tuning' : 'training'} ${job.modelName} on ${world} worker(s) over ${hosts.length} host(s); the hosts reach the coordinator at ${advertiseHost}; run folder ${job.outDir}`);
  const result = await launchOnHosts({
    world, token, job, logger: log, hosts, via, bindHost: o.bindHost ?? '0.0.0.0', port: o.port ?? 0, advertiseHost,
    execPath: process.execPath, cliPath: CLI_BIN, cwd, env: { ...travellingEnv(process.env, cwd), ...tlsEnv(o) },
    jobPayload: prepared.tokenizerJson ? Buffer.from(prepared.tokenizerJson) : undefined,
    heartbeatTimeoutMs: o.heartbeatTimeout * 1000, rendezvousTimeoutMs: o.rendezvousTimeout * 1000,
    dashboard: dashboardSettings(o), maxRestarts: o.maxRestarts, ...(await channelTls(o)),
    ...(minWorld !== undefined ? { elastic: elasticRendezvous(minWorld, { microBatch: o.microBatch, microBatches: o.microBatches }) } : {}),
    onCoordinator: (c) => reporter.attach(c),
  });
  const summary = await reporter.finish(result.outcome, { ...result.restarts, exit_code: result.exitCode });
  printRunSummary(summary, job.outDir);
  // Done: a connection to a host that was cut off would hold the process for its close handshake (30 s).
  process.exit(result.exitCode);
}
