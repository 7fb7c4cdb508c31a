// Reads `trainer bench train --json` lines (stdin) from one GPU and prints each with its MFU
// against the GPU's dense fp32 peak (non-tensor-core: TF.js computes in fp32), then a summary.
// Used by gpu-check.sh; the GPU's name comes from GPU_NAME (nvidia-smi) or the WebGPU adapter.
import { createInterface } from 'node:readline';

/** Dense fp32 TFLOP/s (vendor datasheets), matched by name, most specific first. */
const FP32_PEAK_TFLOPS = [
  [/H200/i, 66.9], [/H100.*PCIe/i, 51.2], [/H100.*NVL/i, 60.0], [/H100/i, 66.9], [/GH200/i, 66.9],
  [/A100/i, 19.5], [/A30\b/i, 10.3], [/A10\b/i, 31.2], [/L40S/i, 91.6], [/L40\b/i, 90.5], [/L4\b/i, 30.3],
  [/V100/i, 15.7], [/T4\b/i, 8.1], [/RTX 4090/i, 82.6], [/RTX 3090/i, 35.6], [/A6000/i, 38.7],
];

function peakOf(name) {
  for (const [re, tflops] of FP32_PEAK_TFLOPS) if (re.test(name)) return tflops;
  return null;
}

/** One step's kernel profile (model bench --kernel-profile), with the shares the WGSL question turns on. */
function kernelProfile(r) {
  const kp = r.kernelProfile;
  const share = (re) => kp.phases.filter((p) => re.test(p.phase)).reduce((a, p) => a + p.share, 0);
  return {
    kernel_profile: r.model, adapter: r.backendInfo?.adapter ?? null, timer: kp.timer, kernels_per_step: kp.kernels, gpu_ms_per_step: kp.ms,
    share: { matmul_layers: share(/^(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj|head)\./), attention_core_backward: share(/^attn\.core\.backward$/), layernorm_backward: share(/^ln\.backward$/), attention_core_forward: share(/^attn\.core\.forward$/), layernorm_forward: share(/^ln\.forward$/) },
    phases: kp.phases.map((p) => ({ phase: p.phase, kernels: p.kernels, ms: p.ms })),
    top_kernels: kp.top.slice(0, 8).map((k) => ({ name: k.name, count: k.kernels, ms: k.ms })),
  };
}

const runs = [];
let profile = null;
const failed = [];
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.startsWith('{')) continue;
  let r;
  try {
    r = JSON.parse(line);
  } catch {
    continue;
  }
  if (r.error) {
    failed.push(r.kernel_profile ? { model: `kernel profile of ${r.kernel_profile}`, workers: 1, error: r.error } : r);
    process.stdout.write(`${JSON.stringify(r)}\n`);
    continue;
  }
  if (r.bench === 'model-forward-backward') {
    profile = kernelProfile(r);
    process.stdout.write(`${JSON.stringify(profile)}\n`);
    continue;
  }
  const name = process.env.GPU_NAME || r.adapter?.description || r.adapter?.device || '';
  const peak = peakOf(name);
  const out = {
    gpu: name || null, adapter: r.adapter ?? null, model: r.model, workers: r.world, backend: r.backend, kernels: r.kernels,
    tokens_per_s: r.tokens_per_s, step_ms: r.step_ms,
    // split per rank 0: time in collectives, the step's bytes at the measured copy bandwidth, the rest
    step_split_ms: r.ranks?.[0] ? { compute: r.ranks[0].compute_ms, host_device: r.ranks[0].host_device_ms, comm: r.ranks[0].comm_ms } : null,
    bytes_per_step: r.ranks?.[0] ? { host_to_device: r.ranks[0].host_to_device_bytes_per_step, device_to_host: r.ranks[0].device_to_host_bytes_per_step, comm: r.ranks[0].comm_bytes_per_step } : null,
    within_bound: r.ranks?.every((x) => x.within_bound) ?? null,
    gpu_fp32_peak_tflops: peak,
    // all workers share one GPU: the run's tokens/s against that GPU's peak
    mfu_vs_gpu_fp32_peak: peak ? (r.tokens_per_s * r.flops_per_token) / (peak * 1e12) : null,
    matmul_tflops_measured: r.matmul_peak_gflops / 1000,
    copy_gbs: { host_to_device: r.host_to_device_gbs, device_to_host: r.device_to_host_gbs },
  };
  runs.push(out);
  process.stdout.write(`${JSON.stringify(out)}\n`);
}
const notDone = (process.env.NOT_DONE ?? '').split(';').filter(Boolean);
const software = runs.find((r) => r.adapter?.software);
if (software) notDone.push(`no GPU: the adapter is a software one (${software.gpu}); the numbers measure a CPU emulating a GPU`);
if (runs.length && runs.every((r) => r.gpu_fp32_peak_tflops === null)) notDone.push('MFU against the GPU fp32 peak: the GPU is not in the table of peaks');
process.stdout.write(`${JSON.stringify({ check: 'done', runs: runs.length, kernel_profile: profile !== null, failed: failed.map((f) => `${f.model} x${f.workers}: ${f.error}`), not_done: notDone })}\n`);
