import type { Command } from 'commander';
import { benchAllReduce, type Codec } from '@trainer/comm';
import { exitCode } from '../../action.js';
import { int, list, oneOf, parseByteSize } from '../../parse.js';

/** `trainer bench allreduce`: nccl-tests' figures for the ring all-reduce between local workers. */
export function addAllReduceBench(cmd: Command): void {
  cmd
    .command('allreduce')
    .description('ring all-reduce between local worker processes; nccl-tests figures (algbw = bytes/time, busbw = algbw x 2(n-1)/n)')
    .option('--world <n>', 'worker processes', int(1, 64), 2)
    .option('--sizes <list>', 'buffer sizes (fp32 bytes)', list(parseByteSize), [1 << 20, 16 << 20, 64 << 20])
    .option('--codec <name>', 'wire codec: fp32, bf16 or fp16', oneOf(['fp32', 'bf16', 'fp16'] as const), 'fp32')
    .option('--reps <n>', 'timed repetitions per size (default: by size)', int(1))
    .option('--json', 'one JSON object per line')
    .action(exitCode(async (o: { world: number; sizes: number[]; codec: Codec; reps?: number; json?: boolean }) => {
      if (!o.json) process.stdout.write(`${'world'.padStart(5)} ${'bytes'.padStart(12)} ${'codec'.padStart(5)} ${'time_ms'.padStart(10)} ${'algbw GB/s'.padStart(11)} ${'busbw GB/s'.padStart(11)}\n`);
      await benchAllReduce({
        world: o.world, sizes: o.sizes, codec: o.codec, ...(o.reps ? { reps: o.reps } : {}),
        onResult: (r) => process.stdout.write(o.json
          ? JSON.stringify({ world: r.world, bytes: r.bytes, codec: r.codec, time_ms: r.time_ms, algbw_gbs: r.algbw_gbs, busbw_gbs: r.busbw_gbs }) + '\n'
          : `${String(r.world).padStart(5)} ${String(r.bytes).padStart(12)} ${r.codec.padStart(5)} ${r.time_ms.toFixed(3).padStart(10)} ${r.algbw_gbs.toFixed(3).padStart(11)} ${r.busbw_gbs.toFixed(3).padStart(11)}\n`),
      });
      return 0;
    }));

}
