/**
 * `node dist/bench/allreduce-main.js --world 4 --sizes 1MiB,16MiB,64MiB [--codec fp32|bf16|fp16]
 *  [--reps N] [--piece 512KiB] [--window 4MiB] [--algorithm ring|direct|auto] [--buffer plain|registered] [--transport unix|tcp] [--prof DIR] [--json]`: the all-reduce benchmark from a shell
 * (the trainer CLI wires the same function to `trainer bench allreduce`).
 */
import { asTrainerError } from '@trainer/errors';
import type { Codec } from '../codecs/codec.js';
import type { CollectiveAlgorithm } from '../collectives/algorithm.js';
import { benchAllReduce } from './allreduce-bench.js';
import { parseSize } from './parse-size.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const results = await benchAllReduce({
    world: Number(arg('world') ?? 2),
    sizes: (arg('sizes') ?? '1MiB,16MiB,64MiB').split(',').map(parseSize),
    codec: (arg('codec') ?? 'fp32') as Codec,
    reps: arg('reps') ? Number(arg('reps')) : undefined,
    pieceBytes: arg('piece') ? parseSize(arg('piece')!) : undefined,
    algorithm: arg('algorithm') as CollectiveAlgorithm | undefined,
    buffer: arg('buffer') as 'plain' | 'registered' | undefined,
    highWaterMark: arg('window') ? parseSize(arg('window')!) : undefined,
    localTransport: arg('transport') === 'tcp' ? 'tcp' : 'unix',
    workerExecArgv: arg('prof') ? ['--cpu-prof', `--cpu-prof-dir=${arg('prof')}`] : undefined,
    onResult: (r) => {
      if (json) console.log(JSON.stringify({ peer: 'trainer-comm', ...r }));
      else console.log(`world ${r.world}  ${(r.bytes / 2 ** 20).toFixed(2).padStart(8)} MiB  ${r.codec}  ${r.time_ms.toFixed(2).padStart(9)} ms  algbw ${r.algbw_gbs.toFixed(3)} GB/s  busbw ${r.busbw_gbs.toFixed(3)} GB/s  cpu ${r.cpu_ms?.toFixed(1)} ms  all ranks ${r.cpu_all_ms?.toFixed(1)} ms (sys ${r.sys_all_ms?.toFixed(1)})`);
    },
  });
  if (results.length === 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(asTrainerError(err).format());
  process.exitCode = 1;
});
