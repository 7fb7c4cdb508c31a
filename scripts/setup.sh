#!/usr/bin/env bash
# Sets up a fresh clone: pnpm (from the npm registry), dependencies, and the build.
# Needs only Node.js >= 20 and npm. Safe to run again (it is quick when nothing changed).
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=10.34.8
node -e 'const [major] = process.versions.node.split(".").map(Number); if (major < 20) { console.error(`trainer needs Node.js >= 20 (found ${process.version})`); process.exit(1); }'

if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
  echo "setup: installing pnpm $PNPM_VERSION from the npm registry"
  if ! npm install --global --silent "pnpm@$PNPM_VERSION" >/dev/null 2>&1; then
    # No permission for a global install: keep pnpm inside the repository instead.
    npm install --silent --no-save --prefix .tools "pnpm@$PNPM_VERSION" >/dev/null
    export PATH="$PWD/.tools/node_modules/.bin:$PATH"
  fi
fi

# The optional native backends (@tensorflow/tfjs-node, -node-gpu) download libtensorflow while
# installing; where that fails they are skipped and the wasm backend is used. Their install
# scripts' output (a download stack trace where storage.googleapis.com is unreachable) goes to
# NATIVE_LOG instead of the terminal, and one line says what became of them; every other line of
# pnpm's output, other packages' failures included, is shown as it comes.
NATIVE_LOG=.cache/setup/native-backends.log
mkdir -p "$(dirname "$NATIVE_LOG")"
install_status=0
pnpm install --frozen-lockfile --reporter=append-only 2>&1 \
  | awk -v native="$NATIVE_LOG.new" '/@tensorflow\/tfjs-node(-gpu)? (pre|post)?install[:$]/ { print > native; next } { print; fflush() }' \
  || install_status=$?
# The newest install that ran their scripts keeps its log (a later install that skips them reuses it).
if [ -s "$NATIVE_LOG.new" ]; then mv "$NATIVE_LOG.new" "$NATIVE_LOG"; else rm -f "$NATIVE_LOG.new"; fi
[ "$install_status" = 0 ] || echo "setup: pnpm install exited with status $install_status (its output is above)" >&2
test -d packages/model/node_modules/@tensorflow/tfjs-core || { echo "setup: pnpm install failed" >&2; exit 1; }

# One line: which native backends have libtensorflow and their addon (as Dockerfile.gpu checks), and why not.
native_backends_line() {
  local installed=() skipped=() pkg dir why
  for pkg in tfjs-node tfjs-node-gpu; do
    dir=packages/model/node_modules/@tensorflow/$pkg
    if compgen -G "$dir/deps/lib/libtensorflow.so.*" >/dev/null && compgen -G "$dir/lib/napi-v*/tfjs_binding.node" >/dev/null; then
      installed+=("@tensorflow/$pkg")
    else
      skipped+=("$pkg")
    fi
  done
  [ ${#skipped[@]} = 0 ] && { echo "setup: native backends installed: ${installed[*]}"; return; }
  if [ ! -s "$NATIVE_LOG" ]; then
    why="$([ ${#skipped[@]} = 1 ] && echo has || echo have) no libtensorflow (an earlier install did not get it and left no log; pnpm rebuild -r ${skipped[*]/#/@tensorflow/} retries)"
  elif grep -q -E 'ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ECONNRESET|ENETUNREACH' "$NATIVE_LOG"; then
    why="could not download libtensorflow (no network access to $(grep -o -m1 -E 'https?://[^/]+' "$NATIVE_LOG" | sed 's#.*://##' || echo 'its download host'))"
  else
    why="failed to install (see the log)"
  fi
  local names="@tensorflow/${skipped[0]}"
  [ ${#skipped[@]} = 2 ] && names="@tensorflow/tfjs-node(-gpu)"
  echo "setup: native backends skipped: $names $why; training uses ${installed[0]:-wasm}$( [ -s "$NATIVE_LOG" ] && echo " (log: $NATIVE_LOG)")"
}
native_backends_line
pnpm build

# Installs Debian packages where apt-get can (root on Debian/Ubuntu), else says what will fail:
#   debian_install "<what for>" "<what fails without them>" [--no-install-recommends] PACKAGE...
debian_install() {
  local why=$1 without=$2
  shift 2
  local packages
  packages=$(printf '%s ' "$@" | sed 's/--no-install-recommends //')
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${packages}(Debian) $why"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "setup: cannot install ${packages}here (needs root and apt-get); $without" >&2
  fi
}

# The dashboard's browser test drives Debian's headless Chromium (never a downloaded browser build).
# Installed only where it is missing, and only where apt-get can (root on Debian/Ubuntu).
if ! command -v chromium >/dev/null 2>&1; then
  debian_install "for the dashboard's browser test" "the browser test will fail" chromium
fi

# The WebGPU backend (npm webgpu: Dawn) loads the Vulkan loader, libvulkan.so.1; on a machine
# without a GPU the tests point it at SwiftShader, the software Vulkan driver Debian's chromium
# ships (VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json). Installed only where missing;
# --no-install-recommends keeps Mesa's drivers out (Dawn refuses lavapipe anyway).
if ! ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1 ' >/dev/null; then
  debian_install "for the WebGPU backend" "the WebGPU tests will fail" --no-install-recommends libvulkan1
fi

# The deployment tests validate docker/docker-compose.yml with Debian's docker-compose (its
# `config` needs no Docker engine) and read YAML with its python3-yaml. Installed only where
# missing; --no-install-recommends keeps the Docker engine (docker.io) out.
if ! command -v docker-compose >/dev/null 2>&1; then
  debian_install "for the deployment tests" "the compose tests will fail" --no-install-recommends docker-compose
fi

# Emulated hosts (test/netns.test.ts, test/bench-scale.test.ts, trainer bench scale) are network
# namespaces joined by veth pairs, their links shaped by tc: iproute2's ip and tc.
if ! command -v ip >/dev/null 2>&1 || ! command -v tc >/dev/null 2>&1; then
  debian_install "for the emulated-host tests" "the emulated-host tests will skip, saying why" --no-install-recommends iproute2
fi

# The multi-host tests (test/hosts-*.test.ts, test/failures-hosts.test.ts) run an OpenSSH server
# in each test host's network namespace and reach it with ssh, as `trainer launch --hostfile`
# does; openssl makes the TLS tests' certificates. Installed only where missing (the server is
# not started here: the tests start their own, on the test hosts' addresses only).
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1; then
  debian_install "for the multi-host and TLS tests" "the multi-host tests will skip, saying why" --no-install-recommends openssh-server openssh-client openssl
fi

# The reference tests (test/hf-reference.test.ts) check exported models against an independent
# PyTorch forward pass (scripts/hf_reference_forward.py), run by /usr/bin/python3 with Debian's
# PyTorch; OpenBLAS as its BLAS (Debian's torch otherwise uses the slow reference BLAS; the
# benchmark peers in ../shared/bench use the same pair). Installed only where missing;
# --no-install-recommends keeps 47 of 210 packages out (Qt, VA drivers, dev headers): 163
# packages, 154 MB, about 75 s on a fresh Debian 12.
if ! /usr/bin/python3 -c 'import numpy, torch' >/dev/null 2>&1; then
  debian_install "for the PyTorch reference tests" "the PyTorch reference tests will fail" --no-install-recommends python3-torch libopenblas0-pthread
fi
