import type { EventEmitter } from 'node:events';
import { Dashboard, type RankPlacement, type RunEvent, type RunInfo } from '@trainer/dashboard';
import { coordinatesOf } from '@trainer/engine';
import type { MetricsRecord } from './control-protocol.js';
import type { JobOutcome } from './coordinator.js';
import type { JobSpec } from './job-spec.js';
import type { Logger } from './logging.js';

/**
 * The coordinator's live dashboard (packages/dashboard), fed from the coordinator's events:
 *   'assigned'   -> the parallel layout (rank -> host, device, mesh coordinates, what it holds)
 *   'metrics'    -> every rank's per-step record (curves, memory, traffic)
 *   'checkpoint' -> checkpoint history (committed or failed)
 *   'event'      -> anything else worth a line ({ kind, step?, title, detail? }): restarts and their cause
 * and the outcome (finished, or failed with the root cause).
 */
export interface DashboardSettings {
  /** Serve on this port instead of the coordinator's (0: any free port). */
  port?: number;
  /** Address for a separate port (default: the coordinator's). */
  host?: string;
}

interface AssignedWorker { rank: number; host: string; pid: number; device: string }

/** The mesh axes of a job; pipeline stages when the job has them. */
export function jobAxes(job: JobSpec, world: number): { dp: number; tp: number; pp: number } {
  const pp = 'pp' in job && typeof job.pp === 'number' ? job.pp : 1;
  return { dp: world / (job.tp * pp), tp: job.tp, pp };
}

/** What each rank holds, in words, from the job's layout (ZeRO over dp, tensor and pipeline splits). */
export function rankPlacements(job: JobSpec, world: number, workers: readonly AssignedWorker[]): RankPlacement[] {
  const axes = jobAxes(job, world);
  return workers.map((w) => {
    const c = coordinatesOf(w.rank, axes);
    const holds: string[] = [];
    if (axes.pp > 1) holds.push(`pipeline stage ${c.pp + 1}/${axes.pp}: its share of the blocks`);
    if (axes.tp > 1) holds.push(`tensor-parallel shard ${c.tp + 1}/${axes.tp}: its heads and MLP columns/rows of every block, its slice of the vocabulary`);
    const shard = `shard ${c.dp + 1}/${axes.dp}`;
    const zero = [
      'full replica: parameters, gradients, optimizer state',
      `ZeRO-1: parameters and gradients (full), optimizer state ${shard}`,
      `ZeRO-2: parameters (full), gradients and optimizer state ${shard}`,
      `ZeRO-3: parameters, gradients and optimizer state ${shard}`,
    ][job.zero];
    holds.push(axes.dp > 1 || job.zero === 0 ? zero : `${zero} (one data-parallel rank: the shard is everything)`);
    return { rank: w.rank, host: w.host, pid: w.pid, device: w.device, coords: { dp: c.dp, tp: c.tp, pp: c.pp }, holds };
  });
}

export function runInfo(job: JobSpec, world: number): RunInfo {
  const axes = jobAxes(job, world);
  const kind = 'init' in job && job.init ? 'finetune' : 'train';
  return { kind, model: job.modelName, world, steps: job.steps, globalBatch: job.globalBatch, seqLen: job.seqLen, ...axes, zero: job.zero, startedAt: Date.now() };
}

/** A checkpoint event of the commit protocol (launcher/src/checkpointing) as a dashboard line. */
export function checkpointLine(e: Record<string, unknown>): RunEvent {
  const step = typeof e.step === 'number' ? e.step : undefined;
  if (e.kind === 'committed') {
    const mib = typeof e.bytes === 'number' ? ` (${(e.bytes / 2 ** 20).toFixed(1)} MiB` + (typeof e.files === 'number' ? ` in ${e.files} files)` : ')') : '';
    return { time: Date.now(), kind: 'checkpoint', step, title: `checkpoint ${String(e.name ?? step)} committed${mib}`, detail: typeof e.path === 'string' ? e.path : undefined };
  }
  return { time: Date.now(), kind: 'checkpoint-failed', step, title: `checkpoint at step ${step ?? '?'} failed${typeof e.rank === 'number' ? ` on rank ${e.rank}` : ''}`, detail: `${String(e.code ?? '')}: ${String(e.message ?? '')}` };
}

/** Subscribes the dashboard to a coordinator; returns the link to print. */
export function feedDashboard(dashboard: Dashboard, coordinator: EventEmitter & { done: Promise<JobOutcome> }, job: JobSpec, world: number): void {
  dashboard.publish({ kind: 'info', info: runInfo(job, world) });
  coordinator.on('assigned', (workers: AssignedWorker[]) => {
    dashboard.publish({ kind: 'layout', layout: { axes: jobAxes(job, world), ranks: rankPlacements(job, world, workers) } });
  });
  coordinator.on('metrics', (rank: number, record: MetricsRecord) => dashboard.publish({ kind: 'metrics', rank, time: Date.now(), record }));
  coordinator.on('checkpoint', (e: Record<string, unknown>) => dashboard.publish({ kind: 'event', event: checkpointLine(e) }));
  coordinator.on('event', (e: { kind: string; step?: number; title: string; detail?: string }) => dashboard.publish({ kind: 'event', event: { time: Date.now(), ...e } }));
  void coordinator.done.then((outcome) => {
    if (outcome.ok) {
      dashboard.publish({ kind: 'event', event: { time: Date.now(), kind: 'finished', title: 'the run finished' } });
      dashboard.publish({ kind: 'status', status: { state: 'finished' } });
      return;
    }
    const f = outcome.failure;
    const who = f.rank === undefined ? f.host : `rank ${f.rank} (host ${f.host}, pid ${f.pid})`;
    const cause = `${f.error.code}: ${f.error.message}`;
    dashboard.publish({ kind: 'event', event: { time: Date.now(), kind: 'failure', step: f.lastStep, title: `${who} failed`, detail: cause } });
    dashboard.publish({ kind: 'status', status: { state: 'failed', message: `${who} failed: ${cause}` } });
  });
}

/**
 * Creates the dashboard for a coordinator about to start: returns it with the request handler to
 * mount on the control port (or none when it gets a port of its own, opened by `openDashboard`).
 */
export function createDashboard(token: string, settings: DashboardSettings | false | undefined): { dashboard: Dashboard; sharedPortHandler: Dashboard['handle'] | undefined } | undefined {
  if (settings === false) return undefined;
  const dashboard = new Dashboard({ token });
  return { dashboard, sharedPortHandler: settings?.port === undefined ? dashboard.handle : undefined };
}

/** Feeds the dashboard, opens its own port if asked, and logs the login link. */
export async function openDashboard(dashboard: Dashboard, settings: DashboardSettings | undefined, coordinator: EventEmitter & { done: Promise<JobOutcome>; address: { host: string; port: number } }, job: JobSpec, world: number, log: Logger): Promise<void> {
  feedDashboard(dashboard, coordinator, job, world);
  const at = settings?.port === undefined ? coordinator.address : await dashboard.listen(settings.host ?? coordinator.address.host, settings.port);
  log.info(`dashboard: ${dashboard.loginUrl(at.host, at.port)} (Prometheus: /metrics with the key as a Bearer token)`);
}
