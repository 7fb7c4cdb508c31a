/**
 * One Llama decoder layer (Touvron et al. 2023; Hugging Face LlamaDecoderLayer):
 *
 *   a  = attention(rope(ln_1(x) Wq), rope(ln_1(x) Wk), ln_1(x) Wv)      grouped-query: each of the
 *   x2 = x + a Wo                                                          KV heads serves H/KV
 *   y  = x2 + (silu(ln_2(x2) Wgate) * ln_2(x2) Wup) Wdown                  consecutive query heads
 *
 * with RMSNorms ln_1, ln_2 and no biases. The attention core is the kernel set's causal attention
 * over H query heads, fed q | repeat_kv(k) | repeat_kv(v) (the GPT-2 layout of c_attn's output),
 * so both kernel sets' attention (the host set's fused SIMD kernel included) serve both families.
 * repeat_kv's backward sums the gradients of the query heads sharing a KV head.
 *
 * Tensor parallel (Megatron-LM, as parallel-block.ts for GPT-2): with a group of T ranks, q, k, v,
 * gate and up are column-parallel (rank t holds H/T query heads, KV/T key/value heads and F/T
 * hidden columns), o and down row-parallel; their partial outputs are all-reduced in forward
 * (reduceFromTensorParallelRegion) and the column-parallel inputs' gradients in backward
 * (copyToTensorParallelRegion). Rank t's query heads [t H/T, (t+1) H/T) read exactly its KV heads
 * [t KV/T, (t+1) KV/T), so no KV head crosses ranks (KV % T == 0).
 *
 * The linears run the kernel set's Linear with zero biases held by the parameters (Llama has
 * none); their bias gradients are dropped. Gradients are keyed by the layout's local names.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Profiler } from '../profiler.js';
import { timed } from '../profiler.js';
import { copyToTensorParallelRegionBackward, reduceFromTensorParallelRegionForward, type TensorParallelGroup } from '../tensor-parallel/mappings.js';
import type { BackwardResult, GradValue, Layer, ParamGrads, Saved } from './layer.js';
import { disposeAll, share } from './layer.js';
import type { LayerSet } from './layer-set.js';
import type { LinearParams } from './linear.js';
import { LoraLinear } from './lora-linear.js';
import type { RMSNormParams } from './rmsnorm.js';
import { RMSNorm } from './rmsnorm.js';
import type { RotaryEmbedding } from './rope.js';
import type { PackedRows } from './segment-mask.js';
import type { SwiGLUSaved } from './swiglu.js';
import { swigluBackward, swigluForward } from './swiglu.js';

export interface LlamaBlockParams {
  ln1: RMSNormParams;
  q: LinearParams; // [C, H D] (this rank's heads)
  k: LinearParams; // [C, KV D]
  v: LinearParams; // [C, KV D]
  o: LinearParams; // [H D, C]
  ln2: RMSNormParams;
  gate: LinearParams; // [C, F]
  up: LinearParams; // [C, F]
  down: LinearParams; // [F, C]
}

export class LlamaBlockSaved implements Saved {
  constructor(
    readonly parts: Record<'ln1' | 'q' | 'k' | 'v' | 'attn' | 'o' | 'ln2' | 'gate' | 'up' | 'down', Saved> & { act: SwiGLUSaved },
    /** Packed rows' segments (their positions rotate q and k back in backward), or null. */
    readonly packed: PackedRows | null = null,
  ) {}

  release(): void {
    for (const s of Object.values(this.parts)) s.release();
  }
}

/** Local heads of this rank: query heads H, key/value heads KV. */
export interface LlamaBlockHeads {
  heads: number;
  kvHeads: number;
}

export class LlamaBlock {
  private readonly norm: Layer<RMSNormParams, Saved>;
  private readonly linear: Layer<LinearParams, Saved>;
  private readonly attention: Layer<PackedRows | null, Saved>;
  private readonly group: number;

  constructor(
    layers: LayerSet,
    eps: number,
    private readonly rope: RotaryEmbedding,
    private readonly local: LlamaBlockHeads,
    private readonly tp: TensorParallelGroup | null,
    profiler?: Profiler,
  ) {
    this.norm = timed('ln', new RMSNorm(eps, layers.kind), profiler);
    // LoraLinear runs the kernel set's Linear unchanged unless the parameters carry LoRA's frozen flag or an adapter.
    this.linear = timed('linear', new LoraLinear(layers.linear, layers.kind === 'host'), profiler);
    this.attention = timed('attn.core', layers.attention, profiler);
    this.group = local.heads / local.kvHeads;
  }

  /**
   * x [B, T, C] (identical on every tensor-parallel rank) -> y [B, T, C]. `packed`: rows of
   * several sequences (segment-mask.ts): attention within each, positions restarting at each.
   */
  async forward(p: LlamaBlockParams, x: tf.Tensor, train = true, packed: PackedRows | null = null): Promise<{ y: tf.Tensor; saved: LlamaBlockSaved }> {
    const L = this.linear;
    const ln1 = this.norm.forward(p.ln1, x, train);
    const q = L.forward(p.q, ln1.y, train); // [B, T, H D]
    const k = L.forward(p.k, ln1.y, train); // [B, T, KV D]
    const v = L.forward(p.v, ln1.y, train);
    ln1.y.dispose();
    const pos = packed?.positions;
    const qkv = tf.tidy(() => tf.concat([this.rope.forward(q.y, pos), this.repeatKv(this.rope.forward(k.y, pos)), this.repeatKv(v.y)], 2)); // [B, T, 3 H D]
    disposeAll(q.y, k.y, v.y);
    const attn = this.attention.forward(packed, qkv, train); // [B, T, H D]
    qkv.dispose();
    const o = L.forward(p.o, attn.y, train); // [B, T, C] (partial over tensor-parallel ranks)
    attn.y.dispose();
    const oSum = await this.reduceForward(o.y);
    const x2 = tf.add(x, oSum);
    oSum.dispose();
    const ln2 = this.norm.forward(p.ln2, x2, train);
    const gate = L.forward(p.gate, ln2.y, train); // [B, T, F]
    const up = L.forward(p.up, ln2.y, train);
    ln2.y.dispose();
    const act = swigluForward(gate.y, up.y, train);
    disposeAll(gate.y, up.y);
    const down = L.forward(p.down, act.y, train); // [B, T, C] (partial)
    act.y.dispose();
    const dSum = await this.reduceForward(down.y);
    const y = tf.add(x2, dSum);
    disposeAll(x2, dSum);
    const saved = new LlamaBlockSaved({
      ln1: ln1.saved, q: q.saved, k: k.saved, v: v.saved, attn: attn.saved, o: o.saved,
      ln2: ln2.saved, gate: gate.saved, up: up.saved, act: act.saved, down: down.saved,
    }, packed);
    return { y, saved };
  }

  /** dy [B, T, C] -> dx [B, T, C] and this rank's parameter gradients. */
  async backward(p: LlamaBlockParams, saved: LlamaBlockSaved, dy: tf.Tensor): Promise<BackwardResult> {
    const L = this.linear;
    const s = saved.parts;
    const grads: ParamGrads = {};
    // A linear's weight gradient under its layout name; a LoRA adapter's lora_A / lora_B beside it
    // (`attn.q_proj.lora_A.weight`); a frozen base returns no weight gradient (lora-linear.ts).
    const weightOf = (name: string, r: { dParams: ParamGrads }): void => {
      for (const [key, g] of Object.entries(r.dParams)) {
        if (key === 'weight') grads[name] = g;
        else if (key === 'bias') dropGrad(g);
        else grads[name.replace(/weight$/, `${key}.weight`)] = g;
      }
    };
    try {
      const down = L.backward(p.down, s.down, dy);
      weightOf('mlp.down_proj.weight', down);
      const { dg, du } = swigluBackward(s.act, down.dx);
      down.dx.dispose();
      const gate = L.backward(p.gate, s.gate, dg);
      weightOf('mlp.gate_proj.weight', gate);
      const up = L.backward(p.up, s.up, du);
      weightOf('mlp.up_proj.weight', up);
      disposeAll(dg, du);
      const dn2Local = tf.add(gate.dx, up.dx);
      disposeAll(gate.dx, up.dx);
      const dn2 = await this.reduceBackward(dn2Local);
      dn2Local.dispose();
      const ln2 = this.norm.backward(p.ln2, s.ln2, dn2);
      grads['ln_2.weight'] = ln2.dParams.weight;
      dn2.dispose();
      const dx2 = tf.add(dy, ln2.dx); // residual: both branches reach x2
      ln2.dx.dispose();
      const o = L.backward(p.o, s.o, dx2);
      weightOf('attn.o_proj.weight', o);
      const attn = this.attention.backward(saved.packed, s.attn, o.dx); // [B, T, 3 H D]
      o.dx.dispose();
      const [dq, dk, dv] = tf.tidy(() => {
        const W = (attn.dx.shape as number[])[2] / 3;
        const [dqr, dke, dve] = tf.split(attn.dx, [W, W, W], 2);
        const pos = saved.packed?.positions;
        return [this.rope.backward(dqr, pos), this.rope.backward(this.sumKv(dke), pos), this.sumKv(dve)];
      });
      attn.dx.dispose();
      const q = L.backward(p.q, s.q, dq);
      weightOf('attn.q_proj.weight', q);
      const k = L.backward(p.k, s.k, dk);
      weightOf('attn.k_proj.weight', k);
      const v = L.backward(p.v, s.v, dv);
      weightOf('attn.v_proj.weight', v);
      disposeAll(dq, dk, dv);
      const dn1Local = tf.tidy(() => tf.add(tf.add(q.dx, k.dx), v.dx));
      disposeAll(q.dx, k.dx, v.dx);
      const dn1 = await this.reduceBackward(dn1Local);
      dn1Local.dispose();
      const ln1 = this.norm.backward(p.ln1, s.ln1, dn1);
      grads['ln_1.weight'] = ln1.dParams.weight;
      dn1.dispose();
      const dx = tf.add(dx2, ln1.dx);
      disposeAll(dx2, ln1.dx);
      return { dx, dParams: grads };
    } catch (err) {
      for (const g of Object.values(grads)) dropGrad(g);
      throw err;
    } finally {
      saved.release(); // no-op for the parts already consumed; frees the rest if a step threw
    }
  }

  /** repeat_kv: [B, T, KV D] -> [B, T, H D], KV head j copied to query heads [j g, (j+1) g). */
  private repeatKv(x: tf.Tensor): tf.Tensor {
    if (this.group === 1) return x;
    const [B, T, W] = x.shape;
    const KV = this.local.kvHeads;
    const D = W / KV;
    return tf.reshape(tf.tile(tf.reshape(x, [B, T, KV, 1, D]), [1, 1, 1, this.group, 1]), [B, T, KV * this.group * D]);
  }

  /** repeat_kv's backward: [B, T, H D] -> [B, T, KV D], the g query heads' gradients summed. */
  private sumKv(dx: tf.Tensor): tf.Tensor {
    if (this.group === 1) return dx;
    const [B, T, W] = dx.shape;
    const KV = this.local.kvHeads;
    const D = W / this.local.heads;
    return tf.reshape(tf.sum(tf.reshape(dx, [B, T, KV, this.group, D]), 3), [B, T, KV * D]);
  }

  private async reduceForward(t: tf.Tensor): Promise<tf.Tensor> {
    if (this.tp === null) return t;
    try {
      return await reduceFromTensorParallelRegionForward(t, this.tp);
    } finally {
      t.dispose();
    }
  }

  private async reduceBackward(t: tf.Tensor): Promise<tf.Tensor> {
    if (this.tp === null) return share(t);
    return copyToTensorParallelRegionBackward(t, this.tp);
  }
}

function dropGrad(g: GradValue | undefined): void {
  if (g !== undefined && !(g instanceof Float32Array)) g.dispose();
}
