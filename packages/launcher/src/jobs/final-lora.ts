import type { ProcessGroup } from '@trainer/comm';
import { transposeMatrix, writePeftAdapter } from '@trainer/checkpoint';
import type { Mesh, Trainer } from '@trainer/engine';
import { loraLayout, paramLayout, paramUnits, peftAdapterConfig, peftNameOf, placeShard, type LoraSegments } from '@trainer/model';
import { ModelDirWriter, type SavedModel } from '../model-files.js';

/**
 * The end of a LoRA run, assembled unit by unit of the full model like saveFinalModel:
 *
 *   <out>/model     the merged model, W' = W + (alpha / r) A B for every adapted linear and every
 *                   other tensor the frozen base's own values (eval, generate and export --merge
 *                   read it as any model folder)
 *   <out>/adapter   the adapters as a Hugging Face PEFT folder (adapter_config.json +
 *                   adapter_model.safetensors), what `trainer export RUN` of a LoRA run writes
 *
 * For each unit every rank of replica 0 places its part (its tensor-parallel shard of the merged
 * base unit and of the adapters, merged on the rank: lora-segments.ts mergeInto), the replica's
 * model-parallel group sums them, and rank 0 writes. Every rank must call it (collectives).
 */
export async function saveFinalLora(o: {
  model: LoraSegments;
  trainer: Trainer<unknown>;
  mesh: Mesh<ProcessGroup>;
  rank: number;
  /** The run folder (absent: nothing written). */
  outDir: string | undefined;
  /** base_model_name_or_path in adapter_config.json. */
  baseModel: string;
  saved: Omit<SavedModel, 'params'>;
}): Promise<void> {
  const { model, trainer, mesh } = o;
  const full = paramLayout(model.config);
  const fullUnits = paramUnits(full);
  const fullAdapters = loraLayout(full.entries, fullUnits, model.linears, model.lora.rank);
  const writer = o.rank === 0 && o.outDir ? await ModelDirWriter.open(`${o.outDir}/model`, o.saved) : null;
  const baseIndex = new Map(model.base.units.map((u, i) => [u.name, i]));
  const peft: { name: string; shape: number[]; values: Float32Array }[] = [];
  const withReplicated = mesh.coords.tp === 0;
  try {
    for (const g of fullUnits) {
      const buf = new Float32Array(g.end - g.start);
      const aUnit = fullAdapters.units.find((u) => u.name === g.name);
      const adapters = aUnit ? new Float32Array(aUnit.end - aUnit.start) : null;
      const b = baseIndex.get(g.name);
      if (b !== undefined) {
        const values = await model.frozenUnitValues(b);
        const j = model.adapterUnitOf(b);
        if (j !== undefined && aUnit && adapters) {
          const local = await trainer.fullUnit(j); // a collective under ZeRO
          model.mergeInto(j, values, local);
          const u = model.units[j];
          for (const e of model.layout.entries) {
            if (e.offset < u.start || e.offset >= u.end || (e.replicated && !withReplicated)) continue;
            const f = fullAdapters.entries.find((x) => x.name === e.name)!;
            const src = local.subarray(e.offset - u.start, e.offset - u.start + e.size);
            const dst = adapters.subarray(f.offset - aUnit.start, f.offset - aUnit.start + f.size);
            if (e.shard) placeShard(src, e.shard, dst);
            else dst.set(src);
          }
        }
        model.base.placeUnitInto(b, values, buf, g.start, withReplicated);
      }
      if (mesh.coords.dp === 0 && mesh.mp.size > 1) {
        await mesh.mp.allReduce(buf, { op: 'sum' });
        if (adapters) await mesh.mp.allReduce(adapters, { op: 'sum' });
      }
      await writer?.write(buf);
      if (o.rank === 0 && aUnit && adapters) {
        for (const e of fullAdapters.entries) {
          if (e.offset < aUnit.start || e.offset >= aUnit.end) continue;
          const ours = adapters.subarray(e.offset - aUnit.start, e.offset - aUnit.start + e.size);
          peft.push({ name: peftNameOf(model.config, e.name), shape: [e.shape[1], e.shape[0]], values: transposeMatrix(ours, e.shape[0], e.shape[1]) });
        }
      }
    }
    await writer?.close();
  } catch (err) {
    await writer?.abort();
    throw err;
  }
  if (o.rank === 0 && o.outDir) await writePeftAdapter(`${o.outDir}/adapter`, peftAdapterConfig(model.config, model.lora, model.linears, o.baseModel), peft);
}
