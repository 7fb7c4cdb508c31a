import type { Trainer } from '@trainer/engine';
import type { Mesh } from '@trainer/engine';
import type { ProcessGroup } from '@trainer/comm';
import { paramLayout, paramUnits, type GPTSegments } from '@trainer/model';
import { ModelDirWriter, type SavedModel } from '../model-files.js';

/**
 * The trained model, assembled unit by unit of the full model: for each unit, every rank of a
 * replica places its part of it (its tensor-parallel shard, if its pipeline stage holds the
 * unit) into a unit-sized buffer, the replica's model-parallel group sums them (each parameter
 * is placed by exactly one rank), and rank 0 streams the unit into <out>/model. No rank holds
 * more than one unit, except rank 0 when asked to keep the whole model (for the closing sample
 * of a model small enough). Every rank must call it: the units' gathers are collectives.
 */
export async function saveFinalModel(o: {
  model: GPTSegments;
  trainer: Trainer<unknown>;
  mesh: Mesh<ProcessGroup>;
  rank: number;
  /** Rank 0 writes the model folder here (absent: nothing written). */
  dir: string | undefined;
  saved: Omit<SavedModel, 'params'>;
  /** Rank 0 returns the whole model too. */
  keepFull: boolean;
}): Promise<Float32Array | null> {
  const { model, trainer, mesh } = o;
  const layout = paramLayout(model.config);
  const writer = o.rank === 0 && o.dir ? await ModelDirWriter.open(o.dir, o.saved) : null;
  const full = o.rank === 0 && o.keepFull ? new Float32Array(layout.totalSize) : null;
  const localIndex = new Map(model.units.map((u, i) => [u.name, i]));
  try {
    for (const g of paramUnits(layout)) {
      const buf = new Float32Array(g.end - g.start);
      const u = localIndex.get(g.name);
      if (u !== undefined) model.placeUnitInto(u, await trainer.fullUnit(u), buf, g.start, mesh.coords.tp === 0);
      // One replica assembles it (its ranks share the data-parallel coordinate).
      if (mesh.coords.dp === 0 && mesh.mp.size > 1) await mesh.mp.allReduce(buf, { op: 'sum' });
      await writer?.write(buf);
      full?.set(buf, g.start);
    }
    await writer?.close();
  } catch (err) {
    await writer?.abort();
    throw err;
  }
  return full;
}
