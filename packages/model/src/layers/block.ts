/**
 * One pre-LayerNorm transformer block (GPT-2):
 *
 *   x2 = x  + c_proj(attention(c_attn(ln_1(x))))
 *   y  = x2 + mlp.c_proj(gelu(mlp.c_fc(ln_2(x2))))
 *
 * forward/backward follow the layer contract of layer.ts; backward returns the gradients keyed by
 * Hugging Face local names ('ln_1.weight', 'attn.c_attn.weight', ...).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Profiler } from '../profiler.js';
import { timed } from '../profiler.js';
import type { BackwardResult, Layer, ParamGrads, Saved } from './layer.js';
import { disposeAll } from './layer.js';
import type { LayerNormParams } from './layernorm.js';
import type { LayerSet } from './layer-set.js';
import type { LinearParams } from './linear.js';
import type { PackedRows } from './segment-mask.js';

export interface BlockParams {
  ln1: LayerNormParams;
  cAttn: LinearParams; // [C, 3C]
  cProj: LinearParams; // [C, C]
  ln2: LayerNormParams;
  cFc: LinearParams; // [C, 4C]
  mlpProj: LinearParams; // [4C, C]
}

export class BlockSaved implements Saved {
  constructor(readonly parts: { ln1: Saved; cAttn: Saved; attn: Saved; cProj: Saved; ln2: Saved; cFc: Saved; gelu: Saved; mlpProj: Saved }) {}

  release(): void {
    for (const s of Object.values(this.parts)) s.release();
  }
}

/** A block's parameter gradients, keyed by Hugging Face local names, from its layers' gradients. */
export function blockGrads(g: Record<'ln1' | 'qkv' | 'proj' | 'ln2' | 'fc' | 'mlp', { dParams: ParamGrads }>): ParamGrads {
  const out: ParamGrads = {};
  const put = (prefix: string, r: { dParams: ParamGrads }): void => {
    // weight and bias under the layout's names; a LoRA adapter's lora_A / lora_B beside them; a frozen linear (lora-linear.ts) has neither weight nor bias
    for (const [key, v] of Object.entries(r.dParams)) out[`${prefix}.${key === 'weight' || key === 'bias' ? key : `${key}.weight`}`] = v;
  };
  put('ln_1', g.ln1);
  put('attn.c_attn', g.qkv);
  put('attn.c_proj', g.proj);
  put('ln_2', g.ln2);
  put('mlp.c_fc', g.fc);
  put('mlp.c_proj', g.mlp);
  return out;
}

export class Block implements Layer<BlockParams, BlockSaved> {
  private readonly ln1: Layer<LayerNormParams, Saved>;
  private readonly ln2: Layer<LayerNormParams, Saved>;
  private readonly cAttn: Layer<LinearParams, Saved>;
  private readonly attn: Layer<PackedRows | null, Saved>;
  private readonly cProj: Layer<LinearParams, Saved>;
  private readonly cFc: Layer<LinearParams, Saved>;
  private readonly gelu: Layer<null, Saved>;
  private readonly mlpProj: Layer<LinearParams, Saved>;

  constructor(layers: LayerSet, profiler?: Profiler) {
    this.ln1 = timed('ln', layers.layerNorm, profiler);
    this.ln2 = this.ln1;
    this.cAttn = timed('attn.c_attn', layers.linear, profiler);
    this.attn = timed('attn.core', layers.attention, profiler);
    this.cProj = timed('attn.c_proj', layers.linear, profiler);
    this.cFc = timed('mlp.c_fc', layers.linear, profiler);
    this.gelu = timed('mlp.gelu', layers.gelu, profiler);
    this.mlpProj = timed('mlp.c_proj', layers.linear, profiler);
  }

  /**
   * x [B, T, C] -> y [B, T, C]. Each intermediate is freed right after its last use (the layers
   * keep their own handles on what they save), so at most one layer's output waits beside the
   * residual stream. `packed`: rows of several sequences, attention kept within each (segment-mask.ts).
   */
  forward(p: BlockParams, x: tf.Tensor, train = true, packed: PackedRows | null = null): { y: tf.Tensor; saved: BlockSaved } {
    const ln1 = this.ln1.forward(p.ln1, x, train);
    const qkv = this.cAttn.forward(p.cAttn, ln1.y, train); // [B, T, 3C]
    ln1.y.dispose();
    const attn = this.attn.forward(packed, qkv.y, train); // [B, T, C]
    qkv.y.dispose();
    const proj = this.cProj.forward(p.cProj, attn.y, train);
    attn.y.dispose();
    const x2 = tf.add(x, proj.y);
    proj.y.dispose();
    const ln2 = this.ln2.forward(p.ln2, x2, train);
    const fc = this.cFc.forward(p.cFc, ln2.y, train); // [B, T, 4C]
    ln2.y.dispose();
    const act = this.gelu.forward(null, fc.y, train);
    fc.y.dispose();
    const mlp = this.mlpProj.forward(p.mlpProj, act.y, train); // [B, T, C]
    act.y.dispose();
    const y = tf.add(x2, mlp.y);
    disposeAll(x2, mlp.y);
    const saved = new BlockSaved({
      ln1: ln1.saved,
      cAttn: qkv.saved,
      attn: attn.saved,
      cProj: proj.saved,
      ln2: ln2.saved,
      cFc: fc.saved,
      gelu: act.saved,
      mlpProj: mlp.saved,
    });
    return { y, saved };
  }

  /** dy [B, T, C] -> dx [B, T, C] and the block's parameter gradients (each input gradient freed once used). */
  backward(p: BlockParams, saved: BlockSaved, dy: tf.Tensor): BackwardResult {
    const s = saved.parts;
    try {
      const mlp = this.mlpProj.backward(p.mlpProj, s.mlpProj, dy);
      const act = this.gelu.backward(null, s.gelu, mlp.dx);
      mlp.dx.dispose();
      const fc = this.cFc.backward(p.cFc, s.cFc, act.dx);
      act.dx.dispose();
      const ln2 = this.ln2.backward(p.ln2, s.ln2, fc.dx);
      fc.dx.dispose();
      const dx2 = tf.add(dy, ln2.dx); // residual: both branches reach x2
      ln2.dx.dispose();
      const proj = this.cProj.backward(p.cProj, s.cProj, dx2);
      const attn = this.attn.backward(null, s.attn, proj.dx);
      proj.dx.dispose();
      const qkv = this.cAttn.backward(p.cAttn, s.cAttn, attn.dx);
      attn.dx.dispose();
      const ln1 = this.ln1.backward(p.ln1, s.ln1, qkv.dx);
      qkv.dx.dispose();
      const dx = tf.add(dx2, ln1.dx);
      disposeAll(dx2, ln1.dx);
      return { dx, dParams: blockGrads({ ln1, qkv, proj, ln2, fc, mlp }) };
    } finally {
      saved.release(); // no-op for the parts already consumed; frees the rest if a step threw
    }
  }
}
