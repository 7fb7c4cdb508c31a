#!/usr/bin/env bash
# Sets up a fresh clone and runs every test: unit tests next to the code, multi-process,
# fault and end-to-end tests in test/. This is what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[ -d .tools/node_modules/.bin ] && export PATH="$PWD/.tools/node_modules/.bin:$PATH"
pnpm vitest run "$@"
