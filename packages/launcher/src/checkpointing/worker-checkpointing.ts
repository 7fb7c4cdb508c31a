import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CheckpointReader, checkpointError, CheckpointErrorCode, checkTensorsMatch, halfDtypeOf, packShard, readFlatRange, shardSize, shardTensors, ShardWriter, tmpCheckpointName, writeFailure,
  type FlatTensor, type OwnedPiece, type StateKind,
} from '@trainer/checkpoint';
import { asTrainerError } from '@trainer/errors';
import type { MetricsRecord } from '../control-protocol.js';
import type { Logger } from '../logging.js';
import { shardFileName, type CheckpointFailed, type CheckpointSpec, type CheckpointWritten } from './checkpoint-spec.js';
import { parseSaveFault, saveFaultFor, type SaveFault } from './save-fault.js';

/**
 * A worker's side of sharded checkpoints: restoring its state from a checkpoint of any layout,
 * and saving its own pieces every `saveEvery` steps.
 *
 * A shard holds this rank's pieces of the fp32 parameters (the master copy under bf16/fp16) and
 * AdamW's m and v, which resume restores, and under bf16/fp16 also the 16-bit working parameters
 * (`params16`, what the model computes with) for consumers that want weights only, as DeepSpeed
 * keeps 16-bit weights beside its fp32 master and optimizer state.
 *
 * A save stalls training only for the copy of this rank's state out of the trainer into one
 * buffer laid out as the shard file; a thread then writes, hashes and fsyncs it while the next
 * steps run, and the worker reports the file to the coordinator, which commits the checkpoint
 * once every rank's file is in. At most one save is in flight: the next waits for it.
 */
export interface CheckpointableTrainer {
  readonly precision: 'fp32' | 'bf16' | 'fp16';
  /** This rank's pieces, read from wherever the state lives (16-bit working parameters in `params16` exactly when the precision is bf16 or fp16). */
  exportPieces(): Promise<{ optimizerStep: number; precision: 'fp32' | 'bf16' | 'fp16'; pieces: OwnedPiece[] }>;
  /** The flat ranges exportPieces returns, without reading anything. */
  exportRanges(): { flatStart: number; flatEnd: number }[];
  importState(
    optimizerStep: number,
    read: (kind: 'params' | 'm' | 'v', start: number, end: number) => Promise<Float32Array>,
    outer?: { read: (kind: 'outer_anchor' | 'outer_momentum' | 'outer_base' | 'outer_pending', start: number, end: number) => Promise<Float32Array>; resumeStep: number; pending: boolean },
  ): Promise<void>;
  /** fp16's dynamic loss scaling (null under fp32 and bf16). */
  lossScalerState(): LossScale | null;
  loadLossScalerState(state: LossScale): void;
}

type LossScale = { scale: number; goodSteps: number; skipsAtMinimum: number };

/** What exportPieces resolves to. */
type ExportedState = Awaited<ReturnType<CheckpointableTrainer['exportPieces']>>;

export interface WorkerCheckpointingOptions {
  spec: CheckpointSpec;
  rank: number;
  world: number;
  /** Total steps of the job (the last one is always saved when saving is on). */
  steps: number;
  /** The tensors of this rank's flat vector (local-tensors.ts). */
  tensors: FlatTensor[];
  trainer: CheckpointableTrainer;
  /** Sends a commit-protocol message to the coordinator. */
  send(m: CheckpointWritten | CheckpointFailed): void;
  report(record: MetricsRecord): void;
  logger: Logger;
  /**
   * DiLoCo: this rank's replica, the run's replicas and whether syncs overlap. Each replica saves
   * its own params, m and v; replica 0 also the outer anchor and momentum (manifest version 3).
   */
  outer?: { replica: number; replicas: number; overlap: boolean };
}

export class WorkerCheckpointing {
  private readonly writer = new ShardWriter();
  private readonly fault: SaveFault | undefined;
  private inFlight: Promise<void> = Promise.resolve();

  constructor(private readonly o: WorkerCheckpointingOptions) {
    this.fault = parseSaveFault(process.env.TRAINER_SAVE_FAULT);
    if (o.spec.saveEvery > 0) {
      // The writer thread maps a buffer of the shard's size now, so the first save's copy is as quick as the next ones.
      const shard = this.shardOf(placeholderPieces(o.trainer, o.outer));
      void this.writer.prepare(shardSize(shard.tensors, { ...shard.metadata, ...this.shardMetadata(o.steps) }));
    }
  }

  /** The tensors of this rank's shard: params, m, v, and params16 in the precision's dtype (bf16, fp16). */
  private shardOf(exported: ExportedState): ReturnType<typeof shardTensors> {
    return shardTensors(this.o.tensors, exported.pieces, { params16: halfDtypeOf(exported.precision), ...(this.o.outer ? { replica: this.o.outer.replica } : {}) });
  }

  /** The shard header's metadata besides the slices (the largest step gives the longest header). */
  private shardMetadata(step: number): Record<string, string> {
    return { rank: String(this.o.rank), world: String(this.o.world), step: String(step) };
  }

  /**
   * Loads the checkpoint the job resumes from (if any) into the trainer, reading only the flat
   * ranges this rank's stage keeps, and returns the first step to run.
   */
  async restore(): Promise<number> {
    const from = this.o.spec.resume;
    if (!from) return 0;
    const started = performance.now();
    const reader = await CheckpointReader.open(from.dir);
    try {
      checkTensorsMatch(reader, this.o.tensors);
      const replica = this.replicaToRead(reader);
      const read = <K extends StateKind>(kind: K, s: number, e: number) => readFlatRange(reader, this.o.tensors, kind, s, e, replica);
      // DiLoCo from a DiLoCo checkpoint: this replica's own state and the outer state; otherwise replica 0's (or the only) state.
      const m = reader.manifest;
      await this.o.trainer.importState(m.optimizerStep, read, this.o.outer && m.outer ? { read, resumeStep: m.step, pending: m.stateDtypes?.outer_pending !== undefined } : undefined);
      // fp16 continues with the saved loss scale; from a checkpoint without one it starts afresh.
      if (reader.manifest.lossScale) this.o.trainer.loadLossScalerState(reader.manifest.lossScale);
    } finally {
      await reader.close();
    }
    const ms = performance.now() - started;
    const m = reader.manifest;
    this.o.logger.info({ checkpoint: reader.dir, step: m.step, ms: Math.round(ms), bytesRead: reader.bytesRead },
      `resumed from ${reader.dir} (step ${m.step}; written by ${m.layout.world} worker(s) with ZeRO ${m.layout.zeroStage}): read ${(reader.bytesRead / 2 ** 20).toFixed(1)} MiB in ${ms.toFixed(0)} ms`);
    this.o.report({ step: m.step, resume_ms: ms, resume_bytes_read: reader.bytesRead, resumed_from: reader.dir });
    return m.step;
  }

  /**
   * The replica whose state this rank restores: its own when run and checkpoint are DiLoCo's with
   * the same replicas and overlap (else refused), replica 0 (every rank) when only the checkpoint is.
   */
  private replicaToRead(reader: CheckpointReader): number {
    const saved = reader.manifest.outer;
    const run = this.o.outer;
    if (!saved || !run) {
      if (saved && saved.replicas > 1) this.o.logger.warn({ replicas: saved.replicas }, `${reader.dir} holds ${saved.replicas} DiLoCo replicas; this run has none and continues from replica 0's state`);
      return 0;
    }
    if (saved.replicas !== run.replicas || (saved.overlap > 0) !== run.overlap) {
      const where = `${reader.dir}/manifest.json`;
      throw checkpointError(CheckpointErrorCode.CONFIG_MISMATCH, `${where} was written by ${saved.replicas} DiLoCo replica(s)${saved.overlap ? ' with overlapped syncs' : ''}; this run has ${run.replicas}${run.overlap ? ' with overlapped syncs' : ''}`, {
        file: where, hint: `resume with --replicas ${saved.replicas}${saved.overlap ? ` --outer-overlap ${saved.overlap}` : ' (without --outer-overlap)'}, or without --sync-every to continue from replica 0 as one model`,
      });
    }
    return run.replica;
  }

  /** After step `step` (0-based) has run: saves when `step + 1` is due. */
  async afterStep(step: number, metrics: Record<string, number | null>): Promise<void> {
    const done = step + 1;
    const { saveEvery } = this.o.spec;
    if (saveEvery === 0 || (done % saveEvery !== 0 && done !== this.o.steps)) return;
    const entered = performance.now();
    await this.inFlight; // at most one save in flight
    const dir = join(this.o.spec.dir, tmpCheckpointName(done, this.o.spec.runId));
    const path = join(dir, shardFileName(this.o.rank, this.o.world));
    let failed: CheckpointFailed | undefined;
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      failed = { type: 'checkpoint-failed', rank: this.o.rank, step: done, error: writeFailure(err, dir, 'creating').toJSON() };
    }
    if (failed) return this.fail(failed);

    // The stall: one copy of this rank's pieces (params, m, v, params16) into the shard's buffer.
    const copyStarted = performance.now();
    const exported = await this.o.trainer.exportPieces();
    const { optimizerStep } = exported;
    const lossScale = this.o.trainer.lossScalerState();
    const shard = this.shardOf(exported);
    const packed = packShard(shard.tensors, { ...shard.metadata, ...this.shardMetadata(done) }, this.writer.takeBuffer());
    const copyMs = performance.now() - copyStarted;
    const shardBytes = packed.bytes.byteLength; // the buffer is transferred to the writer below
    this.inFlight = this.writer.write(path, packed, { fault: saveFaultFor(this.fault, this.o.rank, done) }).then(
      (w) => this.o.send({
        type: 'checkpoint-written', rank: this.o.rank, step: done, optimizerStep, file: shardFileName(this.o.rank, this.o.world),
        bytes: w.bytes, sha256: w.sha256, copyMs, lossScale: lossScale ? { ...lossScale } : null, writeMs: w.writeMs, ...(this.o.rank === 0 ? { metrics } : {}),
      }),
      (err: unknown) => this.fail({ type: 'checkpoint-failed', rank: this.o.rank, step: done, error: asTrainerError(err, 'TRAINER_ERR_CHECKPOINT_WRITE').toJSON() }),
    );
    this.o.report({ step, checkpoint_step: done, checkpoint_copy_ms: copyMs, checkpoint_blocked_ms: performance.now() - entered, checkpoint_shard_bytes: shardBytes });
  }

  /** Waits for the save in flight (its report sent), then stops the writer thread. */
  async finish(): Promise<void> {
    await this.inFlight;
    await this.writer.close();
  }

  private fail(f: CheckpointFailed): void {
    this.o.logger.error({ code: f.error.code, step: f.step }, `checkpoint of step ${f.step}: this rank's shard was not saved: ${f.error.code}: ${f.error.message}`);
    this.o.send(f);
  }
}

/**
 * Pieces of the export's lengths without its values (views of one shared zero array): enough to
 * size a shard before anything is read from the device.
 */
function placeholderPieces(trainer: CheckpointableTrainer, outer: WorkerCheckpointingOptions['outer']): ExportedState {
  const ranges = trainer.exportRanges();
  const longest = ranges.reduce((m, r) => Math.max(m, r.flatEnd - r.flatStart), 0);
  const zeros = new Float32Array(longest);
  const codes = new Uint16Array(longest);
  const half = trainer.precision !== 'fp32';
  return {
    optimizerStep: 0, precision: trainer.precision,
    pieces: ranges.map((r) => {
      const n = r.flatEnd - r.flatStart;
      const z = zeros.subarray(0, n);
      return {
        ...r, params: z, m: z, v: z, ...(half ? { params16: codes.subarray(0, n) } : {}),
        ...(outer?.replica === 0 ? { outer_anchor: z, outer_momentum: z } : {}), ...(outer?.overlap ? { outer_base: z } : {}),
      };
    }),
  };
}
