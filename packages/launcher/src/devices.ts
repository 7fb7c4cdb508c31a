import { execFile } from 'node:child_process';

/**
 * GPUs on this machine, as `nvidia-smi -L` lists them ("GPU 0: NVIDIA A100 ... (UUID: ...)").
 * No nvidia-smi, or one that fails, means no GPU: the CPU path is used.
 */
export interface GpuInfo {
  index: number;
  name: string;
}

export function detectGpus(timeoutMs = 5000): Promise<GpuInfo[]> {
  return new Promise((resolve) => {
    execFile('nvidia-smi', ['-L'], { timeout: timeoutMs }, (err, stdout) => {
      if (err) return resolve([]);
      resolve(parseNvidiaSmiList(stdout));
    });
  });
}

export function parseNvidiaSmiList(text: string): GpuInfo[] {
  const gpus: GpuInfo[] = [];
  for (const line of text.split('\n')) {
    const m = /^GPU (\d+): (.*?)(?: \(UUID: [^)]*\))?\s*$/.exec(line.trim());
    if (m) gpus.push({ index: Number(m[1]), name: m[2] });
  }
  return gpus;
}

/** CUDA_VISIBLE_DEVICES for a worker: its local rank's GPU, or nothing on a CPU-only machine. */
export function cudaVisibleDevices(localRank: number, gpus: readonly GpuInfo[]): string | undefined {
  if (gpus.length === 0) return undefined;
  return String(gpus[localRank % gpus.length].index);
}

/**
 * Each GPU's memory in bytes, as `nvidia-smi --query-gpu=index,memory.total` reports it (MiB);
 * empty without nvidia-smi. The memory planner compares a worker's predicted peak with it.
 */
export function detectGpuMemory(timeoutMs = 5000): Promise<{ index: number; bytes: number }[]> {
  return new Promise((resolve) => {
    execFile('nvidia-smi', ['--query-gpu=index,memory.total', '--format=csv,noheader,nounits'], { timeout: timeoutMs }, (err, stdout) => {
      if (err) return resolve([]);
      resolve(parseGpuMemory(stdout));
    });
  });
}

export function parseGpuMemory(text: string): { index: number; bytes: number }[] {
  const out: { index: number; bytes: number }[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(line);
    if (m) out.push({ index: Number(m[1]), bytes: Number(m[2]) * 2 ** 20 });
  }
  return out;
}
