import type { Command } from 'commander';
import type { TrainJob } from '@trainer/launcher';
import { int, num, oneOf } from './parse.js';

/**
 * Options of the processes that make up a cluster run: restarts and elastic resume (`launch`,
 * `coordinator`), and TLS for the control and data channels (every process). TLS files may also
 * come from the environment (TRAINER_TLS_CERT, TRAINER_TLS_KEY, TRAINER_TLS_CA), which is how a
 * launcher hands them to the workers it starts.
 */
export interface RestartCliOptions {
  maxRestarts: number;
  minNodes?: number;
  collectiveTimeout?: number;
  collectiveAlgorithm?: 'auto' | 'ring' | 'direct' | 'hierarchical';
}

export interface TlsCliOptions {
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
}

export function addRestartOptions(cmd: Command): Command {
  return cmd
    .option('--max-restarts <n>', 'after a failure, restart all workers from the latest checkpoint, up to n times (torchrun\'s model)', int(0, 10_000), 0)
    .option('--min-nodes <n>', 'elastic: when fewer nodes than --nodes join a round within --rendezvous-timeout, continue with at least this many (the checkpoint is resharded)', int(1, 1 << 20))
    .option('--collective-timeout <s>', 'a collective waiting this long for a rank fails the round, naming that rank (default 300)', num(0.1))
    .option('--collective-algorithm <a>', 'auto: all-reduce goes hierarchical over several machines with the same number of ranks on each (inside each machine first, then between machines), else ring or direct by group size; ring, direct: always flat; hierarchical: as auto', oneOf(['auto', 'ring', 'direct', 'hierarchical'] as const));
}

/** Failure-detection options that travel in the job (the workers apply them). */
export function applyFailureOptions(job: TrainJob, o: RestartCliOptions): TrainJob {
  if (o.collectiveTimeout !== undefined) job.collectiveTimeoutMs = Math.round(o.collectiveTimeout * 1000);
  if (o.collectiveAlgorithm !== undefined) job.collectiveAlgorithm = o.collectiveAlgorithm;
  return job;
}

export function addTlsOptions(cmd: Command): Command {
  return cmd
    .option('--tls-cert <file>', 'TLS certificate (PEM) for the control and data channels: connections become wss, mutually authenticated (default: TRAINER_TLS_CERT)')
    .option('--tls-key <file>', 'TLS private key (PEM) of --tls-cert (default: TRAINER_TLS_KEY)')
    .option('--tls-ca <file>', 'CA certificate (PEM) that signed every process\'s certificate; peers are verified against it (default: TRAINER_TLS_CA)');
}

/** The TLS file paths from the options or the environment; all three or none. */
export function tlsPaths(o: TlsCliOptions, env: NodeJS.ProcessEnv = process.env): { cert: string; key: string; ca: string } | undefined {
  const cert = o.tlsCert ?? env.TRAINER_TLS_CERT;
  const key = o.tlsKey ?? env.TRAINER_TLS_KEY;
  const ca = o.tlsCa ?? env.TRAINER_TLS_CA;
  if (!cert && !key && !ca) return undefined;
  return { cert: cert ?? '', key: key ?? '', ca: ca ?? '' };
}
