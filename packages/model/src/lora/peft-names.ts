/**
 * LoRA adapters under Hugging Face PEFT's names and orientation (what `PeftModel.from_pretrained`
 * loads from adapter_model.safetensors):
 *
 *   ours  h.{i}.attn.q_proj.lora_A.weight  [in, r]    PEFT  base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight  [r, in]
 *   ours  h.{i}.attn.q_proj.lora_B.weight  [r, out]   PEFT  base_model.model.model.layers.{i}.self_attn.q_proj.lora_B.weight  [out, r]
 *
 * (PEFT's nn.Linear layers store weight [out, in]: lora_A is a Linear(in, r), lora_B a Linear(r, out),
 * so both factors are the transposes of ours.) GPT-2: base_model.model.transformer.h.{i}.attn.c_attn.lora_A.weight
 * and so on, the same shapes, with fan_in_fan_out true (its Conv1D bases store W [in, out]).
 */
import type { GPTConfig } from '../config.js';
import { familyOf } from '../config.js';
import { hfNameOf } from '../hf-names.js';
import type { LoraConfig } from './lora-config.js';
import { peftTargetModules } from './lora-config.js';

export interface PeftTensor {
  /** Our name, e.g. h.0.attn.q_proj.lora_A.weight. */
  name: string;
  /** PEFT's name. */
  peftName: string;
  /** PEFT's shape: the transpose of ours. */
  peftShape: [number, number];
}

/** PEFT's name of one of our adapter tensors. */
export function peftNameOf(config: GPTConfig, name: string): string {
  const m = /^(h\.\d+\..+)\.(lora_[AB])\.weight$/.exec(name);
  if (!m) throw new Error(`internal: ${name} is not a LoRA adapter tensor`);
  const hf = hfNameOf(config, `${m[1]}.weight`).hfName; // model.layers.{i}.self_attn.q_proj.weight (GPT-2: h.{i}.attn.c_attn.weight)
  const base = familyOf(config) === 'llama' ? hf : `transformer.${hf}`; // GPT2LMHeadModel's module path
  return `base_model.model.${base.replace(/\.weight$/, '')}.${m[2]}.weight`;
}

/** adapter_config.json for a LoRA config (the fields PEFT's LoraConfig reads). */
export function peftAdapterConfig(config: GPTConfig, lora: LoraConfig, linears: readonly string[], baseModel: string): Record<string, unknown> {
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r: lora.rank,
    lora_alpha: lora.alpha,
    lora_dropout: lora.dropout,
    target_modules: peftTargetModules(linears),
    bias: 'none',
    fan_in_fan_out: familyOf(config) !== 'llama', // GPT-2's Conv1D stores W [in, out]; Llama's nn.Linear [out, in]
    base_model_name_or_path: baseModel,
    inference_mode: true,
    init_lora_weights: true,
    modules_to_save: null,
    use_rslora: false,
    use_dora: false,
  };
}
