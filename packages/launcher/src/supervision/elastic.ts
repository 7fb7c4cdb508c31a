import { TrainerError } from '@trainer/errors';
import type { JobSpec } from '../job-spec.js';

/**
 * Elastic rendezvous, torchrun's `--nnodes MIN:MAX`: when a round's rendezvous times out with
 * fewer workers than the world but at least `minWorld`, the job continues on the largest world
 * the joined workers can form. Nothing else has to change: the data order is a function of
 * (seed, step), and resuming reads any checkpoint into any layout (worker count, ZeRO stage,
 * tensor and pipeline split), so a smaller world follows the same trajectory within fp32
 * rounding (reductions sum in another order).
 */

/** How the command line gave the micro-batch, to derive it again for another world. */
export interface Batching {
  /** --micro-batch: sequences per forward/backward, kept as given. */
  microBatch?: number;
  /** --micro-batches: micro-batches per step and replica; the size follows the world. */
  microBatches?: number;
}

/** What the coordinator asks when a rendezvous times out short of the world. */
export interface ElasticRendezvous {
  /** Fewest workers worth continuing with. */
  minWorld: number;
  /** The largest world of at most `joined` workers (and at least minWorld) the job runs on, with its job; undefined if none. */
  shrink(joined: number, job: JobSpec): { world: number; job: JobSpec } | undefined;
}

/** The job on `world` workers: the same global batch split over the new data-parallel size. */
export function resizeJob(job: JobSpec, world: number, batching: Batching): JobSpec | TrainerError {
  const modelParallel = job.tp * job.pp;
  if (world < 1 || world % modelParallel !== 0) {
    return new TrainerError('TRAINER_ERR_MESH', `${world} workers do not split into groups of tp ${job.tp} x pp ${job.pp}`, {
      hint: 'the world must be a multiple of --tp x --pp',
    });
  }
  const dp = world / modelParallel;
  const microBatch = batching.microBatch ?? job.globalBatch / dp / (batching.microBatches ?? 1);
  if (!Number.isInteger(microBatch) || job.globalBatch % (dp * microBatch) !== 0) {
    return new TrainerError('TRAINER_ERR_BATCH_INDIVISIBLE', `the global batch of ${job.globalBatch} does not divide among ${dp} data-parallel replicas${batching.microBatch ? ` in micro-batches of ${batching.microBatch}` : ''}`, {
      hint: 'choose --global-batch as a multiple of every data-parallel size the job may shrink to',
    });
  }
  return { ...job, microBatch };
}

/** The largest world in [minWorld, joined] the job can run on. */
export function elasticRendezvous(minWorld: number, batching: Batching): ElasticRendezvous {
  return {
    minWorld,
    shrink(joined, job) {
      for (let world = joined; world >= minWorld && world >= 1; world--) {
        const resized = resizeJob(job, world, batching);
        if (!(resized instanceof TrainerError)) return { world, job: resized };
      }
      return undefined;
    },
  };
}
