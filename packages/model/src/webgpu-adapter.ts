/**
 * WebGPU in Node: npm `webgpu` (Google's Dawn, prebuilt) provides `navigator.gpu`, which
 * @tensorflow/tfjs-backend-webgpu asks for an adapter. Dawn drives Vulkan (Linux), Metal or D3D12:
 * any vendor's GPU with no CUDA toolkit. On a machine without a GPU, a software Vulkan driver
 * stands in (SwiftShader, which Debian's chromium ships: VK_ICD_FILENAMES=
 * /usr/lib/chromium/vk_swiftshader_icd.json): slow, but with a GPU's rules (no synchronous reads).
 * In a browser, `navigator.gpu` is already there.
 */

import { readdirSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { TrainerError } from '@trainer/errors';
import { ModelErrorCode } from './codes.js';

/** What the adapter says it is. */
export interface WebGpuAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation (SwiftShader, lavapipe, llvmpipe, a fallback adapter): correct, slow. */
  software: boolean;
}

interface AdapterLike {
  info?: Partial<Record<'vendor' | 'architecture' | 'device' | 'description', string>> & { isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
  requestAdapterInfo?: () => Promise<Partial<Record<'vendor' | 'architecture' | 'device' | 'description', string>>>;
}

interface GpuLike {
  requestAdapter(options?: { powerPreference?: string }): Promise<AdapterLike | null>;
}

let installed: Promise<WebGpuAdapterInfo> | null = null;

/** Where the Vulkan loader looks for drivers on Linux (and the variables that override it). */
const ICD_DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d', '/usr/local/etc/vulkan/icd.d'];

/**
 * Linux: why Dawn cannot find a Vulkan driver, without loading it (Dawn would print warnings of
 * its own), or null when one may be there. Other systems use Metal or D3D12: null.
 */
export function vulkanDriverProblem(): string | null {
  if (process.platform !== 'linux') return null;
  if (process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES || process.env.VK_ADD_DRIVER_FILES) return null;
  const drivers = ICD_DIRS.flatMap((d) => {
    try {
      return readdirSync(d).filter((f) => f.endsWith('.json'));
    } catch {
      return [];
    }
  });
  return drivers.length ? null : `no Vulkan driver is installed (no ICD file in ${ICD_DIRS.join(', ')}; VK_ICD_FILENAMES unset)`;
}

/**
 * Makes `navigator.gpu` available (Dawn through npm `webgpu` outside a browser) and finds an
 * adapter; throws, saying why, when there is none. Idempotent.
 */
export function installWebGpu(): Promise<WebGpuAdapterInfo> {
  installed ??= install();
  installed.catch(() => (installed = null)); // a failed attempt may be retried (another driver, env)
  return installed;
}

async function install(): Promise<WebGpuAdapterInfo> {
  const g = globalThis as { navigator?: { gpu?: GpuLike } };
  if (!g.navigator?.gpu) {
    let dawn: { create(options: string[]): GpuLike; globals: Record<string, unknown> };
    try {
      const specifier: string = 'webgpu'; // optional: kept out of static resolution
      dawn = (await import(specifier)) as typeof dawn;
    } catch (err) {
      throw new Error(`npm webgpu (Dawn for Node) is not installed or does not load: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
    }
    Object.assign(globalThis, dawn.globals); // GPUBufferUsage, GPUMapMode, ... as a browser has them
    const gpu = dawn.create([]);
    if (g.navigator) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
    else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  }
  const adapter = await g.navigator!.gpu!.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new Error(
      'WebGPU found no adapter (Dawn needs a Vulkan driver on Linux: a GPU\'s, or SwiftShader\'s from Debian\'s chromium with ' +
        'VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json and the libvulkan1 package)',
    );
  }
  const raw = adapter.info ?? (await adapter.requestAdapterInfo?.()) ?? {};
  const info = {
    vendor: raw.vendor ?? '', architecture: raw.architecture ?? '', device: raw.device ?? '', description: raw.description ?? '',
  };
  const fallback = adapter.isFallbackAdapter === true || adapter.info?.isFallbackAdapter === true;
  const software = fallback || /swiftshader|lavapipe|llvmpipe|software|cpu/i.test(`${info.vendor} ${info.architecture} ${info.device} ${info.description}`);
  return { ...info, software };
}

/** One line for logs: "nvidia ampere (NVIDIA A100)", "google swiftshader (software)". */
export function describeAdapter(a: WebGpuAdapterInfo): string {
  const name = [a.vendor, a.architecture].filter(Boolean).join(' ') || 'unknown adapter';
  const detail = a.description || a.device;
  return `${name}${detail ? ` (${detail})` : ''}${a.software ? ', a software adapter: correct but slow, not a GPU' : ''}`;
}

interface LostInfo {
  reason?: string;
  message?: string;
}

/** The active WebGPU backend's device (tfjs-backend-webgpu keeps it as `device`), or null on another backend. */
function activeDevice(): LostDevice | null {
  if (tf.getBackend() !== 'webgpu') return null;
  const device = (tf.backend() as unknown as { device?: LostDevice }).device;
  return device ?? null;
}

type LostDevice = { lost: Promise<LostInfo>; destroy(): void };

/** The device being watched, its loss once it happened, and the pending work to fail on it. */
let watched: LostDevice | null = null;
let lossError: TrainerError | null = null;
const failOnLoss = new Set<(err: TrainerError) => void>();

function watch(device: LostDevice): void {
  if (watched === device) return;
  watched = device;
  lossError = null;
  void device.lost.then((info) => {
    if (watched !== device) return;
    lossError = new TrainerError(ModelErrorCode.DEVICE_LOST, `the WebGPU device was lost (${info.reason ?? 'unknown'}${info.message ? `: ${info.message}` : ''})`, {
      hint: 'the GPU was reset or removed, or its driver failed; with --max-restarts the run restarts this worker\'s group from the latest checkpoint',
    });
    for (const fail of failOnLoss) fail(lossError);
    failOnLoss.clear();
  });
}

/**
 * `work`, or a rejection with TRAINER_ERR_DEVICE_LOST as soon as the active WebGPU device is
 * lost (the GPU reset or removed, its driver crashed, or destroyed): work on a lost device may
 * never finish. `work` itself on another backend. Each call's subscription ends with its work
 * (Promise.race against one long-lived promise would keep a reaction per call: a step's worth
 * of memory leaked every step).
 */
export function failOnDeviceLoss<T>(work: Promise<T>): Promise<T> {
  const device = activeDevice();
  if (!device) return work;
  watch(device);
  if (lossError) return Promise.reject(lossError);
  return new Promise<T>((resolve, reject) => {
    failOnLoss.add(reject);
    void work.then(resolve, reject).finally(() => failOnLoss.delete(reject));
  });
}

/** Pending subscriptions (for tests: none once the work they wrap has settled). */
export function deviceLossWaiters(): number {
  return failOnLoss.size;
}

/** Destroys the active WebGPU device, as a GPU reset would lose it (fault injection); false on another backend. */
export function loseDevice(): boolean {
  const device = activeDevice();
  device?.destroy();
  return device !== null;
}
