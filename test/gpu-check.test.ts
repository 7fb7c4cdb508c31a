import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * scripts/gpu-check.sh: the offline bundle builds under 60 MiB, and a GPU host's check runs from
 * it alone (its Node, its node_modules, its Vulkan loader where the host has none): here on
 * SwiftShader, with a tiny model instead of gpt-mini and gpt2-124m (a CPU emulating a GPU), the
 * same commands a GPU host runs.
 */
const root = resolve(import.meta.dirname, '..');
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';

describe.runIf(existsSync(SWIFTSHADER))('gpu-check.sh (bundle, then the check on SwiftShader)', () => {
  it('builds a self-contained bundle under 60 MiB that runs the check and says what it could not do', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpu-check-'));
    try {
      const bundle = join(dir, 'bundle.tar.xz');
      // -1: quick here; the default (-6) makes it smaller still (35 MiB)
      execFileSync(join(root, 'scripts', 'gpu-check.sh'), ['--bundle', bundle], { env: { ...process.env, XZ_OPT: '-T0 -1' }, stdio: 'pipe' });
      const mib = statSync(bundle).size / 2 ** 20;
      expect(mib).toBeLessThan(60);
      const r = spawnSync('bash', [join(root, 'scripts', 'gpu-check.sh'), bundle], {
        cwd: dir, encoding: 'utf8', timeout: 240_000,
        env: { PATH: '/usr/bin:/bin', HOME: dir, VK_ICD_FILENAMES: SWIFTSHADER, GPU_CHECK_MODELS: 'gpt-micro', GPU_CHECK_WORKERS: '1', GPU_CHECK_STEPS: '2' },
      });
      expect(r.status, r.stderr).toBe(0);
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
      const [run, profile, done] = lines;
      expect(run).toMatchObject({ model: 'gpt-micro', workers: 1, backend: 'webgpu', kernels: 'tf', adapter: { software: true }, within_bound: true });
      expect(run.tokens_per_s).toBeGreaterThan(0);
      expect(run.step_split_ms.compute + run.step_split_ms.host_device + run.step_split_ms.comm).toBeCloseTo(run.step_ms, 0);
      expect(run.bytes_per_step.host_to_device).toBeGreaterThan(0); // token ids at least (1 worker: no collective)
      expect(run.bytes_per_step.comm).toBe(0);
      // Where a step's GPU time goes (timestamp queries; SwiftShader has them too), per layer phase.
      expect(profile).toMatchObject({ kernel_profile: 'gpt-micro', timer: 'gpu-timestamps', adapter: { software: true } });
      expect(profile.kernels_per_step).toBeGreaterThan(100);
      expect(profile.gpu_ms_per_step).toBeGreaterThan(0);
      expect(profile.phases.reduce((a: number, p: { kernels: number }) => a + p.kernels, 0)).toBe(profile.kernels_per_step);
      for (const key of ['matmul_layers', 'attention_core_backward', 'layernorm_backward']) expect(profile.share[key], key).toBeGreaterThan(0);
      expect(done).toMatchObject({ check: 'done', runs: 1, kernel_profile: true, failed: [] });
      expect(done.not_done.join('\n')).toMatch(/no GPU: the adapter is a software one/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
