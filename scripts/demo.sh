#!/usr/bin/env bash
# Sets up a fresh clone and runs the main job: a GPT trained data-parallel by 4 worker
# processes on Moby Dick, then its validation perplexity and a sample of what it wrote.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
out=${1:-runs/demo}
node packages/cli/bin/trainer.js launch --nodes 4 --model gpt-nano --data moby-dick \
  --steps "${STEPS:-300}" --global-batch 16 --lr 2e-3 --out "$out"
