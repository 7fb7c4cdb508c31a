import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { killAllStarted, startTrainer } from './helpers/processes.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/** Resident set of a live process, in bytes (VmRSS), or undefined once it is gone. */
function rssOf(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const MiB = 2 ** 20;
const GC_EVERY = 100;

/**
 * A soak: 1000 steps on 4 workers, with a checkpoint every 100 (keeping 2) and an evaluation
 * every 100, checking that nothing accumulates: TF.js tensors (exactly the same count every
 * step once training runs) and resident memory (the workers' RSS, reported every step, and the
 * launcher's, sampled here) flat once the V8 heaps have grown to their working size. The workers
 * collect garbage before the RSS of every 100th step (TRAINER_GC_EVERY), so those samples compare
 * what is live, not where each heap stood between collections (10+ MiB of garbage, which hid a
 * leak of a promise reaction per step).
 */
describe('soak', () => {
  it('1000 steps on 4 workers: no growth in TF.js tensors or process RSS', async () => {
    const ws = tinyWorkspace();
    const out = ws.out('soak');
    const run = startTrainer(['launch', '--nodes', '4', ...tinyJobArgs(ws, [
      '--out', out, '--steps', '1000', '--save-every', '100', '--keep-last', '2', '--eval-every', '100', '--eval-batches', '1', '--sample-tokens', '0',
    ])], {
      timeoutMs: 110_000, env: { NODE_OPTIONS: '--expose-gc', TRAINER_GC_EVERY: String(GC_EVERY) }, // RSS of steps 99, 199, ... after a full collection
    });
    const launcher: { step: number; rss: number }[] = [];
    const sampler = setInterval(() => {
      const rss = rssOf(run.child.pid!);
      const steps = [...run.output().matchAll(/step +(\d+)\/1000/g)];
      if (rss !== undefined && steps.length) launcher.push({ step: Number(steps[steps.length - 1][1]), rss });
    }, 250);
    const r = await run.result;
    clearInterval(sampler);
    expect(r.code, run.output().slice(-3000)).toBe(0);

    const records = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>)
      .filter((m) => typeof m.num_tensors === 'number');
    const report: string[] = [];
    for (const rank of [0, 1, 2, 3]) {
      const mine = records.filter((m) => m.rank === rank).sort((a, b) => a.step - b.step);
      expect(mine.map((m) => m.step)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
      // Tensors: one count for every step after the first few (buffers allocated once).
      const counts = new Set(mine.slice(10).map((m) => m.num_tensors));
      expect([...counts], `rank ${rank} tensor counts`).toHaveLength(1);
      // RSS after a full collection: the median of steps 299 and 399 (heaps grown) against 899 and 999.
      const collected = (from: number, to: number, key: string) => mine.slice(from, to).filter((m) => (m.step + 1) % GC_EVERY === 0).map((m) => m[key]);
      const early = median(collected(250, 450, 'rss_bytes'));
      const late = median(collected(850, 1000, 'rss_bytes'));
      // The live JS heap, exactly. It grows ~0.5 MiB in these steps as V8 warms up (compiled code,
      // feedback), then stays within 0.2 MiB over 10,000 steps; a leak of 3 KiB a step fails here.
      const heapEarly = median(collected(250, 450, 'js_heap_bytes'));
      const heapLate = median(collected(850, 1000, 'js_heap_bytes'));
      report.push(`rank ${rank}: ${[...counts][0]} tensors; RSS ${(early / MiB).toFixed(1)} -> ${(late / MiB).toFixed(1)} MiB; JS heap ${(heapEarly / MiB).toFixed(2)} -> ${(heapLate / MiB).toFixed(2)} MiB`);
      expect(late - early, `rank ${rank} RSS growth`).toBeLessThan(4 * MiB);
      expect(heapLate - heapEarly, `rank ${rank} JS heap growth`).toBeLessThan(1.5 * MiB);
    }
    // The launcher's heap grows with its first few hundred steps of records (metrics, the dashboard's run state), then stays.
    const launcherEarly = median(launcher.filter((s) => s.step >= 500 && s.step < 650).map((s) => s.rss));
    const launcherLate = median(launcher.filter((s) => s.step >= 850).map((s) => s.rss));
    expect(launcher.filter((s) => s.step >= 850).length).toBeGreaterThan(0);
    report.push(`launcher: RSS ${(launcherEarly / MiB).toFixed(1)} -> ${(launcherLate / MiB).toFixed(1)} MiB`);
    expect(launcherLate - launcherEarly, 'launcher RSS growth').toBeLessThan(12 * MiB);
    console.log(`soak (1000 steps, 4 workers):\n  ${report.join('\n  ')}`);
  }, 120_000);
});
