/**
 * The Hugging Face layout of both families: each tensor of this trainer's flat layout with its
 * name in a Hugging Face checkpoint and whether it is stored transposed there, and the
 * config.json of GPT2LMHeadModel / LlamaForCausalLM both ways.
 *
 *   gpt2   names as in GPT2LMHeadModel without "transformer." (the flat layout uses them), Conv1D
 *          orientation [in, out] as ours: a straight copy.
 *   llama  model.embed_tokens.weight, model.layers.{i}.input_layernorm.weight,
 *          self_attn.{q,k,v,o}_proj.weight, post_attention_layernorm.weight,
 *          mlp.{gate,up,down}_proj.weight, model.norm.weight, lm_head.weight (untied only);
 *          nn.Linear stores W [out, in], our linears [in, out]: those are transposed.
 */
import { TrainerError } from '@trainer/errors';
import { ModelErrorCode } from './codes.js';
import type { GPTConfig, RopeScaling } from './config.js';
import { familyOf, ffnHiddenOf, isTiedHead, kvHeadsOf, validateConfig } from './config.js';
import type { ParamEntry } from './layout.js';
import { paramLayout } from './layout.js';

export interface HfTensor {
  /** Our flat layout's entry. */
  entry: ParamEntry;
  /** The tensor's name in a Hugging Face checkpoint. */
  hfName: string;
  /** Its shape there. */
  hfShape: number[];
  /** Stored transposed there (Llama's nn.Linear weights). */
  transposed: boolean;
}

const LLAMA_BLOCK_NAMES: Record<string, string> = {
  'ln_1.weight': 'input_layernorm.weight',
  'attn.q_proj.weight': 'self_attn.q_proj.weight',
  'attn.k_proj.weight': 'self_attn.k_proj.weight',
  'attn.v_proj.weight': 'self_attn.v_proj.weight',
  'attn.o_proj.weight': 'self_attn.o_proj.weight',
  'ln_2.weight': 'post_attention_layernorm.weight',
  'mlp.gate_proj.weight': 'mlp.gate_proj.weight',
  'mlp.up_proj.weight': 'mlp.up_proj.weight',
  'mlp.down_proj.weight': 'mlp.down_proj.weight',
};

/** Our name -> Hugging Face name (and whether transposed) for one tensor of a config's family. */
export function hfNameOf(config: GPTConfig, name: string): { hfName: string; transposed: boolean } {
  if (familyOf(config) !== 'llama') return { hfName: name, transposed: false };
  if (name === 'wte.weight') return { hfName: 'model.embed_tokens.weight', transposed: false };
  if (name === 'ln_f.weight') return { hfName: 'model.norm.weight', transposed: false };
  if (name === 'lm_head.weight') return { hfName: 'lm_head.weight', transposed: false };
  const m = /^h\.(\d+)\.(.+)$/.exec(name);
  const local = m ? LLAMA_BLOCK_NAMES[m[2]] : undefined;
  if (!m || local === undefined) throw new Error(`internal: no Hugging Face name for ${name}`);
  return { hfName: `model.layers.${m[1]}.${local}`, transposed: m[2].endsWith('_proj.weight') };
}

/** Every tensor of the model in layout order, with its Hugging Face name, shape and orientation. */
export function hfTensors(config: GPTConfig): HfTensor[] {
  return paramLayout(config).entries.map((entry) => {
    const { hfName, transposed } = hfNameOf(config, entry.name);
    return { entry, hfName, hfShape: transposed ? [entry.shape[1], entry.shape[0]] : entry.shape.slice(), transposed };
  });
}

/** config.json for Hugging Face transformers (GPT2LMHeadModel or LlamaForCausalLM). */
export function hfConfigJson(c: GPTConfig, torchDtype: 'float32' | 'bfloat16' = 'float32'): Record<string, unknown> {
  if (familyOf(c) !== 'llama') {
    return {
      architectures: ['GPT2LMHeadModel'], model_type: 'gpt2',
      vocab_size: c.vocabSize, n_positions: c.contextLength, n_ctx: c.contextLength, n_embd: c.dModel, n_layer: c.layers, n_head: c.heads,
      n_inner: null, activation_function: 'gelu_new', layer_norm_epsilon: c.layerNormEps,
      resid_pdrop: 0.0, embd_pdrop: 0.0, attn_pdrop: 0.0, initializer_range: 0.02, scale_attn_weights: true,
      tie_word_embeddings: true, use_cache: true, torch_dtype: torchDtype,
    };
  }
  const s = c.ropeScaling;
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama',
    vocab_size: c.vocabSize, max_position_embeddings: c.contextLength, hidden_size: c.dModel, intermediate_size: ffnHiddenOf(c),
    num_hidden_layers: c.layers, num_attention_heads: c.heads, num_key_value_heads: kvHeadsOf(c), head_dim: c.dModel / c.heads,
    hidden_act: 'silu', rms_norm_eps: c.layerNormEps, rope_theta: c.ropeTheta ?? 10000,
    rope_scaling: s ? { rope_type: 'llama3', factor: s.factor, low_freq_factor: s.lowFreqFactor, high_freq_factor: s.highFreqFactor, original_max_position_embeddings: s.originalMaxPositions } : null,
    attention_bias: false, attention_dropout: 0.0, mlp_bias: false, initializer_range: 0.02,
    tie_word_embeddings: isTiedHead(c), use_cache: true, torch_dtype: torchDtype,
  };
}

function refuse(where: string, what: string, hint: string): TrainerError {
  return new TrainerError(ModelErrorCode.MODEL_CONFIG, `${where}: ${what}`, { hint });
}

/**
 * A Hugging Face config.json (model_type gpt2 or llama; mistral, qwen2 and other Llama-shaped
 * types are not read) as this trainer's GPTConfig. Refuses what the model here cannot compute
 * (biases, another activation, another RoPE scaling, sliding windows), naming the key.
 */
export function configFromHf(c: Record<string, unknown>, where = 'config.json'): GPTConfig {
  const int = (k: string, fallback?: number): number => {
    const v = c[k] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw refuse(where, `${k} is missing or not a positive integer`, 'pass the config.json of a Hugging Face GPT-2 or Llama model');
    return v;
  };
  const type = c.model_type;
  let config: GPTConfig;
  if (type === 'gpt2') {
    if (c.n_inner !== undefined && c.n_inner !== null) throw refuse(where, `n_inner ${String(c.n_inner)} is not supported (the MLP is 4 x n_embd)`, 'export a model with n_inner null');
    if (c.activation_function !== undefined && c.activation_function !== 'gelu_new') throw refuse(where, `activation ${String(c.activation_function)} is not supported (tanh GELU, "gelu_new")`, 'use a GPT-2 model with activation_function gelu_new');
    config = {
      vocabSize: int('vocab_size'), contextLength: int('n_positions'), layers: int('n_layer'), heads: int('n_head'), dModel: int('n_embd'),
      layerNormEps: typeof c.layer_norm_epsilon === 'number' ? c.layer_norm_epsilon : 1e-5,
    };
  } else if (type === 'llama') {
    if (c.hidden_act !== undefined && c.hidden_act !== 'silu') throw refuse(where, `hidden_act ${String(c.hidden_act)} is not supported (SwiGLU with silu)`, 'use a Llama model with hidden_act silu');
    for (const k of ['attention_bias', 'mlp_bias']) if (c[k] === true) throw refuse(where, `${k} true is not supported (Llama linears without biases)`, 'use a model without biases');
    const heads = int('num_attention_heads');
    const dModel = int('hidden_size');
    if (c.head_dim !== undefined && c.head_dim !== null && c.head_dim !== dModel / heads) {
      throw refuse(where, `head_dim ${String(c.head_dim)} differs from hidden_size / num_attention_heads (${dModel / heads})`, 'only models with head_dim = hidden_size / heads are supported');
    }
    let ropeScaling: RopeScaling | undefined;
    const rs = c.rope_scaling as Record<string, unknown> | null | undefined;
    if (rs !== undefined && rs !== null) {
      const kind = rs.rope_type ?? rs.type;
      if (kind !== 'llama3') throw refuse(where, `rope_scaling of type ${String(kind)} is not supported`, 'only Llama 3.1\'s "llama3" scaling (or none) is supported');
      ropeScaling = {
        type: 'llama3', factor: Number(rs.factor), lowFreqFactor: Number(rs.low_freq_factor), highFreqFactor: Number(rs.high_freq_factor),
        originalMaxPositions: Number(rs.original_max_position_embeddings),
      };
    }
    config = {
      vocabSize: int('vocab_size'), contextLength: int('max_position_embeddings'), layers: int('num_hidden_layers'), heads, dModel,
      layerNormEps: typeof c.rms_norm_eps === 'number' ? c.rms_norm_eps : 1e-6,
      family: 'llama', kvHeads: int('num_key_value_heads', heads), ffnHidden: int('intermediate_size'),
      ropeTheta: typeof c.rope_theta === 'number' ? c.rope_theta : 10000, tiedHead: c.tie_word_embeddings === true,
    };
    if (ropeScaling) config.ropeScaling = ropeScaling;
  } else {
    throw new TrainerError(ModelErrorCode.MODEL_CONFIG, `${where}: model_type ${JSON.stringify(type)} is not supported`, {
      hint: 'this trainer reads Hugging Face GPT-2 (model_type gpt2) and Llama (model_type llama: Llama 2/3, SmolLM, TinyLlama) models',
    });
  }
  validateConfig(config, where);
  return config;
}
