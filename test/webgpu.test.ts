import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { expectSameTrajectory, trainedRun } from './helpers/equivalence.js';
import { tinyRun, type Workspace } from './helpers/checkpoint-run.js';
import { inParallel, killAllStarted } from './helpers/processes.js';
import { tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/**
 * WebGPU workers (Dawn in Node) on SwiftShader, the software Vulkan driver of Debian's chromium:
 * a GPU's rules (every read awaited, state in GPU buffers) on a CPU. The tf kernel set there must
 * follow the wasm backend's trajectory (the same kernels; fp32 on both, summed in other orders),
 * for data, ZeRO-3, tensor and pipeline parallelism on 2 workers, with no synchronous read, the
 * host<->device bound of the device-resident engine, a flat tensor count and flat GPU buffers. SwiftShader is slow
 * (a CPU emulating a GPU): few, small runs.
 */
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
const ENV = { VK_ICD_FILENAMES: SWIFTSHADER };
const STEPS = 5;
const JOB = ['--kernels', 'tf', '--layers', '2', '--global-batch', '4', '--steps', String(STEPS), '--eval-every', '0', '--eval-batches', '1', '--sample-tokens', '0'];
// fp32 on both backends; the GPU's reductions and fused multiply-adds differ from wasm's in the last bits
const TOLERANCE = { lossRtol: 1e-5, paramAtol: 2e-5 };
const SEQ = 32;

const run = (ws: Workspace, name: string, nodes: number, backend: 'webgpu' | 'wasm', extra: string[]) =>
  trainedRun(ws, name, nodes, [...JOB, '--backend', backend, ...extra], backend === 'webgpu' ? ENV : {});

describe.runIf(existsSync(SWIFTSHADER))('WebGPU workers on SwiftShader (multi-process)', () => {
  it('DP, ZeRO-3, TP and PP on 2 workers follow the wasm backend; no synchronous read; bytes within the bound', async () => {
    const ws = tinyWorkspace();
    const layouts: [string, string[]][] = [['DP', []], ['ZeRO 3', ['--zero', '3']], ['tp 2', ['--tp', '2']], ['pp 2', ['--pp', '2', '--micro-batches', '2']]];
    // The runs are independent (each its own folder): the wasm reference and the layouts run 2 at a time.
    const [ref, ...runs] = await inParallel([
      () => run(ws, 'wasm', 1, 'wasm', []),
      ...layouts.map(([label, extra]) => () => run(ws, `webgpu-${label.replace(/ /g, '-')}`, 2, 'webgpu', extra)),
    ], 2);
    for (const [i, [label, extra]] of layouts.entries()) {
      const r = runs[i]!;
      expect(r.output, label).toMatch(/webgpu .*swiftshader.*a software adapter/);
      expectSameTrajectory(r, ref!, `webgpu ${label}`, TOLERANCE);
      const dp = extra.includes('--tp') || extra.includes('--pp') ? 1 : 2;
      const tokenIds = 2 * 4 * (4 / dp) * SEQ;
      for (const rank of [0, 1]) {
        const rows = r.metrics.filter((m) => m.rank === rank && typeof m.host_to_device_bytes === 'number') as Record<string, number>[];
        expect(rows.length, `${label} rank ${rank}`).toBe(STEPS);
        expect(rows.map((x) => x.sync_reads), `${label} rank ${rank}: synchronous reads per step`).toEqual(rows.map(() => 0));
        const later = rows.filter((x) => x.step >= 1);
        const crossed = later.reduce((s, m) => s + m.host_to_device_bytes + m.device_to_host_bytes, 0) / later.length;
        const carried = later.reduce((s, m) => s + m.comm_bytes, 0) / later.length;
        expect(crossed, `${label} rank ${rank}`).toBeLessThanOrEqual(carried + tokenIds + 1024);
        const counts = later.filter((x) => x.step >= 2).map((x) => x.num_tensors);
        expect(Math.max(...counts) - Math.min(...counts), `${label} rank ${rank}: tensors ${counts.join(',')}`).toBe(0);
        // GPU buffers: the pool allocated nothing more after the first steps (a pipeline's step 1
        // may still add a scalar's buffer), and the bytes in
        // live tensors' buffers stayed put (within the few scalars whose values were read back:
        // the backend frees the GPU copy of a tensor it has downloaded). The last step also
        // evaluates, which downloads more: training steps only.
        const gpu = (key: string) => later.filter((x) => x.step >= 2 && x.step < STEPS - 1).map((x) => x[key]);
        const allocated = gpu('gpu_allocated_bytes');
        const used = gpu('gpu_bytes');
        expect(allocated.length, 'steps 2 and 3 compared').toBe(2);
        expect(used.every((b) => b > 0), `${label} rank ${rank}: gpu_bytes reported`).toBe(true);
        expect(Math.max(...allocated) - Math.min(...allocated), `${label} rank ${rank}: GPU pool ${allocated.join(',')}`).toBe(0);
        expect(Math.max(...used) - Math.min(...used), `${label} rank ${rank}: GPU bytes in use ${used.join(',')}`).toBeLessThanOrEqual(1024);
      }
    }
  }, 600_000);

  it('a worker whose GPU device is lost is named (TRAINER_ERR_DEVICE_LOST) and the group restarts from the latest checkpoint', async () => {
    const ws = tinyWorkspace();
    const r = await tinyRun(ws, 'lost', 2, [...JOB, '--backend', 'webgpu', '--steps', '4', '--save-every', '2', '--max-restarts', '1'], {
      ...ENV, TRAINER_FAULT: 'rank=1,step=3,kind=device-lost',
    });
    expect(r.code, r.output).toBe(0);
    const s = r.summary as { ok: boolean; restarts: number; rounds: { failure?: { rank: number; code: string }; start_step?: number }[] };
    expect(s).toMatchObject({ ok: true, restarts: 1 });
    expect(s.rounds[0].failure).toMatchObject({ rank: 1, code: 'TRAINER_ERR_DEVICE_LOST' });
    expect(s.rounds[1].start_step).toBe(2);
    expect(r.output).toMatch(/the WebGPU device was lost \(destroyed/);
  }, 300_000);
});
