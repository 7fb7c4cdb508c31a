/**
 * Which part of the model a pipeline stage holds (Megatron-LM's pipeline split by layers).
 *
 * The L blocks are split into P contiguous runs, one per stage; stage 0 also holds the embedding
 * and the last stage ln_f and the output head. A tied head (GPT-2, tied Llamas) reads wte, which lives on stage 0:
 * like Megatron, the last stage keeps its own copy of the embedding unit, starts from the same
 * values, and the two copies' wte gradients are summed before every optimizer step, so they stay
 * equal. The copy is not part of the model's parameter count or of its gathered parameters. An
 * untied head's lm_head lives in the final unit, on the last stage only.
 */
import { TrainerError } from '@trainer/errors';
import { ModelErrorCode } from './codes.js';
import type { GPTConfig } from './config.js';
import { isTiedHead } from './config.js';
import { blockShapesOf } from './layout.js';

export interface PipelineStageSpec {
  /** Number of stages P. */
  stages: number;
  /** This stage, in [0, P). */
  stage: number;
  /** Blocks per stage (sums to the number of layers); default: balanceBlocks(config, stages, balance). */
  blocks?: number[];
  /** How the default split balances the stages (default 'compute'). */
  balance?: PipelineBalance;
}

/**
 * What a default pipeline split evens out across stages:
 *   compute  forward FLOPs per token (a block 24C^2 + 4TC, the output head 2CV, the embedding's
 *            lookup ~0), as Megatron-LM's options that account for the embedding and the loss in
 *            the split do; measured on gpt-nano (wasm, per micro-batch of 4 sequences, forward
 *            and backward): a block 22.9 ms, the head with the loss 29.6 ms, the embedding 0.9 ms
 *   params   parameter counts (the embedding and the head's copy of wte weigh the same)
 * The slowest stage sets the pace of the whole pipeline, so 'compute' is the default.
 */
export type PipelineBalance = 'compute' | 'params';

export type SegmentKind = { kind: 'embedding' } | { kind: 'block'; block: number } | { kind: 'head' };

export interface StagePlan {
  /** Base units (embedding = 0, block i = i + 1, final = L + 1) this stage holds, in its order. */
  baseUnits: number[];
  /** Index (into baseUnits) of the last stage's copy of the embedding unit, if any. */
  copyUnit: number | null;
  /** This stage's segments, in order. */
  kinds: SegmentKind[];
  /** Blocks [first, end) of this stage. */
  blocks: [number, number];
}

/**
 * Blocks per stage minimizing the largest stage's cost (`balance`: FLOPs or parameters; stage 0
 * carries the embedding, the last stage ln_f and the head), by trying every split point in
 * order: contiguous runs, small search (L <= a few hundred).
 */
export function balanceBlocks(config: GPTConfig, stages: number, balance: PipelineBalance = 'compute'): number[] {
  const L = config.layers;
  const C = config.dModel;
  const V = config.vocabSize;
  const T = config.contextLength;
  const shapes = blockShapesOf(config);
  const blockParams = shapes.reduce((s, [, shape]) => s + shape.reduce((a, b) => a * b, 1), 0);
  const blockMatrices = shapes.filter(([, shape]) => shape.length === 2).reduce((s, [, shape]) => s + shape[0] * shape[1], 0);
  const embeddingParams = (V + (config.family === 'llama' ? 0 : config.contextLength)) * C;
  // A block's matrices cost 2 FLOPs per weight and token (24C^2 for GPT-2), attention 4TC.
  const [block, embedding, head] = balance === 'compute'
    ? [2 * blockMatrices + 4 * T * C, 0, 2 * C * V]
    : [blockParams, embeddingParams, stages > 1 || !isTiedHead(config) ? V * C + 2 * C : 2 * C];
  // Dynamic programming over (stages used, blocks used): the minimal possible maximum.
  const cost = (s: number, from: number, to: number) => (to - from) * block + (s === 0 ? embedding : 0) + (s === stages - 1 ? head : 0);
  const best: number[][] = Array.from({ length: stages + 1 }, () => new Array<number>(L + 1).fill(Infinity));
  const cut: number[][] = Array.from({ length: stages + 1 }, () => new Array<number>(L + 1).fill(0));
  best[0][0] = 0;
  for (let s = 1; s <= stages; s++) {
    for (let to = 0; to <= L; to++) {
      for (let from = 0; from <= to; from++) {
        const v = Math.max(best[s - 1][from], cost(s - 1, from, to));
        if (v < best[s][to]) {
          best[s][to] = v;
          cut[s][to] = from;
        }
      }
    }
  }
  const counts: number[] = [];
  for (let s = stages, to = L; s > 0; s--) {
    const from = cut[s][to];
    counts.unshift(to - from);
    to = from;
  }
  return counts;
}

export function checkPipeline(config: GPTConfig, spec: PipelineStageSpec): number[] {
  const { stages, stage } = spec;
  if (!Number.isInteger(stages) || stages < 1 || !Number.isInteger(stage) || stage < 0 || stage >= stages) {
    throw new TrainerError(ModelErrorCode.MODEL_CONFIG, `pipeline stage ${stage} of ${stages} is not valid`, { hint: 'use --pp P with P >= 1' });
  }
  if (stages > config.layers + 1) {
    throw new TrainerError('TRAINER_ERR_PP_TOO_DEEP', `${stages} pipeline stages are more than the model's ${config.layers} blocks allow`, {
      hint: `use --pp ${config.layers} or less (or a model with more --layers)`,
      details: { stages, layers: config.layers },
    });
  }
  const blocks = spec.blocks ?? balanceBlocks(config, stages, spec.balance);
  if (blocks.length !== stages || blocks.some((b) => !Number.isInteger(b) || b < 0) || blocks.reduce((a, b) => a + b, 0) !== config.layers) {
    throw new TrainerError('TRAINER_ERR_PP_SPLIT', `the pipeline split ${blocks.join(',')} does not assign the model's ${config.layers} blocks to ${stages} stages`, {
      hint: `give ${stages} non-negative block counts that add up to ${config.layers}, e.g. --pp-split ${balanceBlocks(config, stages, spec.balance).join(',')}`,
    });
  }
  return blocks;
}

export function stagePlan(config: GPTConfig, spec: PipelineStageSpec): StagePlan {
  const blocks = checkPipeline(config, spec);
  const { stages, stage } = spec;
  const first = blocks.slice(0, stage).reduce((a, b) => a + b, 0);
  const end = first + blocks[stage];
  const baseUnits: number[] = [];
  const kinds: SegmentKind[] = [];
  if (stage === 0) {
    baseUnits.push(0);
    kinds.push({ kind: 'embedding' });
  }
  for (let b = first; b < end; b++) {
    baseUnits.push(b + 1);
    kinds.push({ kind: 'block', block: b });
  }
  let copyUnit: number | null = null;
  if (stage === stages - 1) {
    baseUnits.push(config.layers + 1);
    if (stage > 0 && isTiedHead(config)) {
      copyUnit = baseUnits.length;
      baseUnits.push(0);
    }
    kinds.push({ kind: 'head' });
  }
  return { baseUnits, copyUnit, kinds, blocks: [first, end] };
}
