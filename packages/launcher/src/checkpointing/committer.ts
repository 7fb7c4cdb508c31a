import { createHash } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  checkpointError, CheckpointErrorCode, checkpointName, commitCheckpoint, removeAbandoned, ShardFile, tensorEntriesFromShards, tmpCheckpointName,
  writeFileDurable, MANIFEST_FORMAT, MANIFEST_VERSION, MANIFEST_VERSION_PLAIN, type Manifest,
} from '@trainer/checkpoint';
import { learningRateAt } from '@trainer/engine';
import { asTrainerError } from '@trainer/errors';
import { fullLoraLayout, paramLayout } from '@trainer/model';
import type { TrainJob } from '../job-spec.js';
import type { Logger } from '../logging.js';
import type { CheckpointFailed, CheckpointSpec, CheckpointWritten } from './checkpoint-spec.js';

/**
 * The coordinator's side of the commit protocol. Ranks report their written shard (or their
 * failure) per checkpoint step; when all `world` reports of a step are in, the checkpoint is
 * committed (commitCheckpoint: verify every file's checksum, manifest last, rename, `latest`,
 * keep-last) or, if any rank failed or verification fails, abandoned: its temporary folder is
 * removed, and the previous checkpoint and `latest` stay as they were. Commits run one at a time,
 * in step order, off the training path (workers do not wait for them).
 */
export type CheckpointEvent =
  | { kind: 'committed'; step: number; name: string; path: string; bytes: number; files: number; verify_ms: number; commit_ms: number; copy_ms_max: number; write_ms_max: number; pruned: string[] }
  | { kind: 'failed'; step: number; rank: number | null; code: string; message: string };

export interface CommitterOptions {
  spec: CheckpointSpec;
  job: TrainJob;
  world: number;
  /** The tokenizer file sent to the workers; copied into every checkpoint. */
  tokenizer: Uint8Array | undefined;
  logger: Logger;
  onEvent(e: CheckpointEvent): void;
}

export class CheckpointCommitter {
  private readonly reports = new Map<number, Map<number, CheckpointWritten | CheckpointFailed>>();
  private chain: Promise<void>;
  private lastCommitted: string | undefined;

  constructor(private readonly o: CommitterOptions) {
    // Temporary folders of earlier, interrupted launches are garbage; this launch's are not.
    this.chain = removeAbandoned(o.spec.dir, o.spec.runId).then(
      (gone) => { if (gone.length) o.logger.info(`removed ${gone.length} abandoned checkpoint folder(s): ${gone.join(', ')}`); },
      () => undefined,
    );
  }

  onReport(rank: number, msg: CheckpointWritten | CheckpointFailed): void {
    let byRank = this.reports.get(msg.step);
    if (!byRank) this.reports.set(msg.step, (byRank = new Map()));
    if (byRank.has(rank)) {
      this.o.logger.warn({ rank, step: msg.step }, `worker rank ${rank} reported checkpoint ${msg.step} twice; the second report is ignored`);
      return;
    }
    byRank.set(rank, msg);
    if (byRank.size < this.o.world) return;
    this.reports.delete(msg.step);
    const all = [...byRank.values()];
    this.chain = this.chain.then(() => this.settle(msg.step, all));
  }

  /** Resolves when every checkpoint whose reports are all in has been committed or abandoned. */
  drained(): Promise<void> {
    return this.chain;
  }

  /** After the job: finishes commits under way, removes the folders of saves that never completed. */
  async close(): Promise<void> {
    await this.chain;
    for (const step of this.reports.keys()) {
      await rm(join(this.o.spec.dir, tmpCheckpointName(step, this.o.spec.runId)), { recursive: true, force: true });
      this.o.logger.warn(`checkpoint ${checkpointName(step)} was not committed: not every worker wrote its shard before the job ended`);
    }
    this.reports.clear();
  }

  private async settle(step: number, reports: (CheckpointWritten | CheckpointFailed)[]): Promise<void> {
    const name = checkpointName(step);
    const tmpDir = join(this.o.spec.dir, tmpCheckpointName(step, this.o.spec.runId));
    const failed = reports.filter((r): r is CheckpointFailed => r.type === 'checkpoint-failed').sort((a, b) => a.rank - b.rank);
    try {
      if (failed.length) {
        const f = failed[0];
        return this.abandon(step, tmpDir, f.rank, f.error.code, `worker rank ${f.rank}: ${f.error.message}`);
      }
      const written = (reports as CheckpointWritten[]).sort((a, b) => a.rank - b.rank);
      await mkdir(tmpDir, { recursive: true });
      const manifest = await this.manifest(step, tmpDir, written);
      const r = await commitCheckpoint({ root: this.o.spec.dir, tmpDir, manifest, keepLast: this.o.spec.keepLast });
      this.lastCommitted = r.name;
      const copyMax = Math.max(...written.map((w) => w.copyMs));
      const writeMax = Math.max(...written.map((w) => w.writeMs));
      this.o.logger.info({ step, path: r.path, bytes: r.bytes, verifyMs: Math.round(r.verifyMs), pruned: r.pruned },
        `checkpoint ${name} committed: ${written.length} shard(s), ${(r.bytes / 2 ** 20).toFixed(1)} MiB, checksums verified in ${r.verifyMs.toFixed(0)} ms; training paused ${copyMax.toFixed(1)} ms to copy its state${r.pruned.length ? `; removed ${r.pruned.join(', ')}` : ''}`);
      this.o.onEvent({ kind: 'committed', step, name, path: r.path, bytes: r.bytes, files: written.length, verify_ms: r.verifyMs, commit_ms: r.commitMs, copy_ms_max: copyMax, write_ms_max: writeMax, pruned: r.pruned });
    } catch (err) {
      const e = asTrainerError(err, 'TRAINER_ERR_CHECKPOINT_WRITE');
      await this.abandon(step, tmpDir, null, e.code, e.message);
    }
  }

  private async abandon(step: number, tmpDir: string, rank: number | null, code: string, message: string): Promise<void> {
    await rm(tmpDir, { recursive: true, force: true }).catch(() => undefined);
    const kept = this.lastCommitted ? `${this.lastCommitted} and latest are intact` : 'no earlier checkpoint of this run was touched';
    this.o.logger.error({ step, code, rank }, `checkpoint ${checkpointName(step)} was NOT saved: ${code}: ${message}; ${kept}; training continues`);
    this.o.onEvent({ kind: 'failed', step, rank, code, message });
  }

  /** The manifest of a checkpoint whose shards are all written (the tokenizer copied in here). */
  private async manifest(step: number, tmpDir: string, written: CheckpointWritten[]): Promise<Manifest> {
    const { job, world } = this.o;
    let tokenizer: Manifest['tokenizer'] = null;
    if (this.o.tokenizer) {
      await writeFileDurable(join(tmpDir, 'tokenizer.json'), this.o.tokenizer);
      tokenizer = { file: 'tokenizer.json', sha256: createHash('sha256').update(this.o.tokenizer).digest('hex') };
    }
    const optimizerSteps = new Set(written.map((w) => w.optimizerStep));
    if (optimizerSteps.size !== 1) throw checkpointError(CheckpointErrorCode.WRITE, `ranks disagree on the optimizer step of checkpoint ${step}: ${[...optimizerSteps].join(', ')}`);
    const schedule = { lr: job.lr, minLr: job.minLr, warmupSteps: job.warmupSteps, decaySteps: job.steps };
    // The tensor table from the shards' own headers (each says which slice of which tensor it holds).
    const shards: { file: string; shard: ShardFile }[] = [];
    let table: ReturnType<typeof tensorEntriesFromShards>;
    try {
      for (const w of written) shards.push({ file: w.file, shard: await ShardFile.open(join(tmpDir, w.file), w.bytes) });
      table = tensorEntriesFromShards((job.lora ? fullLoraLayout(job.model, job.lora) : paramLayout(job.model)).entries, shards); // a LoRA run saves its adapters only
    } finally {
      for (const s of shards) await s.shard.close();
    }
    return {
      format: MANIFEST_FORMAT, version: job.outer ? MANIFEST_VERSION : MANIFEST_VERSION_PLAIN, step, optimizerStep: written[0].optimizerStep, createdAt: new Date().toISOString(),
      model: { name: job.modelName, config: { ...job.model } },
      tokenizer,
      layout: { world, dp: world / (job.tp * job.pp), tp: job.tp, pp: job.pp, zeroStage: job.zero, precision: job.precision },
      training: {
        seed: job.seed, steps: job.steps, globalBatch: job.globalBatch, microBatch: job.microBatch, seqLen: job.seqLen, gradClip: job.gradClip,
        adamw: { beta1: job.beta1, beta2: job.beta2, eps: 1e-8, weightDecay: job.weightDecay }, data: job.data,
      },
      lrSchedule: { kind: 'warmup-cosine', ...schedule, lrAtStep: learningRateAt(step, schedule) },
      lossScale: written[0].lossScale ?? null,
      rng: { sampler: { kind: 'stateless', seed: job.seed, nextStep: step }, dropout: null },
      metrics: written[0].metrics ?? {},
      files: written.map((w) => ({ name: w.file, rank: w.rank, bytes: w.bytes, sha256: w.sha256 })),
      // params, m, v (F32) and, under bf16/fp16, params16 (BF16/F16), as the shards' headers say.
      stateDtypes: table.stateDtypes,
      tensors: table.tensors,
      // DiLoCo: every replica's params, m and v, and the outer optimizer's state (version 3).
      ...(job.outer ? { outer: { replicas: job.outer.replicas, syncEvery: job.outer.syncEvery, lr: job.outer.lr, momentum: job.outer.momentum, precision: job.outer.precision, overlap: job.outer.overlap } } : {}),
      // The command's resolved options (run-config.yaml), when the CLI recorded them.
      ...(job.runConfig ? { runConfig: job.runConfig } : {}),
    };
  }
}
