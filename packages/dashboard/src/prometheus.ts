import type { RunState } from './view/run-state.js';

/**
 * The run's figures in the Prometheus text exposition format (version 0.0.4): gauges for the
 * latest step's loss, throughput and validation; per-rank gauges (label `rank`, `host`) for memory
 * by category, traffic and the bus bandwidth measured inside the collectives; counters for bytes
 * sent, time in collectives, checkpoints and restarts.
 */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

interface Family {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
  samples: Array<{ labels?: Record<string, string | number>; value: number }>;
}

export function renderPrometheus(s: RunState): string {
  const last = s.latest();
  const val = s.latestValidation();
  const hosts = new Map((s.layout?.ranks ?? []).map((r) => [r.rank, r.host]));
  const ranks = s.sortedRanks();
  const perRank = (pick: (r: (typeof ranks)[number]) => number | undefined) =>
    ranks.flatMap((r) => {
      const v = pick(r);
      return v === undefined ? [] : [{ labels: { rank: r.rank, host: hosts.get(r.rank) ?? '' }, value: v }];
    });
  const one = (v: number | undefined) => (v === undefined ? [] : [{ value: v }]);
  const states = ['waiting', 'running', 'finished', 'failed'] as const;
  const families: Family[] = [
    { name: 'trainer_run_state', help: 'Run state: 1 for the current one', type: 'gauge', samples: states.map((st) => ({ labels: { state: st }, value: s.status.state === st ? 1 : 0 })) },
    { name: 'trainer_world_size', help: 'Worker processes in the run', type: 'gauge', samples: one(s.info?.world) },
    { name: 'trainer_steps_total_planned', help: 'Optimizer steps the run will take', type: 'gauge', samples: one(s.info?.steps) },
    { name: 'trainer_step', help: 'Optimizer steps completed', type: 'gauge', samples: one(last ? last.step + 1 : undefined) },
    { name: 'trainer_loss', help: 'Training loss of the latest step (nats/token)', type: 'gauge', samples: one(last?.loss) },
    { name: 'trainer_learning_rate', help: 'Learning rate of the latest step', type: 'gauge', samples: one(last?.lr) },
    { name: 'trainer_grad_norm', help: 'Global gradient norm of the latest step (before clipping)', type: 'gauge', samples: one(last?.gradNorm) },
    { name: 'trainer_tokens_per_second', help: 'Training throughput of the latest step', type: 'gauge', samples: one(last?.tokensPerS) },
    { name: 'trainer_step_seconds', help: 'Wall time of the latest step', type: 'gauge', samples: one(last?.stepMs === undefined ? undefined : last.stepMs / 1000) },
    { name: 'trainer_val_loss', help: 'Latest validation loss (nats/token)', type: 'gauge', samples: one(val?.valLoss) },
    { name: 'trainer_val_perplexity', help: 'Latest validation perplexity', type: 'gauge', samples: one(val?.valPerplexity) },
    { name: 'trainer_rank_params_bytes', help: 'Parameter bytes held by a rank (fp32 master and compute copies)', type: 'gauge', samples: perRank((r) => r.paramsBytes) },
    { name: 'trainer_rank_grads_bytes', help: 'Gradient bytes held by a rank', type: 'gauge', samples: perRank((r) => r.gradsBytes) },
    { name: 'trainer_rank_optimizer_bytes', help: 'Optimizer state bytes held by a rank (AdamW m and v)', type: 'gauge', samples: perRank((r) => r.optimizerBytes) },
    { name: 'trainer_rank_model_state_bytes', help: 'Model state bytes held by a rank (all categories)', type: 'gauge', samples: perRank((r) => r.modelStateBytes) },
    { name: 'trainer_rank_peak_backend_bytes', help: 'Peak bytes held by the compute backend during the latest step', type: 'gauge', samples: perRank((r) => r.peakBytes) },
    { name: 'trainer_rank_bytes_sent_total', help: 'Bytes a rank sent to its peers since the run started', type: 'counter', samples: perRank((r) => r.bytesSentTotal) },
    { name: 'trainer_rank_host_device_bytes_total', help: 'Bytes a rank copied between host memory and its compute device (both ways) since the run started', type: 'counter', samples: perRank((r) => r.hostDeviceTotal) },
    { name: 'trainer_rank_send_bytes_per_second', help: 'Bytes a rank sent in the latest step per second of the whole step time (compute included)', type: 'gauge', samples: perRank((r) => r.sendRate) },
    {
      name: 'trainer_rank_collective_busbw_gbps', type: 'gauge', samples: perRank((r) => r.busbwGBs),
      help: 'Bus bandwidth of a rank\'s collectives in the latest step, measured inside them, in GB/s (1e9 bytes/s; nccl-tests\' busbw: bus bytes over the time at least one collective was in flight)',
    },
    { name: 'trainer_rank_collective_seconds_total', help: 'Time in which at least one collective of a rank was in flight, since the run started', type: 'counter', samples: perRank((r) => (r.collectiveMsTotal === undefined ? undefined : r.collectiveMsTotal / 1000)) },
    { name: 'trainer_checkpoints_total', help: 'Checkpoints committed', type: 'counter', samples: [{ value: s.events.filter((e) => e.kind === 'checkpoint').length }] },
    { name: 'trainer_restarts_total', help: 'Restarts of the run', type: 'counter', samples: [{ value: s.events.filter((e) => e.kind === 'restart').length }] },
  ];
  const lines: string[] = [];
  for (const f of families) {
    if (!f.samples.length) continue;
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const smp of f.samples) lines.push(`${f.name}${labels(smp.labels)} ${formatValue(smp.value)}`);
  }
  return lines.join('\n') + '\n';
}

function labels(l: Record<string, string | number> | undefined): string {
  if (!l) return '';
  const parts = Object.entries(l).map(([k, v]) => `${k}="${String(v).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`);
  return `{${parts.join(',')}}`;
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}
