#!/usr/bin/env python3
"""Independent check of an exported model: score token-id sequences with PyTorch.

Loads a `trainer export` folder (Hugging Face GPT-2 layout: config.json + model.safetensors) into a
plain PyTorch GPT-2 (pre-LayerNorm, learned positions, tanh GELU, tied head, biases: the same
architecture as /work/shared/bench/torch_gpt.py), scores every sequence of a JSON array of token-id
sequences as `trainer eval --token-ids` does, and prints {"loss": ..., "perplexity": ..., "tokens": ...}.

  /usr/bin/python3 scripts/crosscheck/torch_eval.py EXPORT_DIR ids.json
  (Debian's python3-torch; /work/shared/bench/peers.sh installs it.)
"""
import json, math, struct, sys
import torch, torch.nn.functional as F


def read_safetensors(path):
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in header.items():
        if name == '__metadata__':
            continue
        assert t['dtype'] == 'F32', t
        begin, end = t['data_offsets']
        out[name] = torch.frombuffer(bytearray(data[base + begin:base + end]), dtype=torch.float32).reshape(t['shape'])
    return out


def block(x, w, i, heads, eps):
    p = lambda k: w[f'h.{i}.{k}']
    B, T, C = x.shape
    h = F.layer_norm(x, (C,), p('ln_1.weight'), p('ln_1.bias'), eps)
    qkv = h @ p('attn.c_attn.weight') + p('attn.c_attn.bias')  # Conv1D: [in, out]
    q, k, v = [t.view(B, T, heads, C // heads).transpose(1, 2) for t in qkv.split(C, 2)]
    att = (q @ k.transpose(-2, -1)) / math.sqrt(C // heads)
    att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float('-inf')).softmax(-1)
    y = (att @ v).transpose(1, 2).reshape(B, T, C)
    x = x + y @ p('attn.c_proj.weight') + p('attn.c_proj.bias')
    h = F.layer_norm(x, (C,), p('ln_2.weight'), p('ln_2.bias'), eps)
    h = F.gelu(h @ p('mlp.c_fc.weight') + p('mlp.c_fc.bias'), approximate='tanh')
    return x + h @ p('mlp.c_proj.weight') + p('mlp.c_proj.bias')


def main(export_dir, ids_path):
    cfg = json.load(open(f'{export_dir}/config.json'))
    w = read_safetensors(f'{export_dir}/model.safetensors')
    eps = cfg['layer_norm_epsilon']
    total, count = 0.0, 0
    with torch.no_grad():
        for seq in json.load(open(ids_path)):
            if len(seq) < 2:
                continue
            idx = torch.tensor(seq[:-1]).unsqueeze(0)
            tgt = torch.tensor(seq[1:])
            x = w['wte.weight'][idx] + w['wpe.weight'][: idx.shape[1]]
            for i in range(cfg['n_layer']):
                x = block(x, w, i, cfg['n_head'], eps)
            x = F.layer_norm(x, (cfg['n_embd'],), w['ln_f.weight'], w['ln_f.bias'], eps)
            logits = x[0] @ w['wte.weight'].t()
            total += F.cross_entropy(logits.double(), tgt, reduction='sum').item()
            count += len(seq) - 1
    loss = total / count
    print(json.dumps(dict(loss=loss, perplexity=math.exp(loss), tokens=count)))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
