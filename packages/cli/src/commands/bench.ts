import { exitCode } from '../action.js';
import { Command } from 'commander';
import { benchAllReduce, type Codec } from '@trainer/comm';
import { createLogger, detectGpus, generateClusterToken, launchLocal, prepareTrainJob } from '@trainer/launcher';
import { estimateModelState } from '@trainer/engine';
import { flopsPerToken, initBackend, measureMatMulPeak, resolveModelConfig, segmentSpecs, unitComputeCosts } from '@trainer/model';
import { formatBytes, kernelsFor } from './estimate-memory.js';
import { CLI_BIN } from '../paths.js';
import { int, list, oneOf, parseByteSize } from '../parse.js';
import { BACKENDS } from '../train-options.js';

/**
 * Benchmarks that print numbers (never timed tests). Their JSON lines sit beside the peers'
 * (/work/shared/bench/peers.sh) in docs/BENCHMARKS.md; compare ratios measured in one run.
 */
export function benchCommand(): Command {
  const cmd = new Command('bench').description('benchmarks: all-reduce bandwidth and training throughput');

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

  cmd
    .command('train')
    .description('training throughput on random tokens (as the PyTorch DDP peer): tokens/s, step time, MFU')
    .option('--model <name>', 'model config', 'gpt-nano')
    .option('--world <n>', 'worker processes', int(1, 64), 1)
    .option('--batch <n>', 'sequences per worker per step', int(1), 8)
    .option('--steps <n>', 'timed steps', int(1), 20)
    .option('--warmup <n>', 'untimed steps first', int(0), 3)
    .option('--backend <name>', `compute backend: ${BACKENDS.join(', ')}`, oneOf(BACKENDS), 'auto')
    .option('--json', 'one JSON object')
    .action(exitCode(async (o: { model: string; world: number; batch: number; steps: number; warmup: number; backend: (typeof BACKENDS)[number]; json?: boolean }) => {
      const log = createLogger({ base: { role: 'bench' }, level: o.json ? 'warn' : 'info' });
      const config = resolveModelConfig(o.model);
      // The peak of this backend's plain 2-D matMul, measured now, is the MFU denominator.
      await initBackend(o.backend, () => undefined);
      const peak = await measureMatMulPeak();
      const prepared = await prepareTrainJob({
        modelName: o.model, modelOverrides: {}, data: 'synthetic', world: o.world, steps: o.steps + o.warmup,
        globalBatch: o.batch * o.world, lr: 1e-4, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, gradClip: 1, seed: 0,
        backend: o.backend, evalBatches: 0, valFraction: 0.05, warmupTimingSteps: o.warmup, outDir: '',
        sample: { prompt: '', maxNewTokens: 0, temperature: 0, topK: 0 },
      }, (m) => log.info(m));
      const result = await launchLocal({
        world: o.world, token: generateClusterToken(), job: prepared.job, logger: log, gpus: await detectGpus(),
        workerCommand: { execPath: process.execPath, args: [CLI_BIN, 'worker'] },
        env: o.json ? { TRAINER_LOG_LEVEL: 'warn' } : {},
      });
      if (!result.outcome.ok) return result.exitCode;
      const r = result.outcome.results[0];
      const tokensPerS = Number(r.tokens_per_s);
      const flops = flopsPerToken(config, config.contextLength);
      const mfu = (tokensPerS * flops) / (o.world * peak.gflops * 1e9);
      const out = {
        model: o.model, world: o.world, batch: o.batch, ctx: config.contextLength, backend: r.backend,
        tokens_per_s: tokensPerS, step_ms: Number(r.step_ms), mfu, matmul_peak_gflops: peak.gflops, flops_per_token: flops,
      };
      process.stdout.write(o.json ? JSON.stringify(out) + '\n'
        : `${o.model} on ${o.world} worker(s): ${tokensPerS.toFixed(0)} tokens/s, ${out.step_ms.toFixed(1)} ms/step, MFU ${(mfu * 100).toFixed(1)}% of ${peak.gflops.toFixed(1)} GFLOP/s per worker\n`);
      return result.exitCode;
    }));
  cmd
    .command('zero')
    .description('ZeRO stages 0-3 side by side: step time, tokens/s, model-state bytes per worker (measured and predicted), bytes sent per step')
    .option('--model <name>', 'model config', 'gpt-nano')
    .option('--nodes <n>', 'worker processes', int(1, 64), 4)
    .option('--batch <n>', 'sequences per worker per step', int(1), 8)
    .option('--steps <n>', 'timed steps per stage', int(1), 10)
    .option('--warmup <n>', 'untimed steps first', int(0), 2)
    .option('--backend <name>', `compute backend: ${BACKENDS.join(', ')}`, oneOf(BACKENDS), 'wasm')
    .option('--json', 'one JSON object per stage')
    .action(exitCode(async (o: { model: string; nodes: number; batch: number; steps: number; warmup: number; backend: (typeof BACKENDS)[number]; json?: boolean }) => {
      const log = createLogger({ base: { role: 'bench' }, level: o.json ? 'warn' : 'info' });
      const config = resolveModelConfig(o.model);
      const units = unitComputeCosts(config, kernelsFor(o.backend, false));
      const segments = segmentSpecs(config);
      const rows = [];
      if (!o.json) process.stdout.write(`${o.model}, ${o.nodes} workers, batch ${o.batch} per worker\nstage   step ms   tokens/s   model state (measured / predicted)   sent/step\n`);
      for (const stage of [0, 1, 2, 3] as const) {
        const prepared = await prepareTrainJob({
          modelName: o.model, modelOverrides: {}, data: 'synthetic', world: o.nodes, steps: o.steps + o.warmup, zero: stage,
          globalBatch: o.batch * o.nodes, lr: 1e-4, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, gradClip: 1, seed: 0,
          backend: o.backend, evalBatches: 0, valFraction: 0.05, warmupTimingSteps: o.warmup, outDir: '',
          sample: { prompt: '', maxNewTokens: 0, temperature: 0, topK: 0 },
        }, (m) => log.info(m));
        const result = await launchLocal({
          world: o.nodes, token: generateClusterToken(), job: prepared.job, logger: log, gpus: await detectGpus(),
          workerCommand: { execPath: process.execPath, args: [CLI_BIN, 'worker'] }, env: { TRAINER_LOG_LEVEL: 'warn' },
        });
        if (!result.outcome.ok) return result.exitCode;
        const r = result.outcome.results[0];
        const predicted = estimateModelState(units, segments, stage, o.nodes, 0);
        const row = {
          model: o.model, world: o.nodes, zero: stage, step_ms: Number(r.step_ms), tokens_per_s: Number(r.tokens_per_s),
          model_state_bytes: Number(r.model_state_bytes), predicted_model_state_bytes: predicted.total, zero_paper_bytes: predicted.zeroPaper,
          bytes_sent_per_step: Number(r.bytes_sent_per_step),
        };
        rows.push(row);
        process.stdout.write(o.json ? JSON.stringify(row) + '\n'
          : `${String(stage).padEnd(8)}${row.step_ms.toFixed(0).padStart(7)}${row.tokens_per_s.toFixed(0).padStart(11)}   ${formatBytes(row.model_state_bytes).padStart(12)} / ${formatBytes(row.predicted_model_state_bytes).padEnd(12)}        ${formatBytes(row.bytes_sent_per_step)}\n`);
      }
      return 0;
    }));
  return cmd;
}
