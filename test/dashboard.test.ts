import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
// playwright-core is a dependency of the dashboard package, not of the workspace root.
import { CHROMIUM_PATH, openTestBrowser, type TestBrowser } from '../packages/dashboard/dist/testing/browser.js';
import { killAllStarted, logLines, pidsWithMarker, startTrainer, waitFor } from './helpers/processes.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
const TOKEN = 'dashboard-test-token-0123456789abcdef';

let browser: TestBrowser | undefined;
afterEach(async () => {
  await browser?.close();
  browser = undefined;
  killAllStarted();
});

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

describe('live dashboard in a real browser (Debian chromium, headless)', () => {
  it('shows a run live: curves grow, memory, layout and /metrics; the token appears nowhere', async () => {
    expect(existsSync(CHROMIUM_PATH), `${CHROMIUM_PATH} is missing: scripts/setup.sh installs Debian's chromium (as root)`).toBe(true);
    const ws = tinyWorkspace();
    const out = ws.out('run');
    // A run of a few seconds: 2 workers, ZeRO-2, small steps.
    const run = startTrainer(['launch', '--nodes', '2', '--zero', '2', ...tinyJobArgs(ws, ['--out', out, '--steps', '600', '--layers', '2', '--d-model', '64', '--eval-every', '100', '--global-batch', '8', '--save-every', '50', '--keep-last', '2'])], {
      env: { TRAINER_TOKEN: TOKEN }, timeoutMs: 150_000,
    });
    let url = '';
    await waitFor(() => {
      const line = logLines(run.output()).map((l) => String(l.msg ?? '')).find((m) => m.startsWith('dashboard: '));
      url = line ? /http:\/\/\S+/.exec(line)![0] : '';
      return Boolean(url);
    }, 60_000, 'the dashboard link');
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?key=[A-Za-z0-9_-]{43}$/);
    const base = url.slice(0, url.indexOf('/?'));
    const key = url.slice(url.indexOf('key=') + 4);

    browser = await openTestBrowser();
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const requested: string[] = [];
    page.on('request', (req) => requested.push(req.url()));
    await page.goto(url);
    expect(page.url()).toBe(`${base}/`); // the key left the address bar for a cookie
    const lossPoints = () => page.evaluate(() => Number(document.getElementById('chart-loss')?.dataset.points ?? 0));
    await page.waitForFunction(() => Number(document.body.dataset.draws ?? 0) >= 1 && Number(document.getElementById('chart-loss')?.dataset.points ?? 0) > 0, undefined, { timeout: 60_000 });
    const first = await lossPoints();
    const latencies: number[] = [];
    for (let i = 0; i < 40 && !run.child.exitCode; i++) {
      await page.waitForTimeout(150);
      const l = await page.evaluate(() => Number(document.body.dataset.latencyMs));
      if (Number.isFinite(l)) latencies.push(l);
      if ((await page.evaluate(() => document.getElementById('chart-ppl')?.dataset.points)) !== '0' && (await lossPoints()) > first + 50) break;
    }
    // No process of the run carries the token on its command line (ps shows those).
    const pids = pidsWithMarker(run.marker);
    expect(pids.length).toBeGreaterThanOrEqual(3);
    for (const pid of pids) {
      try {
        expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).not.toContain(TOKEN);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; // it exited meanwhile
      }
    }
    const later = await lossPoints();
    expect(later, 'the loss curve grew while the page was open').toBeGreaterThan(first);
    // Per-rank memory and the layout (ZeRO-2 shards over 2 data-parallel ranks).
    expect(await page.locator('#ranks tbody tr').count()).toBe(2);
    expect(await page.locator('#layout tbody tr').count()).toBe(2);
    expect(await page.locator('#layout').innerText()).toContain('ZeRO-2: parameters (full), gradients and optimizer state shard 2/2');
    expect(await page.locator('#chart-memory rect').count()).toBeGreaterThan(3);
    // The bus bandwidth the workers measured inside their collectives (ZeRO-2: reduce-scatters and all-gathers).
    expect(await page.evaluate(() => Number(document.getElementById('chart-busbw')?.dataset.points ?? 0))).toBeGreaterThan(0);
    expect(await page.locator('#ranks tbody tr').first().innerText()).toMatch(/\d GB\/s/);
    // Checkpoints committed by the coordinator show up as events.
    await page.waitForFunction(() => document.querySelectorAll('#events tr.event-checkpoint').length >= 1, undefined, { timeout: 60_000 });
    expect(await page.locator('#events tr.event-checkpoint').first().innerText()).toMatch(/checkpoint .* committed \(/);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });

    // Prometheus: the key as a Bearer token; nothing without it.
    const metrics = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${key}` } });
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    expect(text).toMatch(/^trainer_loss \d/m);
    expect(text).toMatch(/^trainer_rank_optimizer_bytes\{rank="1",host="[^"]*"\} \d+/m);
    expect(text).toMatch(/^trainer_rank_collective_busbw_gbps\{rank="1",host="[^"]*"\} \d/m);
    expect(text).toMatch(/^trainer_rank_collective_seconds_total\{rank="0",host="[^"]*"\} \d/m);
    expect((await fetch(`${base}/metrics`)).status).toBe(401);

    // The end of the run reaches the page.
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'finished', undefined, { timeout: 120_000 });
    const r = await run.result;
    expect(r.code, run.output()).toBe(0);
    expect(errors).toEqual([]);
    // Offline: the page fetched nothing but the coordinator's own files.
    expect(requested.filter((u) => !u.startsWith(`${base}/`))).toEqual([]);
    expect(requested).toContain(`${base}/assets/app.js`);
    // The cluster token is in no log line, URL or command line; the key is not the token.
    expect(run.output()).not.toContain(TOKEN);
    expect(key).not.toContain(TOKEN);
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8')).not.toContain(TOKEN);
    expect(pidsWithMarker(run.marker)).toEqual([]);
    if (latencies.length) {
      process.stdout.write(`dashboard update latency (coordinator receives a record -> page drawn): median ${median(latencies)} ms, max ${Math.max(...latencies)} ms over ${latencies.length} samples; screenshot test-artifacts/dashboard.png\n`);
    }
  }, 180_000);

  it('serves on --dashboard-port when asked, and not at all with --no-dashboard', async () => {
    const ws = tinyWorkspace();
    const own = startTrainer(['launch', '--nodes', '1', '--dashboard-port', '0', ...tinyJobArgs(ws, ['--out', ws.out('a'), '--steps', '1500'])], { env: { TRAINER_TOKEN: TOKEN } });
    let url = '';
    let coordinatorPort = 0;
    await waitFor(() => {
      const lines = logLines(own.output());
      url = /http:\/\/\S+/.exec(lines.map((l) => String(l.msg ?? '')).find((m) => m.startsWith('dashboard: ')) ?? '')?.[0] ?? '';
      coordinatorPort = Number(lines.find((l) => l.msg === 'coordinator listening')?.port ?? 0);
      return Boolean(url && coordinatorPort);
    }, 60_000, 'the dashboard link');
    const port = Number(/:(\d+)\//.exec(url)![1]);
    expect(port).not.toBe(coordinatorPort);
    const key = url.slice(url.indexOf('key=') + 4);
    const m = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${key}` } });
    expect(m.status).toBe(200);
    expect(await m.text()).toMatch(/^trainer_world_size 1$/m);
    // the control port itself stays a WebSocket endpoint
    expect((await fetch(`http://127.0.0.1:${coordinatorPort}/metrics`)).status).toBe(426);
    expect((await own.result).code).toBe(0);

    const none = startTrainer(['launch', '--nodes', '1', '--no-dashboard', ...tinyJobArgs(ws, ['--out', ws.out('b')])], { env: { TRAINER_TOKEN: TOKEN } });
    const r = await none.result;
    expect(r.code, none.output()).toBe(0);
    expect(logLines(none.output()).some((l) => String(l.msg ?? '').startsWith('dashboard: '))).toBe(false);
  }, 120_000);
});
