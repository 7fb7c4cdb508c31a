#!/usr/bin/env python3
"""An independent reference forward pass for causal language models in the Hugging Face layout.

    python3 scripts/hf_reference_forward.py MODEL_DIR [--adapter PEFT_DIR] < '{"tokens": [[1, 2, 3], [4, 5, 6]]}'

MODEL_DIR holds config.json and either model.safetensors or model.safetensors.index.json (a
sharded model: {"weight_map": {tensor name: shard file}}). stdin is one JSON object whose "tokens"
is a batch of equal-length, non-empty token-id sequences; stdout is one JSON object
{"logits": [[[V values] for each position] for each sequence]}: the logits of every position,
computed in float64 and printed as float32 values ("%.9g", which a float32 reads back exactly).
Errors (bad input, an unsupported model) go to stderr with exit status 2.

It is written from the published model definitions, not from this trainer's code, so that tests
can check the trainer's exports against it:
  model_type "gpt2"   GPT2LMHeadModel (Radford et al. 2019; Hugging Face modeling_gpt2.py)
  model_type "llama"  LlamaForCausalLM (Touvron et al. 2023; Llama 3.1's RoPE scaling;
                      Hugging Face modeling_llama.py and modeling_rope_utils.py)
  --adapter           a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) applied
                      as PEFT's LoraLayer defines it (peft/tuners/lora/layer.py, Linear.forward):
                      result = base_layer(x) + lora_B(lora_A(dropout(x))) * scaling, with
                      scaling = lora_alpha / r, lora_A.weight [r, in], lora_B.weight [out, r]
                      (dropout is the identity at inference); Llama's nn.Linear targets only.
Every other model type is refused. The safetensors files are parsed here (8-byte little-endian
header length, JSON header, raw little-endian data; F32, F16, BF16 and F64), with numpy and torch
only: no safetensors or transformers package. Needs Debian's python3-torch (scripts/setup.sh
installs it; Debian's torch lives in /usr/bin/python3's dist-packages).
"""
import json
import math
import os
import sys

try:
    import numpy as np
    import torch
except ImportError as err:  # pragma: no cover - depends on the machine
    sys.stderr.write(f"hf_reference_forward: {err}; run scripts/setup.sh (installs Debian's python3-torch for /usr/bin/python3)\n")
    sys.exit(3)

F64 = torch.float64


class Refused(Exception):
    """Bad input or an unsupported model: reported on stderr, exit status 2."""


# ---------------------------------------------------------------------------------------------
# safetensors

def read_safetensors(path):
    """{name: float64 torch tensor} of one safetensors file."""
    with open(path, 'rb') as f:
        raw = f.read()
    if len(raw) < 8:
        raise Refused(f'{path}: too short for a safetensors file')
    n = int.from_bytes(raw[:8], 'little')
    if n > len(raw) - 8:
        raise Refused(f'{path}: header length {n} runs past the end of the file')
    header = json.loads(raw[8:8 + n].decode('utf-8'))
    data = memoryview(raw)[8 + n:]
    out = {}
    for name, entry in header.items():
        if name == '__metadata__':
            continue
        dtype, shape, (begin, end) = entry['dtype'], list(entry['shape']), entry['data_offsets']
        if not (0 <= begin <= end <= len(data)):
            raise Refused(f'{path}: {name} has data offsets [{begin}, {end}) outside the data ({len(data)} bytes)')
        count = math.prod(shape)
        chunk = data[begin:end]
        if dtype == 'F32':
            values = np.frombuffer(chunk, dtype='<f4')
        elif dtype == 'F64':
            values = np.frombuffer(chunk, dtype='<f8')
        elif dtype == 'F16':
            values = np.frombuffer(chunk, dtype='<f2')
        elif dtype == 'BF16':
            # bfloat16 is the high half of a float32
            values = (np.frombuffer(chunk, dtype='<u2').astype(np.uint32) << 16).view(np.float32)
        else:
            raise Refused(f'{path}: {name} has dtype {dtype}; this reader takes F32, F64, F16 and BF16')
        if values.size != count:
            raise Refused(f'{path}: {name} has {values.size} values for shape {shape}')
        out[name] = torch.from_numpy(values.astype(np.float64).reshape(shape))
    return out


def read_weights(model_dir):
    """Every tensor of the model: model.safetensors, or the shards of model.safetensors.index.json."""
    single = os.path.join(model_dir, 'model.safetensors')
    index = os.path.join(model_dir, 'model.safetensors.index.json')
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)['weight_map']
        tensors = {}
        for file in sorted(set(weight_map.values())):
            shard = read_safetensors(os.path.join(model_dir, file))
            for name, tensor in shard.items():
                if weight_map.get(name) == file:
                    tensors[name] = tensor
        missing = sorted(name for name in weight_map if name not in tensors)
        if missing:
            raise Refused(f'{index} maps {missing[0]} (and {len(missing) - 1} more) to shards that lack it')
        return tensors
    if os.path.exists(single):
        return read_safetensors(single)
    raise Refused(f'{model_dir} holds neither model.safetensors nor model.safetensors.index.json')


class Weights:
    def __init__(self, tensors, prefixes=('',)):
        self.tensors = tensors
        self.prefixes = prefixes

    def has(self, name):
        return any(p + name in self.tensors for p in self.prefixes)

    def get(self, name, shape):
        for p in self.prefixes:
            if p + name in self.tensors:
                t = self.tensors[p + name]
                if list(t.shape) != list(shape):
                    raise Refused(f'{p + name} has shape {list(t.shape)}; the config needs {list(shape)}')
                return t
        raise Refused(f'the model lacks the tensor {name}')


# ---------------------------------------------------------------------------------------------
# shared pieces

def causal_attention(q, k, v, scale):
    """q [B, H, T, D], k and v [B, H, T, D]: softmax(q k^T * scale, causal) v -> [B, H, T, D]."""
    T = q.shape[2]
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(future, float('-inf'))
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)  # biased variance, as torch.nn.LayerNorm
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def rms_norm(x, weight, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * weight


# ---------------------------------------------------------------------------------------------
# GPT-2 (GPT2LMHeadModel)

def gelu(x, kind):
    if kind in ('gelu_new', 'gelu_pytorch_tanh', 'gelu_fast'):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if kind == 'gelu':
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    raise Refused(f'GPT-2 activation_function {kind!r} is not supported (gelu_new, gelu_pytorch_tanh, gelu)')


def gpt2_logits(cfg, w, tokens):
    C, L, H = cfg['n_embd'], cfg['n_layer'], cfg['n_head']
    V, P = cfg['vocab_size'], cfg.get('n_positions', cfg.get('n_ctx'))
    F = cfg.get('n_inner') or 4 * C
    eps = cfg.get('layer_norm_epsilon', 1e-5)
    act = cfg.get('activation_function', 'gelu_new')
    if C % H:
        raise Refused(f'n_embd {C} is not a multiple of n_head {H}')
    D = C // H
    B, T = tokens.shape
    if T > P:
        raise Refused(f'sequences of {T} tokens are longer than n_positions {P}')
    w = Weights(w, ('', 'transformer.'))
    x = w.get('wte.weight', [V, C])[tokens] + w.get('wpe.weight', [P, C])[:T]
    for i in range(L):
        p = f'h.{i}.'
        a = layer_norm(x, w.get(p + 'ln_1.weight', [C]), w.get(p + 'ln_1.bias', [C]), eps)
        # Conv1D: y = x W + b with W [in, out]; q, k, v side by side on the output axis
        qkv = a @ w.get(p + 'attn.c_attn.weight', [C, 3 * C]) + w.get(p + 'attn.c_attn.bias', [3 * C])
        q, k, v = (t.reshape(B, T, H, D).transpose(1, 2) for t in qkv.split(C, dim=-1))
        scale = 1.0 / math.sqrt(D) if cfg.get('scale_attn_weights', True) else 1.0
        if cfg.get('scale_attn_by_inverse_layer_idx', False):
            scale /= float(i + 1)
        y = causal_attention(q, k, v, scale).transpose(1, 2).reshape(B, T, C)
        x = x + y @ w.get(p + 'attn.c_proj.weight', [C, C]) + w.get(p + 'attn.c_proj.bias', [C])
        m = layer_norm(x, w.get(p + 'ln_2.weight', [C]), w.get(p + 'ln_2.bias', [C]), eps)
        m = gelu(m @ w.get(p + 'mlp.c_fc.weight', [C, F]) + w.get(p + 'mlp.c_fc.bias', [F]), act)
        x = x + m @ w.get(p + 'mlp.c_proj.weight', [F, C]) + w.get(p + 'mlp.c_proj.bias', [C])
    x = layer_norm(x, w.get('ln_f.weight', [C]), w.get('ln_f.bias', [C]), eps)
    if cfg.get('tie_word_embeddings', True):
        head = w.get('wte.weight', [V, C])
    else:
        head = Weights(w.tensors).get('lm_head.weight', [V, C])
    return x @ head.T


# ---------------------------------------------------------------------------------------------
# Llama (LlamaForCausalLM)

def llama_inv_freq(cfg, D):
    theta = float(cfg.get('rope_theta', 10000.0))
    inv_freq = 1.0 / theta ** (torch.arange(0, D, 2, dtype=F64) / D)
    scaling = cfg.get('rope_scaling')
    if not scaling:
        return inv_freq
    kind = scaling.get('rope_type', scaling.get('type'))
    if kind == 'default':
        return inv_freq
    if kind != 'llama3':
        raise Refused(f'rope_scaling of type {kind!r} is not supported (default, llama3)')
    # Llama 3.1: long wavelengths divided by factor, short ones kept, a smooth blend between.
    factor = float(scaling['factor'])
    low, high = float(scaling['low_freq_factor']), float(scaling['high_freq_factor'])
    old_context = float(scaling['original_max_position_embeddings'])
    low_freq_wavelen, high_freq_wavelen = old_context / low, old_context / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_context / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return torch.where(medium, smoothed, scaled)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def read_adapter(adapter_dir):
    """(scaling, {module name: (lora_A [r, in], lora_B [out, r])}) of a PEFT LoRA adapter folder."""
    with open(os.path.join(adapter_dir, 'adapter_config.json')) as f:
        acfg = json.load(f)
    if acfg.get('peft_type') != 'LORA':
        raise Refused(f"{adapter_dir}: peft_type {acfg.get('peft_type')!r} is not LORA")
    if acfg.get('fan_in_fan_out') or acfg.get('use_rslora') or acfg.get('use_dora'):
        raise Refused(f'{adapter_dir}: fan_in_fan_out, rsLoRA and DoRA are not supported')
    tensors = read_safetensors(os.path.join(adapter_dir, 'adapter_model.safetensors'))
    modules = {}
    prefix = 'base_model.model.'
    for name, t in tensors.items():
        for part in ('lora_A', 'lora_B'):
            suffix = f'.{part}.weight'
            if name.startswith(prefix) and name.endswith(suffix):
                module = name[len(prefix):-len(suffix)]
                pair = modules.setdefault(module, {})
                pair[part] = t
    out = {}
    targets = set(acfg.get('target_modules') or [])
    for module, pair in modules.items():
        if set(pair) != {'lora_A', 'lora_B'}:
            raise Refused(f'{adapter_dir}: {module} lacks lora_A or lora_B')
        if module.rsplit('.', 1)[-1] not in targets:
            raise Refused(f'{adapter_dir}: {module} is not among target_modules {sorted(targets)}')
        out[module] = (pair['lora_A'], pair['lora_B'])
    return acfg['lora_alpha'] / acfg['r'], out


def llama_logits(cfg, w, tokens, adapter=None):
    C, L, H = cfg['hidden_size'], cfg['num_hidden_layers'], cfg['num_attention_heads']
    V, F = cfg['vocab_size'], cfg['intermediate_size']
    KV = cfg.get('num_key_value_heads') or H
    D = cfg.get('head_dim') or C // H
    eps = cfg.get('rms_norm_eps', 1e-6)
    if cfg.get('hidden_act', 'silu') != 'silu':
        raise Refused(f"Llama hidden_act {cfg.get('hidden_act')!r} is not supported (silu)")
    if H % KV:
        raise Refused(f'num_attention_heads {H} is not a multiple of num_key_value_heads {KV}')
    attention_bias, mlp_bias = cfg.get('attention_bias', False), cfg.get('mlp_bias', False)
    B, T = tokens.shape
    w = Weights(w)

    scaling, lora = adapter if adapter else (0.0, {})
    used = set()

    def linear(x, name, out_features, in_features, bias):
        # nn.Linear: weight [out, in], y = x W^T (+ b)
        y = x @ w.get(name + '.weight', [out_features, in_features]).T
        y = y + w.get(name + '.bias', [out_features]) if bias else y
        if name in lora:
            # PEFT's LoRA Linear: + lora_B(lora_A(x)) * scaling
            a, b = lora[name]
            y = y + (x @ a.T) @ b.T * scaling
            used.add(name)
        return y

    freqs = torch.outer(torch.arange(T, dtype=F64), llama_inv_freq(cfg, D))  # [T, D/2]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()  # [T, D], broadcast over [B, heads, T, D]

    x = w.get('model.embed_tokens.weight', [V, C])[tokens]
    for i in range(L):
        p = f'model.layers.{i}.'
        a = rms_norm(x, w.get(p + 'input_layernorm.weight', [C]), eps)
        q = linear(a, p + 'self_attn.q_proj', H * D, C, attention_bias).reshape(B, T, H, D).transpose(1, 2)
        k = linear(a, p + 'self_attn.k_proj', KV * D, C, attention_bias).reshape(B, T, KV, D).transpose(1, 2)
        v = linear(a, p + 'self_attn.v_proj', KV * D, C, attention_bias).reshape(B, T, KV, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # grouped-query attention: kv head j serves query heads j*H/KV .. (j+1)*H/KV - 1
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        y = causal_attention(q, k, v, 1.0 / math.sqrt(D)).transpose(1, 2).reshape(B, T, H * D)
        x = x + linear(y, p + 'self_attn.o_proj', C, H * D, attention_bias)
        m = rms_norm(x, w.get(p + 'post_attention_layernorm.weight', [C]), eps)
        gate = linear(m, p + 'mlp.gate_proj', F, C, mlp_bias)
        up = linear(m, p + 'mlp.up_proj', F, C, mlp_bias)
        x = x + linear(torch.nn.functional.silu(gate) * up, p + 'mlp.down_proj', C, F, mlp_bias)
    if set(lora) - used:
        raise Refused(f'adapter modules not in the model: {sorted(set(lora) - used)}')
    x = rms_norm(x, w.get('model.norm.weight', [C]), eps)
    if cfg.get('tie_word_embeddings', False):
        head = w.get('model.embed_tokens.weight', [V, C])
    else:
        head = w.get('lm_head.weight', [V, C])
    return x @ head.T


# ---------------------------------------------------------------------------------------------

ARCHITECTURES = {'gpt2': gpt2_logits, 'llama': llama_logits}


def read_tokens(request, vocab):
    tokens = request.get('tokens') if isinstance(request, dict) else None
    if not isinstance(tokens, list) or not tokens or not all(isinstance(s, list) and s for s in tokens):
        raise Refused('stdin must be {"tokens": [[id, ...], ...]}: a non-empty batch of non-empty sequences')
    if len({len(s) for s in tokens}) != 1:
        raise Refused('the sequences must all have the same length')
    for s in tokens:
        for t in s:
            if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < vocab:
                raise Refused(f'token id {t!r} is not an integer in [0, {vocab})')
    return torch.tensor(tokens, dtype=torch.long)


def format_logits(logits):
    values = logits.to(torch.float32).numpy()
    if not np.isfinite(values).all():
        raise Refused('the logits are not all finite')
    return '{"logits": [' + ', '.join(
        '[' + ', '.join('[' + ','.join('%.9g' % v for v in row.tolist()) + ']' for row in seq) + ']'
        for seq in values) + ']}\n'


def main(argv):
    adapter_dir = None
    if len(argv) == 4 and argv[2] == '--adapter':
        adapter_dir = argv[3]
        argv = argv[:2]
    if len(argv) != 2 or argv[1].startswith('-'):
        raise Refused('usage: hf_reference_forward.py MODEL_DIR [--adapter PEFT_DIR] < {"tokens": [[...], ...]}  (prints {"logits": [[[...]]]})')
    model_dir = argv[1]
    with open(os.path.join(model_dir, 'config.json')) as f:
        cfg = json.load(f)
    kind = cfg.get('model_type')
    if kind not in ARCHITECTURES:
        raise Refused(f'model_type {kind!r} is not supported; this reference knows {sorted(ARCHITECTURES)}')
    tokens = read_tokens(json.load(sys.stdin), cfg['vocab_size'])
    with torch.no_grad():
        if adapter_dir is None:
            logits = ARCHITECTURES[kind](cfg, read_weights(model_dir), tokens)
        elif kind == 'llama':
            logits = llama_logits(cfg, read_weights(model_dir), tokens, read_adapter(adapter_dir))
        else:
            raise Refused(f'--adapter: LoRA adapters are supported for llama models, not {kind!r}')
    sys.stdout.write(format_logits(logits))


if __name__ == '__main__':
    try:
        main(sys.argv)
    except (Refused, OSError, ValueError, KeyError) as err:
        what = f'missing {err}' if isinstance(err, KeyError) else str(err)
        sys.stderr.write(f'hf_reference_forward: {what}\n')
        sys.exit(2)
