import { Command } from 'commander';
import { addAllReduceBench } from './bench/allreduce.js';
import { addParallelBench } from './bench/parallel.js';
import { addScaleBench } from './bench/scale.js';
import { addTableBench } from './bench/table.js';
import { addTrainBench } from './bench/train.js';
import { addZeroBench } from './bench/zero.js';

/**
 * Benchmarks that print numbers (never timed tests). Their JSON lines sit beside the peers'
 * (/work/shared/bench/peers.sh) in docs/BENCHMARKS.md; compare ratios measured in one run.
 */
export function benchCommand(): Command {
  const cmd = new Command('bench').description('benchmarks: all-reduce bandwidth, training throughput, ZeRO stages, parallel layouts, scaling over slow links');
  addAllReduceBench(cmd);
  addTrainBench(cmd);
  addZeroBench(cmd);
  addParallelBench(cmd);
  addTableBench(cmd);
  addScaleBench(cmd);
  return cmd;
}
