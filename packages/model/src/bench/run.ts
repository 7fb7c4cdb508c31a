#!/usr/bin/env node
/**
 * The model's speed benchmark: ms per forwardBackward step with a phase breakdown, tokens/s,
 * achieved GFLOP/s and MFU against the backend's own plain 2-D matMul peak, and optionally the
 * PyTorch peer (torch_gpt.py) measured in the same run.
 *
 *   node packages/model/dist/bench/run.js [--backend auto|wasm|cpu|...] [--model gpt-nano]
 *       [--batch 8] [--seq 128] [--steps 10] [--warmup 3] [--peak-seconds 2] [--kernels host|tf]
 *       [--kernel-profile] [--json]
 *       [--peer path/to/torch_gpt.py [--python /usr/bin/python3]]
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { initBackend } from '../backend.js';
import type { BackendName } from '../backend.js';
import type { KernelSet } from '../layers/layer-set.js';
import { measureMatMulPeak } from '../peak.js';
import { benchForwardBackward } from './forward-backward.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function num(name: string): number | undefined {
  const v = arg(name);
  return v === undefined ? undefined : Number(v);
}

interface PeerResult {
  step_ms: number;
  tokens_per_s: number;
  torch?: string;
}

function runPeer(script: string, model: { layers: number; heads: number; d: number; vocab: number; ctx: number; batch: number }): PeerResult | string {
  const args = [script, '--world', '1', '--steps', '20'];
  for (const [k, v] of Object.entries(model)) args.push(`--${k}`, String(v));
  // Debian's python3-torch (what peers.sh installs) lives with the system python.
  const python = arg('python') ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
  const env: Record<string, string | undefined> = { ...process.env, OMP_NUM_THREADS: '1' };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const r = spawnSync(python, args, { encoding: 'utf8', env, timeout: 600_000 });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('{'));
  if (r.status !== 0 || line === undefined) return `peer failed (status ${r.status}): ${(r.stderr ?? '').trim().split('\n').pop() ?? ''}`;
  return JSON.parse(line) as PeerResult;
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const log = json ? () => {} : (m: string) => console.log(m);
  const info = await initBackend((arg('backend') ?? 'auto') as BackendName, log);
  // (a software GPU adapter computes at a few hundred MFLOP/s: a smaller product keeps this to seconds)
  const peak = await measureMatMulPeak({ seconds: num('peak-seconds') ?? 2, ...(info.adapter?.software ? { m: 256, k: 256, n: 256 } : {}) });
  const r = await benchForwardBackward({
    model: arg('model'),
    batch: num('batch'),
    seqLen: num('seq'),
    steps: num('steps') ?? 10,
    warmup: num('warmup'),
    kernels: arg('kernels') as KernelSet | undefined,
    kernelProfile: process.argv.includes('--kernel-profile'),
  });
  const mfu = r.gflops / peak.gflops;
  const peerScript = arg('peer');
  const peer =
    peerScript === undefined
      ? undefined
      : runPeer(peerScript, { layers: r.config.layers, heads: r.config.heads, d: r.config.dModel, vocab: r.config.vocabSize, ctx: r.seqLen, batch: r.batch });
  if (json) {
    console.log(JSON.stringify({ bench: 'model-forward-backward', backendInfo: info, matMulPeakGflops: peak.gflops, mfu, ...r, peer }));
    return;
  }
  console.log(`\n${r.model} batch ${r.batch} x seq ${r.seqLen} = ${r.tokensPerStep} tokens/step, ${r.kernels} kernels on ${r.backend}`);
  console.log('phase'.padEnd(26) + 'ms/step'.padStart(9) + 'calls'.padStart(7));
  for (const p of r.phases) console.log(p.phase.padEnd(26) + p.msPerStep.toFixed(2).padStart(9) + String(p.calls).padStart(7));
  const { median, mean, min } = r.msPerStep;
  console.log(`step (setParams + forwardBackward): median ${median.toFixed(1)} ms (mean ${mean.toFixed(1)}, min ${min.toFixed(1)})`);
  console.log(`tokens/s ${r.tokensPerSecond.toFixed(0)}, ${(r.flopsPerStep / 1e9).toFixed(2)} GFLOP/step, ${r.gflops.toFixed(1)} GFLOP/s`);
  console.log(`matMul peak (1024^3 plain 2-D, best 0.25 s window) ${peak.gflops.toFixed(1)} GFLOP/s -> MFU ${(100 * mfu).toFixed(1)}%`);
  console.log(`tensor leak check: ${r.tensorDelta === 0 ? 'ok' : `${r.tensorDelta} tensors left`}`);
  const kp = r.kernelProfile;
  if (kp) {
    console.log(`\none profiled step: ${kp.kernels} kernels, ${kp.ms.toFixed(1)} ms of ${kp.timer === 'gpu-timestamps' ? 'GPU time (timestamp queries)' : 'kernel wall time'}`);
    console.log('phase'.padEnd(26) + 'kernels'.padStart(8) + 'ms'.padStart(9) + 'share'.padStart(7));
    for (const p of [...kp.phases].sort((a, b) => b.ms - a.ms)) console.log(p.phase.padEnd(26) + String(p.kernels).padStart(8) + p.ms.toFixed(2).padStart(9) + `${(100 * p.share).toFixed(1)}%`.padStart(7));
    console.log('kernel'.padEnd(26) + 'count'.padStart(8) + 'ms'.padStart(9) + 'share'.padStart(7));
    for (const k of kp.top) console.log(k.name.padEnd(26) + String(k.kernels).padStart(8) + k.ms.toFixed(2).padStart(9) + `${(100 * k.share).toFixed(1)}%`.padStart(7));
  }
  if (typeof peer === 'string') console.log(`peer: ${peer}`);
  else if (peer !== undefined) {
    console.log(
      `peer PyTorch ${peer.torch ?? ''} (1 thread, full step incl. AdamW): ${peer.step_ms.toFixed(1)} ms/step, ${peer.tokens_per_s.toFixed(0)} tokens/s` +
        ` -> ours ${(100 * (r.tokensPerSecond / peer.tokens_per_s)).toFixed(0)}% of its tokens/s`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err as { format?: () => string }).format?.() ?? err.message : String(err));
  process.exit(1);
});
