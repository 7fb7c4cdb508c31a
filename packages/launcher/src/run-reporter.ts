import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '@trainer/checkpoint';
import type { MetricsRecord } from './control-protocol.js';
import type { Coordinator, JobOutcome } from './coordinator.js';
import type { Logger } from './logging.js';

/**
 * The run's record and its voice: every metrics record a worker reports becomes one line of
 * <out>/metrics.jsonl; progress lines (step, loss, tokens/s, ETA) go to the log; at the end
 * <out>/summary.json holds the run's figures and the sample the model wrote.
 */
export class RunReporter {
  private stream: WriteStream | undefined;
  private readonly losses: number[] = [];
  /** Checkpoints committed or failed during the run (summary.json `checkpoints`). */
  private readonly checkpoints: unknown[] = [];
  private readonly started = Date.now();
  private lastPrint = 0;

  constructor(private readonly outDir: string, private readonly totalSteps: number, private readonly log: Logger, private readonly extra: Record<string, unknown>) {}

  /** `append`: a resumed run adds to the metrics.jsonl of the run it continues. */
  async open(append = false): Promise<void> {
    if (!this.outDir) return;
    await mkdir(this.outDir, { recursive: true });
    this.stream = createWriteStream(join(this.outDir, 'metrics.jsonl'), { flags: append ? 'a' : 'w' });
  }

  attach(coordinator: Coordinator): void {
    coordinator.on('metrics', (rank: number, record: MetricsRecord) => this.onMetrics(rank, record));
    coordinator.on('checkpoint', (event: Record<string, unknown>) => this.checkpoints.push(event));
  }

  private onMetrics(rank: number, record: MetricsRecord): void {
    this.stream?.write(JSON.stringify({ time: new Date().toISOString(), rank, ...record }) + '\n');
    if (typeof record.step !== 'number' || typeof record.loss !== 'number') return;
    this.losses[record.step] = record.loss;
    const now = Date.now();
    const last = record.step === this.totalSteps - 1;
    const hasVal = typeof record.val_loss === 'number';
    if (!last && !hasVal && this.totalSteps > 50 && now - this.lastPrint < 2000) return;
    this.lastPrint = now;
    const done = record.step + 1;
    const eta = ((now - this.started) / done) * (this.totalSteps - done);
    const parts = [
      `step ${String(done).padStart(String(this.totalSteps).length)}/${this.totalSteps}`,
      `loss ${record.loss.toFixed(4)}`,
      typeof record.tokens_per_s === 'number' ? `${Math.round(record.tokens_per_s).toLocaleString('en-US')} tok/s` : '',
      typeof record.step_ms === 'number' ? `${record.step_ms.toFixed(0)} ms/step` : '',
      typeof record.non_padding_share === 'number' ? `${(100 * record.non_padding_share).toFixed(0)}% not padding` : '',
      hasVal ? `val loss ${(record.val_loss as number).toFixed(4)} (ppl ${(record.val_perplexity as number).toFixed(1)})` : '',
      last ? '' : `ETA ${formatDuration(eta)}`,
    ].filter(Boolean);
    this.log.info(parts.join(' | '));
  }

  /** Writes summary.json and returns it; `extra`: more fields (the restarts, the exit code). */
  async finish(outcome: JobOutcome, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    await new Promise<void>((resolve) => (this.stream ? this.stream.end(resolve) : resolve()));
    const base = { ...this.extra, ...extra, losses: this.losses, wall_s: (Date.now() - this.started) / 1000, ...(this.checkpoints.length ? { checkpoints: this.checkpoints } : {}) };
    const summary = outcome.ok
      ? { ok: true, ...base, ...outcome.results[0] }
      : { ok: false, ...base, failure: outcome.failure };
    if (this.outDir) await writeJsonAtomic(join(this.outDir, 'summary.json'), summary);
    return summary;
  }
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
