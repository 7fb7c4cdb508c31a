import type { Command } from 'commander';
import { meshShape } from '@trainer/engine';
import { exitCode } from '../../action.js';
import { int, oneOf } from '../../parse.js';
import { BACKENDS, KERNEL_SETS, PRECISIONS } from '../../train-options.js';
import { flopsPerToken, initBackend, measureMatMulPeak, measureTransferBandwidth, resolveModelConfig } from '@trainer/model';
import { runSynthetic } from './synthetic-run.js';

/** Bytes of scalars a step may read or upload besides its collectives and token ids (loss, norm, schedule values). */
export const SCALAR_ALLOWANCE_BYTES = 1024;

/**
 * `trainer bench train`: tokens/s, step time and MFU against the backend's own matMul peak, and
 * what crosses between host and device per step on every rank beside what the network carries:
 * on the tf kernel set only the collectives' bytes and the token ids may cross
 * (host<->device <= comm + token ids + 1 KiB of scalars).
 */
export function addTrainBench(cmd: Command): void {
  cmd
    .command('train')
    .description('training throughput on random tokens (as the PyTorch DDP peer): tokens/s, step time, MFU, host<->device and network bytes per step')
    .option('--model <name>', 'model config', 'gpt-nano')
    .option('--world <n>', 'worker processes', int(1, 64), 1)
    .option('--batch <n>', 'sequences per data-parallel replica per step', int(1), 8)
    .option('--steps <n>', 'timed steps', int(1), 20)
    .option('--warmup <n>', 'untimed steps first', int(0), 3)
    .option('--backend <name>', `compute backend: ${BACKENDS.join(', ')}`, oneOf(BACKENDS), 'auto')
    .option('--kernels <set>', 'host (state in host memory), tf (state on the device) or auto', oneOf(KERNEL_SETS), 'auto')
    .option('--zero <stage>', 'ZeRO stage', int(0, 3), 0)
    .option('--tp <n>', 'tensor-parallel size', int(1, 64), 1)
    .option('--pp <n>', 'pipeline stages', int(1, 64), 1)
    .option('--micro-batches <n>', 'micro-batches per step (pipelines)', int(1))
    .option('--precision <p>', `${PRECISIONS.join(', ')}: what parameters and gradients are held and sent in`, oneOf(PRECISIONS), 'fp32')
    .option('--json', 'one JSON object')
    .action(exitCode(async (o: { model: string; world: number; batch: number; steps: number; warmup: number; backend: (typeof BACKENDS)[number]; kernels: (typeof KERNEL_SETS)[number]; zero: number; tp: number; pp: number; microBatches?: number; precision: (typeof PRECISIONS)[number]; json?: boolean }) => {
      const config = resolveModelConfig(o.model);
      const { dp } = meshShape(o.world, o.tp, o.pp);
      // The peak of this backend's plain 2-D matMul, measured now, is the MFU denominator.
      const backendInfo = await initBackend(o.backend, () => undefined);
      // (a software GPU adapter computes at a few hundred MFLOP/s: a smaller product keeps this to seconds)
      const peak = await measureMatMulPeak(backendInfo.adapter?.software ? { m: 256, k: 256, n: 256 } : {});
      const bandwidth = await measureTransferBandwidth();
      const result = await runSynthetic({
        model: o.model, world: o.world, globalBatch: o.batch * dp, steps: o.steps, warmup: o.warmup, backend: o.backend, kernels: o.kernels,
        zero: o.zero, tp: o.tp, pp: o.pp, microBatches: o.microBatches ?? (o.pp > 1 ? 2 * o.pp : undefined), precision: o.precision, quiet: o.json,
      });
      if (!result.outcome.ok) return result.exitCode;
      const rs = result.outcome.results;
      const r = rs[0];
      const tokensPerS = Number(r.tokens_per_s);
      const flops = flopsPerToken(config, config.contextLength);
      const mfu = (tokensPerS * flops) / (o.world * peak.gflops * 1e9);
      // Token ids and targets a rank uploads per step (int32): its replica's share of the batch.
      const tokenIdBytes = 2 * 4 * o.batch * config.contextLength;
      const ranks = rs.map((x, rank) => {
        const toDevice = Number(x.host_to_device_bytes_per_step);
        const toHost = Number(x.device_to_host_bytes_per_step);
        const comm = Number(x.comm_bytes_per_step);
        // The step's time split: comm = time a collective was in flight (measured); host<->device =
        // the step's bytes at the copy bandwidth measured above; compute = the rest. (transfer_wait_ms:
        // time awaiting the device's reads, which on a GPU includes the work queued before them.)
        const stepMs = Number(x.step_ms);
        const commMs = Number(x.collective_ms_per_step) || 0;
        const hostDeviceMs = (toDevice / bandwidth.hostToDeviceGBs + toHost / bandwidth.deviceToHostGBs) / 1e6;
        return {
          rank, step_ms: stepMs, comm_ms: commMs, host_device_ms: hostDeviceMs, compute_ms: Math.max(0, stepMs - commMs - hostDeviceMs),
          transfer_wait_ms: Number(x.transfer_wait_ms_per_step),
          host_to_device_bytes_per_step: toDevice, device_to_host_bytes_per_step: toHost, comm_bytes_per_step: comm,
          within_bound: toDevice + toHost <= comm + tokenIdBytes + SCALAR_ALLOWANCE_BYTES,
        };
      });
      const out = {
        model: o.model, world: o.world, dp, tp: o.tp, pp: o.pp, zero: o.zero, precision: o.precision, batch: o.batch, ctx: config.contextLength, backend: r.backend, kernels: r.kernels, ...(backendInfo.adapter ? { adapter: backendInfo.adapter } : {}),
        tokens_per_s: tokensPerS, step_ms: Number(r.step_ms), mfu, matmul_peak_gflops: peak.gflops, flops_per_token: flops,
        host_to_device_gbs: bandwidth.hostToDeviceGBs, device_to_host_gbs: bandwidth.deviceToHostGBs,
        token_id_bytes_per_step: tokenIdBytes, ranks,
      };
      if (o.json) {
        process.stdout.write(JSON.stringify(out) + '\n');
      } else {
        process.stdout.write(`${o.model} on ${o.world} worker(s) (${dp} x ${o.tp} x ${o.pp}, ZeRO ${o.zero}, ${o.precision}, ${String(r.kernels)} kernels on ${String(r.backend)}): ${tokensPerS.toFixed(0)} tokens/s, ${out.step_ms.toFixed(1)} ms/step, MFU ${(mfu * 100).toFixed(1)}% of ${peak.gflops.toFixed(1)} GFLOP/s per worker\n`);
        process.stdout.write(`rank  host->device/step  device->host/step  network (sent+received)/step  within comm + token ids + 1 KiB\n`);
        for (const x of ranks) {
          process.stdout.write(`${String(x.rank).padEnd(6)}${fmt(x.host_to_device_bytes_per_step).padStart(17)}${fmt(x.device_to_host_bytes_per_step).padStart(19)}${fmt(x.comm_bytes_per_step).padStart(30)}  ${x.within_bound ? 'yes' : 'no'}\n`);
        }
      }
      return result.exitCode;
    }));
}

function fmt(bytes: number): string {
  return bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(2)} MiB` : bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes.toFixed(0)} B`;
}
