/**
 * LoRA (Hu et al. 2021, "Low-Rank Adaptation"), as Hugging Face PEFT and Megatron define it.
 *
 * For a base linear y = x W (W [in, out] in this trainer's orientation; Hugging Face's nn.Linear
 * stores W^T [out, in]) LoRA adds a trained low-rank update while W stays frozen:
 *
 *   y = x W + (alpha / r) dropout(x) A B        A [in, r], B [r, out]
 *
 * A starts Kaiming-uniform (PEFT: nn.init.kaiming_uniform_(lora_A.weight [r, in], a = sqrt(5)),
 * i.e. U(-1/sqrt(in), 1/sqrt(in))) and B at zeros, so the adapted model starts as the base model.
 * The merged weight is W' = W + (alpha / r) A B.
 */
import { TrainerError } from '@trainer/errors';
import type { GPTConfig } from '../config.js';
import { familyOf } from '../config.js';

/** How to adapt a model (the --lora-* flags). */
export interface LoraConfig {
  /** r: the adapters' rank. */
  rank: number;
  /** alpha: the update is scaled by alpha / r. */
  alpha: number;
  /** Dropout on the adapter's input in training (PEFT's lora_dropout), in [0, 1); the mask is lora-dropout.ts's, equal in every layout. */
  dropout: number;
  /** Short target names (q, k, v, o, gate, up, down; GPT-2: c_attn, c_proj (attn and mlp), c_fc). */
  targets: string[];
}

/** Short target name -> the block-local linear (the layout's name without `.weight`). */
const LLAMA_TARGETS: Record<string, string> = {
  q: 'attn.q_proj', k: 'attn.k_proj', v: 'attn.v_proj', o: 'attn.o_proj',
  gate: 'mlp.gate_proj', up: 'mlp.up_proj', down: 'mlp.down_proj',
};

/** PEFT's target_modules spelling of each Llama target. */
const LLAMA_PEFT: Record<string, string> = {
  q: 'q_proj', k: 'k_proj', v: 'v_proj', o: 'o_proj', gate: 'gate_proj', up: 'up_proj', down: 'down_proj',
};

/**
 * GPT-2's targets, PEFT's module names (Conv1D layers): c_proj names both attn.c_proj and
 * mlp.c_proj, as PEFT's suffix match does.
 */
const GPT2_TARGETS: Record<string, string[]> = {
  c_attn: ['attn.c_attn'], c_proj: ['attn.c_proj', 'mlp.c_proj'], c_fc: ['mlp.c_fc'],
};
const GPT2_ORDER = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'];

/** The default targets (PEFT's default for Llama: q_proj, v_proj). */
export const DEFAULT_LORA_TARGETS = ['q', 'v'];

/** The target names a model family accepts (what an unknown target's error lists). */
export function validLoraTargets(config: GPTConfig): string[] {
  return familyOf(config) === 'llama' ? [...Object.keys(LLAMA_TARGETS), ...Object.values(LLAMA_PEFT)] : Object.keys(GPT2_TARGETS);
}

/**
 * The block-local linears a LoRA config adapts, in block order, e.g. ['attn.q_proj', 'attn.v_proj'].
 * A target that matches no layer of the model, or a family LoRA is not built for, is refused
 * (TRAINER_ERR_LORA_TARGET / TRAINER_ERR_LORA_CONFIG).
 */
export function loraTargetLinears(config: GPTConfig, lora: LoraConfig): string[] {
  checkLoraConfig(lora);
  const unknown = (t: string): TrainerError => new TrainerError('TRAINER_ERR_LORA_TARGET', `--lora-targets: '${t}' matches no layer of this ${familyOf(config)} model`, {
    hint: `choose among ${validLoraTargets(config).join(', ')}`,
    details: { target: t, valid: validLoraTargets(config) },
  });
  if (familyOf(config) !== 'llama') {
    const linears = new Set<string>();
    for (const t of lora.targets) {
      const ls = GPT2_TARGETS[t];
      if (!ls) throw unknown(t);
      for (const l of ls) linears.add(l);
    }
    return GPT2_ORDER.filter((l) => linears.has(l));
  }
  const byPeft = new Map(Object.entries(LLAMA_PEFT).map(([short, peft]) => [peft, short]));
  const chosen = new Set<string>();
  for (const t of lora.targets) {
    const short = LLAMA_TARGETS[t] ? t : byPeft.get(t);
    if (short === undefined) throw unknown(t);
    chosen.add(LLAMA_TARGETS[short]);
  }
  return Object.values(LLAMA_TARGETS).filter((l) => chosen.has(l));
}

/** PEFT's target_modules for the adapted linears (e.g. 'attn.q_proj' -> 'q_proj'; GPT-2's two c_proj once). */
export function peftTargetModules(linears: readonly string[]): string[] {
  return [...new Set(linears.map((l) => l.slice(l.lastIndexOf('.') + 1)))];
}

/** alpha / r. */
export function loraScale(lora: LoraConfig): number {
  return lora.alpha / lora.rank;
}

export function checkLoraConfig(lora: LoraConfig): void {
  if (!Number.isInteger(lora.rank) || lora.rank < 1) {
    throw new TrainerError('TRAINER_ERR_LORA_CONFIG', `--lora-rank ${lora.rank} is not a positive integer`, { hint: 'use e.g. --lora-rank 8' });
  }
  if (!Number.isFinite(lora.alpha) || lora.alpha <= 0) {
    throw new TrainerError('TRAINER_ERR_LORA_CONFIG', `--lora-alpha ${lora.alpha} is not a positive number`, { hint: 'use e.g. --lora-alpha 16 (the update is scaled by alpha / rank)' });
  }
  if (!Number.isFinite(lora.dropout) || lora.dropout < 0 || lora.dropout >= 1) {
    throw new TrainerError('TRAINER_ERR_LORA_CONFIG', `--lora-dropout ${lora.dropout} is not a probability in [0, 1)`, { hint: 'use e.g. --lora-dropout 0.05 (PEFT\'s lora_dropout), or 0 for none' });
  }
  if (lora.targets.length === 0) {
    throw new TrainerError('TRAINER_ERR_LORA_TARGET', '--lora-targets is empty', { hint: `name at least one layer, e.g. --lora-targets ${DEFAULT_LORA_TARGETS.join(',')}` });
  }
}
