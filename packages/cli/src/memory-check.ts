import { freemem } from 'node:os';
import { estimateModelState } from '@trainer/engine';
import type { TrainJob } from '@trainer/launcher';
import { segmentSpecs, unitComputeCosts } from '@trainer/model';
import { formatBytes, kernelsFor } from './commands/estimate-memory.js';

/**
 * Before a local launch: will the predicted model state of every worker on this machine fit in
 * its free memory? If not, say so with the numbers (activations come on top).
 */
export function warnIfModelStateExceedsMemory(job: TrainJob, localWorkers: number, hasGpu: boolean, warn: (msg: string) => void, free = freemem()): boolean {
  const e = estimateModelState(unitComputeCosts(job.model, kernelsFor(job.backend, hasGpu)), segmentSpecs(job.model), job.zero, localWorkers, 0, job.precision);
  const need = e.total * localWorkers;
  if (need <= free) return false;
  warn(`the model state of ${localWorkers} worker(s) is predicted at ${formatBytes(e.total)} each (${formatBytes(need)} in all) but this machine has ${formatBytes(free)} free: ` +
    `expect swapping or an out-of-memory kill; try a higher --zero stage (trainer estimate-memory compares them) or fewer workers per machine`);
  return true;
}
