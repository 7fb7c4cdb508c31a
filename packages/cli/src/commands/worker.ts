import { exitCode } from '../action.js';
import { Command } from 'commander';
import { TrainerError } from '@trainer/errors';
import { createLogger, parseHostPort, readTorchrunEnv, resolveClusterToken, runTrainJob, runWorker } from '@trainer/launcher';
import { addTlsOptions, type TlsCliOptions } from '../cluster-options.js';
import { channelTls } from '../tls.js';

interface WorkerCliOptions extends TlsCliOptions {
  coordinator?: string;
  advertiseHost?: string;
  tokenFile?: string;
  heartbeatInterval: number;
}

export function workerCommand(): Command {
  return addTlsOptions(new Command('worker'))
    .description('join a coordinator as one worker (torchrun-style MASTER_ADDR/MASTER_PORT/RANK/LOCAL_RANK/WORLD_SIZE are read too)')
    .option('--coordinator <host:port>', 'the coordinator to join (default: MASTER_ADDR:MASTER_PORT)')
    .option('--advertise-host <host>', 'address peers use to reach this worker (default: the interface facing the coordinator)')
    .option('--token-file <file>', 'cluster token file (default: TRAINER_TOKEN)')
    .action(exitCode(async (o: WorkerCliOptions) => {
      const env = readTorchrunEnv();
      const coordinator = o.coordinator
        ? parseHostPort(o.coordinator, '--coordinator')
        : env.masterAddr && env.masterPort
          ? { host: env.masterAddr, port: env.masterPort }
          : undefined;
      if (!coordinator) {
        throw new TrainerError('TRAINER_ERR_NO_COORDINATOR', 'no coordinator address was given', {
          hint: 'pass --coordinator HOST:PORT or set MASTER_ADDR and MASTER_PORT',
        });
      }
      const token = (await resolveClusterToken({ tokenFile: o.tokenFile, required: true }))!;
      const log = createLogger({ base: { role: 'worker' } });
      const cuda = process.env.CUDA_VISIBLE_DEVICES;
      // Set by the launcher or agent that starts (and restarts) this worker: its round, and how its host is named.
      const round = process.env.TRAINER_ROUND ? Number(process.env.TRAINER_ROUND) : undefined;
      if (round !== undefined && !(Number.isInteger(round) && round >= 0)) {
        throw new TrainerError('TRAINER_ERR_BAD_ENV', `TRAINER_ROUND=${JSON.stringify(process.env.TRAINER_ROUND)} is not a round number`, { hint: 'unset TRAINER_ROUND' });
      }
      const code = await runWorker({
        coordinator, token, localRank: env.localRank ?? 0, requestedRank: env.rank, advertiseHost: o.advertiseHost,
        ...(round !== undefined ? { round } : {}), ...(await channelTls(o)), ...(process.env.TRAINER_HOST_NAME ? { hostName: process.env.TRAINER_HOST_NAME } : {}),
        device: cuda ? `cuda:${cuda}` : 'cpu', logger: log, runJob: runTrainJob,
      });
      // Exit explicitly: native backends may hold the event loop open after the job.
      process.exit(code);
    }));
}
