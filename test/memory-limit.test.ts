import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { killAllStarted, runTrainer, startTrainer, waitFor, type RunningTrainer } from './helpers/processes.js';
import { tinyWorkspace } from './helpers/tiny-run.js';

/**
 * A model whose training state does not fit one worker's memory, trained by sharding it: each
 * worker runs in a memory cgroup of 600 MiB (a hard limit: the kernel kills a process group that
 * needs more). The model (22.9M parameters, 12 blocks of width 384) needs 16 bytes per parameter
 * of state on one rank without ZeRO: the planner predicts 709 MiB per worker for ZeRO 0 on 2
 * workers and refuses it before anything starts; ZeRO 3 (predicted 402 MiB) trains within the
 * limit; and ZeRO 0 started anyway, without the planner's check, is killed by the limit.
 */
const CGROUP = '/sys/fs/cgroup/memory';
const LIMIT = 600 * 2 ** 20;
const MODEL = ['--model', 'gpt-nano', '--layers', '12', '--d-model', '384', '--heads', '6', '--vocab-size', '4096', '--context-length', '64',
  '--data', 'synthetic', '--backend', 'wasm', '--steps', '3', '--global-batch', '4', '--eval-batches', '0', '--sample-tokens', '0'];
const TOKEN = 'memory-limit-test-token-0123456789';

const groups: string[] = [];

afterEach(async () => {
  killAllStarted();
  for (const g of groups.splice(0)) {
    for (let i = 0; i < 50 && existsSync(g); i++) {
      try {
        rmdirSync(g);
      } catch {
        await new Promise((r) => setTimeout(r, 100)); // its processes are still exiting
      }
    }
  }
});

/** Whether this machine lets the test make memory cgroups (root, cgroup v1's memory controller). */
function cgroupsAvailable(): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  if (!existsSync(join(CGROUP, 'memory.limit_in_bytes'))) return `no cgroup v1 memory controller at ${CGROUP}`;
  return null;
}

/** A memory cgroup limited to `bytes` (and as much swap: none beyond it). */
function memoryGroup(name: string, bytes: number): string {
  const dir = join(CGROUP, `trainer-test-${process.pid}-${name}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'memory.limit_in_bytes'), String(bytes));
  if (existsSync(join(dir, 'memory.memsw.limit_in_bytes'))) writeFileSync(join(dir, 'memory.memsw.limit_in_bytes'), String(bytes));
  groups.push(dir);
  return dir;
}

/** `trainer coordinator` and two workers, each worker in its own limited cgroup. */
async function limitedRun(ws: ReturnType<typeof tinyWorkspace>, name: string, extra: string[]): Promise<{ coordinator: RunningTrainer; workers: RunningTrainer[]; cgroups: string[] }> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const env = { TRAINER_TOKEN: TOKEN };
  const coordinator = startTrainer(['coordinator', '--nodes', '2', '--port', String(port), '--host', '127.0.0.1', ...MODEL, '--cache-dir', ws.cache, '--out', ws.out(name), ...extra], { env, timeoutMs: 240_000 });
  await waitFor(() => /coordinator listening/.test(coordinator.output()) || coordinator.child.exitCode !== null, 60_000, 'the coordinator to listen');
  const cgroups = [0, 1].map((rank) => memoryGroup(`${name}-${rank}`, LIMIT));
  const workers = [0, 1].map((rank) => {
    const w = startTrainer(['worker', '--coordinator', `127.0.0.1:${port}`], { env, timeoutMs: 240_000 });
    writeFileSync(join(cgroups[rank], 'cgroup.procs'), String(w.child.pid)); // charged from its first steps on
    return w;
  });
  return { coordinator, workers, cgroups };
}

const usage = (cg: string, file: string) => Number(readFileSync(join(cg, file), 'utf8'));
/** Processes of the group the kernel's OOM killer has killed (memory.oom_control's oom_kill). */
const oomKills = (cg: string) => Number(/oom_kill (\d+)/.exec(readFileSync(join(cg, 'memory.oom_control'), 'utf8'))?.[1] ?? NaN);

describe('a model larger than one worker\'s memory (multi-process, memory cgroups)', () => {
  it('ZeRO 0 is refused by the planner (and killed by the limit when forced); ZeRO 3 trains within it', async (ctx) => {
    const why = cgroupsAvailable();
    if (why) ctx.skip(`memory cgroups are unavailable here: ${why}`);
    const ws = tinyWorkspace();

    // The planner refuses ZeRO 0 before any worker starts, naming what fits.
    const refused = await runTrainer(['launch', '--nodes', '2', ...MODEL, '--cache-dir', ws.cache, '--out', ws.out('z0-refused'), '--zero', '0', '--max-memory', '600MiB']);
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toMatch(/TRAINER_ERR_MEMORY_PLAN: the run does not fit: ZeRO 0, tp 1, pp 1 on 2 workers needs [\d.]+ MiB per worker/);
    expect(refused.stderr).toMatch(/layouts of 2 workers that fit: .*--zero 3/);
    expect(existsSync(join(ws.out('z0-refused'), 'metrics.jsonl'))).toBe(false);

    // ZeRO 3 under the same hard limit per worker: trains.
    const z3 = await limitedRun(ws, 'z3', ['--zero', '3', '--max-memory', '600MiB']);
    const [c, ...w] = await Promise.all([z3.coordinator.result, ...z3.workers.map((x) => x.result)]);
    expect(c.code, z3.coordinator.output()).toBe(0);
    w.forEach((r, rank) => expect(r.code, z3.workers[rank].output()).toBe(0));
    const summary = JSON.parse(readFileSync(join(ws.out('z3'), 'summary.json'), 'utf8')) as { ok: boolean; losses: number[] };
    expect(summary.ok).toBe(true);
    expect(summary.losses.every(Number.isFinite)).toBe(true);
    for (const cg of z3.cgroups) {
      expect(usage(cg, 'memory.max_usage_in_bytes')).toBeLessThanOrEqual(LIMIT);
      expect(oomKills(cg), `${cg}: the OOM killer struck`).toBe(0);
    }

    // ZeRO 0 forced into the same limit (no --max-memory, so no planner check): the kernel kills it.
    const z0 = await limitedRun(ws, 'z0', ['--zero', '0', '--heartbeat-timeout', '10']);
    const [c0] = await Promise.all([z0.coordinator.result, ...z0.workers.map((x) => x.result)]);
    expect(c0.code, z0.coordinator.output()).not.toBe(0);
    expect(z0.workers.some((x) => x.child.signalCode === 'SIGKILL'), z0.workers.map((x) => `${x.child.exitCode}/${x.child.signalCode}`).join(' ')).toBe(true);
    expect(z0.cgroups.map(oomKills).some((n) => n > 0)).toBe(true);
  }, 600_000);
});
