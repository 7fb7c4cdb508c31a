#!/usr/bin/env bash
# A short GPU check for hosts with no network and no Node.js (air-gapped GPU clusters).
#
#   scripts/gpu-check.sh --bundle [OUT.tar.xz]   here (a built checkout): a self-contained bundle of at
#                                                most 60 MiB (Node, the built packages, the node_modules the
#                                                workers load, the Vulkan loader); see scripts/gpu-bundle.mjs
#   ./gpu-check.sh BUNDLE.tar.xz                 on the GPU host (this script is also inside the bundle):
#                                                unpacks under /tmp and runs `trainer bench train` on WebGPU
#                                                for gpt-mini and gpt2-124m, 1 and 2 workers on one GPU,
#                                                printing one JSON line per run (adapter, tokens/s, step time
#                                                split, bytes per step, MFU against the GPU's fp32 peak) and
#                                                one with a kernel profile of a step (GPU time per layer
#                                                phase and per kernel, from timestamp queries), and a last
#                                                line saying what it could not do. Under 8 minutes.
#
# GPU_CHECK_MODELS, GPU_CHECK_WORKERS, GPU_CHECK_STEPS, GPU_CHECK_TIMEOUT (seconds per run) and
# GPU_CHECK_PROFILE_MODEL (default: the last model; none: no profile)
# override the defaults (the test runs a tiny model on SwiftShader).
set -uo pipefail

if [ "${1:-}" = "--bundle" ]; then
  cd "$(dirname "$0")/.."
  [ -d packages/cli/dist ] || { echo "gpu-check: build first (./scripts/setup.sh)" >&2; exit 2; }
  exec node scripts/gpu-bundle.mjs "${2:-trainer-gpu-bundle.tar.xz}"
fi

bundle=${1:-}
if [ -z "$bundle" ] || [ ! -f "$bundle" ]; then
  echo "usage: gpu-check.sh --bundle [OUT.tar.xz] | gpu-check.sh BUNDLE.tar.xz" >&2
  exit 2
fi
started=$(date +%s)
dir=$(mktemp -d /tmp/trainer-gpu-check.XXXXXX)
trap 'rm -rf "$dir"' EXIT
tar -xJf "$bundle" -C "$dir" || { echo '{"check":"failed","error":"cannot unpack the bundle (tar with xz needed)"}'; exit 1; }
run="$dir/trainer-bundle/run.sh"

gpu_name=""
if command -v nvidia-smi >/dev/null 2>&1; then gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1); fi
not_done=()
[ -n "$gpu_name" ] || not_done+=("nvidia-smi: no GPU name (the adapter's description is used for the fp32 peak)")

models=${GPU_CHECK_MODELS:-gpt-mini gpt2-124m}
workers=${GPU_CHECK_WORKERS:-1 2}
steps=${GPU_CHECK_STEPS:-10}
per_run=${GPU_CHECK_TIMEOUT:-100}
budget=450   # seconds for all runs: the check ends within 8 minutes

{
  for model in $models; do
    for w in $workers; do
      left=$((budget - ($(date +%s) - started)))
      if [ "$left" -lt 20 ]; then
        echo "{\"model\":\"$model\",\"workers\":$w,\"error\":\"skipped: the 8-minute budget is spent\"}"
        continue
      fi
      limit=$(( left < per_run ? left : per_run ))
      # one GPU: every worker on it (--procs-per-node semantics of bench: local workers)
      out=$(timeout "$limit" "$run" bench train --model "$model" --world "$w" --backend webgpu --kernels tf --steps "$steps" --warmup 3 --batch 4 --json 2>"$dir/err-$model-$w.log")
      rc=$?
      line=$(printf '%s\n' "$out" | grep '^{' | tail -1)
      if [ "$rc" -eq 0 ] && [ -n "$line" ]; then
        echo "$line"
      else
        why=$(grep -o 'TRAINER_ERR_[A-Z_]*[^"]*' "$dir/err-$model-$w.log" | head -1 | tr -d '\\"' | cut -c1-300)
        [ "$rc" -eq 124 ] && why="timed out after ${limit}s"
        echo "{\"model\":\"$model\",\"workers\":$w,\"error\":\"exit $rc: ${why:-see its log}\"}"
      fi
    done
  done
  # Where one step's GPU time goes, per layer phase and per kernel (timestamp queries): whether
  # attention or LayerNorm backward would be worth their own WGSL programs.
  profile_model=${GPU_CHECK_PROFILE_MODEL:-${models##* }}
  left=$((budget - ($(date +%s) - started)))
  if [ "$profile_model" = none ]; then
    :
  elif [ "$left" -lt 30 ]; then
    echo "{\"kernel_profile\":\"$profile_model\",\"error\":\"skipped: the 8-minute budget is spent\"}"
  else
    limit=$(( left < per_run ? left : per_run ))
    out=$(timeout "$limit" "$run" model-bench --backend webgpu --model "$profile_model" --kernels tf --batch 4 --steps 1 --warmup 1 --peak-seconds 0.5 --kernel-profile --json 2>"$dir/err-profile.log")
    rc=$?
    line=$(printf '%s\n' "$out" | grep '^{' | tail -1)
    if [ "$rc" -eq 0 ] && [ -n "$line" ]; then echo "$line"
    else echo "{\"kernel_profile\":\"$profile_model\",\"error\":\"exit $rc$([ "$rc" -eq 124 ] && echo ": timed out after ${limit}s")\"}"; fi
  fi
} | GPU_NAME="$gpu_name" NOT_DONE="$(IFS=';'; echo "${not_done[*]:-}")" "$dir/trainer-bundle/bin/node" "$dir/trainer-bundle/gpu-check-report.mjs"
