import type { FlatTensor } from '@trainer/checkpoint';
import type { ParamEntry } from '@trainer/model';

/**
 * The tensors of a rank's flat parameter vector, as a checkpoint sees them: each one's full
 * name and shape, its region of the full tensor (its tensor-parallel shard), and whether this
 * rank writes it. Copies another rank also holds are read on restore but written once: the
 * tensor-parallel replicated parameters (LayerNorms, wpe, row-parallel biases) by tensor-parallel
 * rank 0 only, and the last pipeline stage's copy of the tied embedding not at all (the first
 * stage owns it). ZeRO then splits what remains over the data-parallel ranks.
 */
interface LocalEntry extends ParamEntry {
  shard?: { globalShape: number[]; rows?: [number, number]; cols?: [number, number][] };
  replicated?: boolean;
}

export interface CheckpointedModel {
  layout: { entries: readonly ParamEntry[] };
  tiedEmbedding: { copyUnit: { start: number; end: number } | null } | null;
}

export function checkpointTensors(model: CheckpointedModel, tensorParallelRank: number): FlatTensor[] {
  const copy = model.tiedEmbedding?.copyUnit ?? null;
  return (model.layout.entries as readonly LocalEntry[]).map((e) => {
    const region = e.shard && (e.shard.rows || e.shard.cols) ? { ...(e.shard.rows ? { rows: e.shard.rows } : {}), ...(e.shard.cols ? { cols: e.shard.cols } : {}) } : undefined;
    const isCopy = copy !== null && e.offset >= copy.start && e.offset < copy.end;
    return {
      name: e.name, shape: e.shard?.globalShape ?? e.shape, offset: e.offset,
      ...(region ? { region } : {}),
      owned: !isCopy && !(e.replicated && tensorParallelRank > 0),
    };
  });
}
