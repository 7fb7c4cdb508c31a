import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { TrainerError } from '@trainer/errors';
import { ModelErrorCode } from './codes.js';
import { describeAdapter, installWebGpu, vulkanDriverProblem, type WebGpuAdapterInfo } from './webgpu-adapter.js';

export type BackendName = 'auto' | 'cuda' | 'webgpu' | 'tensorflow' | 'wasm' | 'cpu';

export interface BackendInfo {
  /** The backend in use. */
  name: Exclude<BackendName, 'auto'>;
  /** TF.js's own name for it (tf.getBackend()): 'tensorflow' for both native ones. */
  tfBackend: string;
  /** Why each better backend was unavailable (empty when the first choice worked). */
  reasons: string[];
  /** wasm only: whether the SIMD build is in use. */
  simd?: boolean;
  /** webgpu only: the adapter (a software one is correct but slow). */
  adapter?: WebGpuAdapterInfo;
}

interface Candidate {
  name: Exclude<BackendName, 'auto'>;
  /** TF.js backend name registered by the package. */
  tfBackend: string;
  /** What to do when it is missing. */
  hint: string;
  /** Loads the package and checks it really registered a usable backend; throws with the reason. */
  load: (auto: boolean) => Promise<WebGpuAdapterInfo | void>;
}

/** Best first: auto walks this list and takes the first that loads. */
const CANDIDATES: Candidate[] = [
  {
    name: 'cuda',
    tfBackend: 'tensorflow',
    hint:
      'pnpm add @tensorflow/tfjs-node-gpu (Linux x64; needs an NVIDIA driver, CUDA 11.2 and cuDNN 8.1 for its ' +
      'libtensorflow 2.9.1, and network access to storage.googleapis.com at install time)',
    load: async () => {
      await importNative('@tensorflow/tfjs-node-gpu');
      const be = tf.findBackend('tensorflow') as unknown as { isUsingGpuDevice?: boolean } | null;
      if (be?.isUsingGpuDevice !== true) {
        throw new Error('@tensorflow/tfjs-node-gpu loaded but TensorFlow found no usable GPU device');
      }
    },
  },
  {
    name: 'webgpu',
    tfBackend: 'webgpu',
    hint:
      'pnpm install (npm webgpu, Dawn for Node, and @tensorflow/tfjs-backend-webgpu) and a Vulkan driver: a GPU\'s, or on a machine ' +
      'without one SwiftShader\'s (Debian chromium and libvulkan1, VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json)',
    load: async (auto) => {
      const noDriver = vulkanDriverProblem();
      if (auto && noDriver) throw new Error(noDriver);
      const adapter = await installWebGpu();
      // auto takes WebGPU only on a GPU: a software adapter is far slower than wasm on the same CPU
      if (auto && adapter.software) throw new Error(`only a software adapter: ${describeAdapter(adapter)}`);
      await import('@tensorflow/tfjs-backend-webgpu');
      // Small ops would otherwise run on the CPU with their data there, moving values between host
      // and GPU behind the engine's back (uncounted, and a synchronous read's way in).
      tf.env().set('WEBGPU_CPU_FORWARD', false);
      return adapter;
    },
  },
  {
    name: 'tensorflow',
    tfBackend: 'tensorflow',
    hint:
      'pnpm add @tensorflow/tfjs-node (downloads libtensorflow 2.9.1 CPU at install time from storage.googleapis.com; ' +
      'if that host is unreachable the install succeeds but the native addon is missing)',
    load: () => importNative('@tensorflow/tfjs-node'),
  },
  {
    name: 'wasm',
    tfBackend: 'wasm',
    hint: 'pnpm add @tensorflow/tfjs-backend-wasm@4.22.0',
    load: async () => {
      await import('@tensorflow/tfjs-backend-wasm');
    },
  },
  {
    name: 'cpu',
    tfBackend: 'cpu',
    hint: 'pnpm add @tensorflow/tfjs-backend-cpu@4.22.0',
    load: async () => {
      await import('@tensorflow/tfjs-backend-cpu');
    },
  },
];

/**
 * Where a tfjs-node(-gpu) package expects its native addon, or why it is unusable. Checked before
 * importing: a package whose install step could not fetch libtensorflow still imports far enough
 * to register its kernels (noisily, twice when both packages are tried) before it throws.
 */
export function nativeAddonProblem(pkg: string): string | null {
  const require = createRequire(import.meta.url);
  let pkgJson: string;
  try {
    pkgJson = require.resolve(`${pkg}/package.json`);
  } catch {
    return `${pkg} is not installed`;
  }
  const meta = JSON.parse(readFileSync(pkgJson, 'utf8')) as {
    binary?: { module_name?: string; module_path?: string; napi_versions?: number[] };
  };
  // node-pre-gyp's rule: the highest N-API version the package ships that this Node supports.
  const nodeNapi = Number(process.versions.napi ?? 0);
  const napi = Math.max(0, ...(meta.binary?.napi_versions ?? [nodeNapi]).filter((v) => v <= nodeNapi));
  const modulePath = (meta.binary?.module_path ?? './lib/napi-v{napi_build_version}').replace('{napi_build_version}', String(napi));
  const addon = join(dirname(pkgJson), modulePath, `${meta.binary?.module_name ?? 'tfjs_binding'}.node`);
  if (!existsSync(addon)) {
    return `${pkg} is installed but its native addon is missing (${addon}): its install step downloads libtensorflow and did not complete`;
  }
  return null;
}

/** Imports a native TF.js package by name and checks it registered the 'tensorflow' backend. */
async function importNative(pkg: string): Promise<void> {
  const problem = nativeAddonProblem(pkg);
  if (problem !== null) throw new Error(problem);
  // A variable specifier keeps bundlers and tsc from resolving the optional package statically.
  const specifier: string = pkg;
  await import(specifier);
  if (tf.findBackendFactory('tensorflow') === null && tf.findBackend('tensorflow') === null) {
    throw new Error(`${pkg} loaded but did not register the 'tensorflow' backend with this @tensorflow/tfjs-core`);
  }
}

function shortReason(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0].trim().slice(0, 300);
}

/** Loads `c` and makes it the active TF.js backend; throws an Error with the reason if it cannot. */
async function activate(c: Candidate, auto: boolean): Promise<BackendInfo> {
  const adapter = await c.load(auto);
  const ok = await tf.setBackend(c.tfBackend);
  if (!ok) throw new Error(`tf.setBackend('${c.tfBackend}') failed to initialise`);
  await tf.ready();
  const info: BackendInfo = { name: c.name, tfBackend: tf.getBackend(), reasons: [] };
  if (c.name === 'wasm') info.simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
  if (adapter) info.adapter = adapter;
  return info;
}

/**
 * Selects and initialises the TF.js backend.
 * - 'auto' tries cuda (tfjs-node-gpu), webgpu (Dawn, only on a hardware adapter), tensorflow
 *   (tfjs-node), wasm, cpu in that order and logs which one it chose and why each better one was
 *   unavailable.
 * - An explicit name must work: otherwise TRAINER_ERR_BACKEND_UNAVAILABLE with the install hint.
 * The model code is the same on every backend; only the kernel set differs (see kernels/select.ts).
 */
export async function initBackend(requested: BackendName, log: (msg: string) => void = () => {}): Promise<BackendInfo> {
  if (requested === 'auto') {
    const reasons: string[] = [];
    for (const c of CANDIDATES) {
      try {
        const info = await activate(c, true);
        info.reasons = reasons;
        const why = reasons.length > 0 ? ` (unavailable: ${reasons.join('; ')})` : '';
        log(`backend: ${describe(info)}${why}`);
        return info;
      } catch (err) {
        reasons.push(`${c.name}: ${shortReason(err)}`);
      }
    }
    throw new TrainerError(ModelErrorCode.BACKEND_UNAVAILABLE, `no TF.js backend could be initialised: ${reasons.join('; ')}`, {
      hint: 'reinstall dependencies with pnpm install (the cpu backend should always load)',
      details: { reasons },
    });
  }
  const candidate = CANDIDATES.find((c) => c.name === requested);
  if (candidate === undefined) {
    throw new TrainerError(ModelErrorCode.UNKNOWN_BACKEND, `unknown backend '${String(requested)}'`, {
      hint: `use one of: auto, ${CANDIDATES.map((c) => c.name).join(', ')}`,
    });
  }
  try {
    const info = await activate(candidate, false);
    log(`backend: ${describe(info)} (requested explicitly)`);
    return info;
  } catch (err) {
    throw new TrainerError(ModelErrorCode.BACKEND_UNAVAILABLE, `backend '${requested}' is unavailable: ${shortReason(err)}`, {
      hint: candidate.hint,
      cause: err,
      details: { backend: requested },
    });
  }
}

function describe(info: BackendInfo): string {
  const simd = info.simd === undefined ? '' : info.simd ? ', SIMD' : ', no SIMD';
  const adapter = info.adapter ? `, adapter ${describeAdapter(info.adapter)}` : '';
  return `${info.name} (tf.getBackend() = '${info.tfBackend}'${simd}${adapter})`;
}
