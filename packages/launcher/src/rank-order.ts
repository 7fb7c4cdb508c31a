import { TrainerError } from '@trainer/errors';
import type { WorkerHello } from './control-protocol.js';

/**
 * Rank order: RANK from the environment when every worker has one (each rank exactly once);
 * otherwise sorted by host, then local rank, then pid, so co-located workers get adjacent ranks.
 * `ignoreRequested`: an elastic round on fewer workers reassigns ranks whatever RANK says.
 * Returns indices into `hellos` in rank order.
 */
export function rankOrder(hellos: readonly WorkerHello[], world: number, ignoreRequested = false): number[] | TrainerError {
  const requested = hellos.map((h) => h.requestedRank);
  if (!ignoreRequested && requested.every((r) => r !== undefined)) {
    const byRank = new Map<number, number>();
    for (const [i, r] of requested.entries()) {
      if (r! >= world) return new TrainerError('TRAINER_ERR_RANK_CONFLICT', `a worker asked for RANK=${r} but the world size is ${world}`, { hint: 'RANK must be below WORLD_SIZE' });
      if (byRank.has(r!)) return new TrainerError('TRAINER_ERR_RANK_CONFLICT', `two workers asked for RANK=${r} (${hellos[byRank.get(r!)!].host} and ${hellos[i].host})`, { hint: 'give every worker a distinct RANK, or none' });
      byRank.set(r!, i);
    }
    return Array.from({ length: world }, (_, r) => byRank.get(r)!);
  }
  return hellos
    .map((h, i) => ({ h, i }))
    .sort((a, b) => (a.h.host < b.h.host ? -1 : a.h.host > b.h.host ? 1 : a.h.localRank - b.h.localRank || a.h.pid - b.h.pid))
    .map((x) => x.i);
}
