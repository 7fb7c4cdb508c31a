import { fullLoraLayout } from '@trainer/model';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { checkpointError, CheckpointErrorCode, CHECKPOINTS_DIR, newestVerified, verifyCheckpoint, type Manifest, type VerifyReport } from '@trainer/checkpoint';
import { TrainerError } from '@trainer/errors';
import type { TrainJob } from '../job-spec.js';
import type { CheckpointSpec } from './checkpoint-spec.js';

/**
 * Checkpointing options from the command line, turned into the job's CheckpointSpec before any
 * worker starts: `--resume auto` finds the newest checkpoint in <out>/checkpoints that verifies
 * completely (saying which newer ones it skipped and why; none is not an error), `--resume PATH`
 * verifies that one (any problem is an error naming the file). Either way the checkpoint must be
 * of the requested model and tokenizer; other differences (batch, learning rate, workers, ZeRO
 * stage) are allowed and said.
 */
export interface CheckpointRequest {
  saveEvery: number;
  keepLast: number;
  /** 'auto', a checkpoint path, or undefined (start from scratch). */
  resume?: string;
}

export async function prepareCheckpointing(req: CheckpointRequest | undefined, job: TrainJob, world: number, tokenizerJson: string | undefined, log: (msg: string) => void): Promise<CheckpointSpec | undefined> {
  if (!req || (req.saveEvery === 0 && !req.resume)) return undefined;
  const dir = join(job.outDir, CHECKPOINTS_DIR);
  let found: VerifyReport | undefined;
  if (req.resume === 'auto') {
    const r = await newestVerified(dir);
    for (const s of r.skipped) log(`--resume auto: skipping checkpoint ${s.name}, which does not verify: ${s.problem.code}: ${s.problem.message}`);
    found = r.found;
    if (!found) log(`--resume auto: no checkpoint in ${dir}${r.skipped.length ? ' verifies' : ' yet'}; starting from scratch`);
  } else if (req.resume) {
    found = await verifyCheckpoint(req.resume);
    if (found.problems.length) throw found.problems[0];
  }
  let resume: CheckpointSpec['resume'] = null;
  if (found) {
    checkResumable(found.manifest, found.dir, job, world, tokenizerJson, log);
    log(`resuming from ${found.dir} at step ${found.manifest.step} (${found.files.length} file(s), ${(found.bytes / 2 ** 20).toFixed(1)} MiB, checksums verified in ${found.ms.toFixed(0)} ms)`);
    resume = { dir: found.dir, step: found.manifest.step };
  }
  return { dir, saveEvery: req.saveEvery, keepLast: req.keepLast, runId: randomBytes(6).toString('hex'), resume };
}

/** The checkpoint must be of this model and tokenizer, and leave steps to train. */
function checkResumable(m: Manifest, dir: string, job: TrainJob, world: number, tokenizerJson: string | undefined, log: (msg: string) => void): void {
  const where = join(dir, 'manifest.json');
  const saved = m.model.config as Record<string, unknown>;
  const wanted = job.model as unknown as Record<string, unknown>;
  const diffs = [...new Set([...Object.keys(saved), ...Object.keys(wanted)])].filter((k) => saved[k] !== wanted[k]).map((k) => `${k}: checkpoint ${String(saved[k])}, requested ${String(wanted[k])}`);
  if (diffs.length) {
    throw checkpointError(CheckpointErrorCode.CONFIG_MISMATCH, `${where} was written for another model than the one requested (${diffs.join('; ')})`, { file: where, details: { diffs } });
  }
  // A LoRA run's checkpoint holds its adapters only (the frozen base is re-read from --from).
  const savedLora = m.tensors.some((t) => /\.lora_[AB]\.weight$/.test(t.name));
  if (savedLora !== (job.lora !== undefined)) {
    throw checkpointError(CheckpointErrorCode.CONFIG_MISMATCH, `${where} holds ${savedLora ? 'LoRA adapters only' : 'the whole model'}, but this run ${job.lora ? 'trains LoRA adapters (--lora-rank)' : 'trains every parameter'}`, {
      file: where, hint: savedLora ? 'resume with the --lora-* options and the --from the checkpoint was written with' : 'drop --lora-rank to resume it, or start a LoRA fine-tune with --from the checkpoint',
    });
  }
  if (job.lora) {
    const wantedShapes = new Map(fullLoraLayout(job.model, job.lora).entries.map((e) => [e.name, JSON.stringify(e.shape)]));
    const differ = m.tensors.length !== wantedShapes.size || m.tensors.some((t) => wantedShapes.get(t.name) !== JSON.stringify(t.shape));
    if (differ) {
      throw checkpointError(CheckpointErrorCode.CONFIG_MISMATCH, `${where} holds other LoRA adapters than this run's (rank ${job.lora.rank} on ${job.lora.targets.join(',')})`, {
        file: where, hint: 'resume with the --lora-rank and --lora-targets the checkpoint was written with (`trainer checkpoint inspect PATH` lists its tensors)',
      });
    }
  }
  if (m.tokenizer && tokenizerJson !== undefined) {
    const hash = createHash('sha256').update(tokenizerJson).digest('hex');
    if (hash !== m.tokenizer.sha256) {
      throw checkpointError(CheckpointErrorCode.CONFIG_MISMATCH, `${where} was trained with another tokenizer than the one requested`, {
        file: where, hint: `pass --tokenizer ${join(dir, m.tokenizer.file)}`,
      });
    }
  }
  if (m.step >= job.steps) {
    throw new TrainerError('TRAINER_ERR_RESUME_PAST_END', `${dir} is at step ${m.step}; --steps ${job.steps} leaves nothing to train`, {
      hint: `raise --steps above ${m.step} to train further (the learning-rate schedule then decays over the new total)`,
    });
  }
  const t = m.training;
  const changed = ([['seed', job.seed], ['globalBatch', job.globalBatch], ['seqLen', job.seqLen], ['steps', job.steps], ['gradClip', job.gradClip]] as const)
    .filter(([k, v]) => t[k] !== undefined && t[k] !== v).map(([k, v]) => `${k} ${String(t[k])} -> ${v}`);
  if (m.lrSchedule.lr !== job.lr || m.lrSchedule.minLr !== job.minLr || m.lrSchedule.warmupSteps !== job.warmupSteps) changed.push('learning-rate schedule');
  if (changed.length) log(`resuming with changed hyperparameters (${changed.join(', ')}): the run continues from the saved state but will not retrace the original trajectory`);
  const was = `${m.layout.world} worker(s) (dp ${m.layout.dp} x tp ${m.layout.tp} x pp ${m.layout.pp}) with ZeRO ${m.layout.zeroStage}${m.layout.precision !== 'fp32' ? `, ${m.layout.precision}` : ''}`;
  const now = `${world} (dp ${world / (job.tp * job.pp)} x tp ${job.tp} x pp ${job.pp}) with ZeRO ${job.zero}${job.precision !== 'fp32' ? `, ${job.precision}` : ''}`;
  if (m.layout.zeroStage !== job.zero || m.layout.world !== world || m.layout.tp !== job.tp || m.layout.pp !== job.pp || m.layout.precision !== job.precision) {
    log(`resharding: the checkpoint was written by ${was}; this run has ${now}: each rank reads the slices it needs`);
  }
}
