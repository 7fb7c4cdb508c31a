/** ZeRO stages as data: what each one partitions, and so how it reduces and redistributes. */
export type ZeroStage = 0 | 1 | 2 | 3;

/**
 * ZeRO (Rajbhandari et al., 2020) as one table: what each stage partitions over the data-parallel
 * group, and so how it reduces gradients and makes updated parameters available again.
 *
 *   stage  parameters           gradients                optimizer   reduce            redistribute
 *   0      resident             full                     replicated  all-reduce        round the master
 *   1      resident             full                     own pieces  reduce-scatter    all-gather
 *   2      resident             own pieces, reduced      own pieces  (during backward) all-gather
 *                               per unit in backward
 *   3      own pieces, gathered own pieces, reduced      own pieces  (during backward) none: gathered when
 *          per segment          per unit in backward                                   a segment runs
 *
 * Stage 1 accumulates full gradients locally over micro-batches and reduce-scatters them once (a
 * rank updates only its own pieces, so it needs only their sums): the traffic stays data
 * parallelism's 2(N-1)/N x model bytes, as the paper's P_os. Pieces follow ZeroPartition.
 */
export interface StagePlan {
  params: 'resident' | 'gathered';
  grads: 'full' | 'sharded';
  optimizer: 'replicated' | 'partitioned';
  reduce: 'all-reduce' | 'reduce-scatter' | 'during-backward';
  redistribute: 'round-master' | 'all-gather' | 'none';
}

export const STAGES: Record<ZeroStage, StagePlan> = {
  0: { params: 'resident', grads: 'full', optimizer: 'replicated', reduce: 'all-reduce', redistribute: 'round-master' },
  1: { params: 'resident', grads: 'full', optimizer: 'partitioned', reduce: 'reduce-scatter', redistribute: 'all-gather' },
  2: { params: 'resident', grads: 'sharded', optimizer: 'partitioned', reduce: 'during-backward', redistribute: 'all-gather' },
  3: { params: 'gathered', grads: 'sharded', optimizer: 'partitioned', reduce: 'during-backward', redistribute: 'none' },
};

