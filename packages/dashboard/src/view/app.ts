/**
 * The live page's script: receives the run's snapshot and then its patches over Server-Sent
 * Events (/events), applies them to a RunState and redraws at most every MIN_REDRAW_MS. The
 * newest update's delay (patch created in the coordinator -> drawn here) is written to
 * body[data-latency-ms], so a test (or a curious person) can read it.
 */
import { renderPanels } from './panels.js';
import { RunState, type RunPatch, type RunStateJSON } from './run-state.js';

const MIN_REDRAW_MS = 200;

let state: RunState | undefined;
let timer: number | undefined;
let lastDraw = 0;
/** Creation time (coordinator clock, ms) of the newest patch not drawn yet. */
let newestPatchTime = 0;

const root = document.getElementById('app')!;
const connection = document.getElementById('connection')!;

function draw(): void {
  timer = undefined;
  if (!state) return;
  lastDraw = Date.now();
  root.innerHTML = renderPanels(state, lastDraw);
  const last = state.latest();
  document.body.dataset.lastStep = String(last ? last.step : -1);
  document.body.dataset.draws = String(Number(document.body.dataset.draws ?? '0') + 1);
  if (newestPatchTime) document.body.dataset.latencyMs = String(lastDraw - newestPatchTime);
}

function scheduleDraw(): void {
  if (timer !== undefined) return;
  const wait = Math.max(0, MIN_REDRAW_MS - (Date.now() - lastDraw));
  timer = window.setTimeout(() => requestAnimationFrame(draw), wait);
}

function connect(): void {
  const source = new EventSource('/events');
  source.addEventListener('snapshot', (e) => {
    state = RunState.fromJSON(JSON.parse((e as MessageEvent<string>).data) as RunStateJSON);
    connection.textContent = 'live';
    connection.className = 'live';
    scheduleDraw();
  });
  source.addEventListener('patch', (e) => {
    if (!state) return;
    const patch = JSON.parse((e as MessageEvent<string>).data) as RunPatch;
    state.apply(patch);
    if (patch.kind === 'metrics') newestPatchTime = patch.time;
    scheduleDraw();
  });
  source.addEventListener('error', () => {
    connection.textContent = 'disconnected (retrying)';
    connection.className = 'down';
  });
}

connect();
