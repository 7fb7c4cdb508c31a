import { describe, expect, it } from 'vitest';
import { MODEL_CONFIGS, resolveModelConfig } from './config.js';
import { flopsPerToken } from './flops.js';
import { paramLayout, parameterCount } from './layout.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe('model configs', () => {
  it('has the benchmark shape, a ~10M model and GPT-2 small', () => {
    expect(MODEL_CONFIGS['gpt-nano']).toEqual({ vocabSize: 2048, contextLength: 128, layers: 4, heads: 4, dModel: 128, layerNormEps: 1e-5 });
    expect(parameterCount(MODEL_CONFIGS['gpt-nano'])).toBe(1_071_872); // torch_gpt.py prints the same
    const mini = parameterCount(MODEL_CONFIGS['gpt-mini']);
    expect(mini).toBeGreaterThan(9e6);
    expect(mini).toBeLessThan(11e6);
    expect(parameterCount(MODEL_CONFIGS['gpt2-124m'])).toBe(124_439_808); // Hugging Face gpt2
    expect(parameterCount(MODEL_CONFIGS['gpt2-1.5b'])).toBe(1_557_611_200); // Hugging Face gpt2-xl
    expect(parameterCount(MODEL_CONFIGS['gpt-6.7b'])).toBe(6_658_404_352);
    expect(parameterCount(MODEL_CONFIGS['gpt-30b'])).toBe(29_974_418_432);
  });

  it('resolves a name with overrides and validates the result', () => {
    expect(resolveModelConfig('gpt-nano', { layers: 2, contextLength: undefined }).layers).toBe(2);
    expect(codeOf(() => resolveModelConfig('gpt-huge'))).toBe('TRAINER_ERR_UNKNOWN_MODEL');
    expect(() => resolveModelConfig('gpt-huge')).toThrow(/unknown model 'gpt-huge'/);
    try {
      resolveModelConfig('nope');
    } catch (err) {
      expect((err as { hint?: string }).hint).toContain('gpt-nano');
      expect((err as { hint?: string }).hint).toContain('gpt2-124m');
    }
    expect(codeOf(() => resolveModelConfig('gpt-nano', { heads: 3 }))).toBe('TRAINER_ERR_MODEL_CONFIG');
    expect(codeOf(() => resolveModelConfig('gpt-nano', { layers: 0 }))).toBe('TRAINER_ERR_MODEL_CONFIG');
    expect(codeOf(() => resolveModelConfig('gpt-nano', { dModel: 12.5 }))).toBe('TRAINER_ERR_MODEL_CONFIG');
    expect(codeOf(() => resolveModelConfig('gpt-nano', { layerNormEps: 0 }))).toBe('TRAINER_ERR_MODEL_CONFIG');
    expect(codeOf(() => resolveModelConfig('toString'))).toBe('TRAINER_ERR_UNKNOWN_MODEL');
  });
});

describe('paramLayout', () => {
  it('uses Hugging Face GPT-2 names, order and [in, out] orientation, contiguously', () => {
    const layout = paramLayout(MODEL_CONFIGS['gpt-nano']);
    const names = layout.entries.map((e) => e.name);
    expect(names.slice(0, 4)).toEqual(['wte.weight', 'wpe.weight', 'h.0.ln_1.weight', 'h.0.ln_1.bias']);
    expect(names.slice(2, 14)).toEqual([
      'h.0.ln_1.weight', 'h.0.ln_1.bias', 'h.0.attn.c_attn.weight', 'h.0.attn.c_attn.bias', 'h.0.attn.c_proj.weight',
      'h.0.attn.c_proj.bias', 'h.0.ln_2.weight', 'h.0.ln_2.bias', 'h.0.mlp.c_fc.weight', 'h.0.mlp.c_fc.bias',
      'h.0.mlp.c_proj.weight', 'h.0.mlp.c_proj.bias',
    ]);
    expect(names.slice(-2)).toEqual(['ln_f.weight', 'ln_f.bias']);
    const byName = new Map(layout.entries.map((e) => [e.name, e]));
    expect(byName.get('wte.weight')?.shape).toEqual([2048, 128]);
    expect(byName.get('h.3.attn.c_attn.weight')?.shape).toEqual([128, 384]);
    expect(byName.get('h.3.mlp.c_proj.weight')?.shape).toEqual([512, 128]);
    let offset = 0;
    for (const e of layout.entries) {
      expect(e.offset).toBe(offset);
      expect(e.size).toBe(e.shape.reduce((a, b) => a * b, 1));
      offset += e.size;
    }
    expect(layout.totalSize).toBe(offset);
    expect(layout.blockRanges).toHaveLength(4);
    layout.blockRanges.forEach((r, i) => {
      const inBlock = layout.entries.filter((e) => e.block === i);
      expect(r.start).toBe(inBlock[0].offset);
      expect(r.end).toBe(inBlock[inBlock.length - 1].offset + inBlock[inBlock.length - 1].size);
    });
    expect(byName.get('wpe.weight')?.block).toBe(-1);
    expect(byName.get('ln_f.bias')?.block).toBe(4);
  });
});

describe('flopsPerToken', () => {
  it('is 6 N + 6 C V + 12 L C T', () => {
    const c = MODEL_CONFIGS['gpt-nano'];
    expect(flopsPerToken(c, 128)).toBe(6 * 12 * 4 * 128 * 128 + 6 * 128 * 2048 + 12 * 4 * 128 * 128);
    expect(flopsPerToken(c, 64)).toBeLessThan(flopsPerToken(c, 128));
  });
});
