import { TrainerError } from '@trainer/errors';

/**
 * The device mesh: world = dp x tp x pp ranks, numbered as Megatron-LM does, tensor-parallel
 * fastest (ranks of a tensor-parallel group are neighbours, so they share a machine when they
 * can), then data-parallel, then pipeline stage:
 *
 *   rank = (pp * DP + dp) * TP + tp
 *
 * A rank belongs to one group per axis: its tensor-parallel group (same dp, pp), its
 * data-parallel group (same tp, pp: ZeRO partitions over it) and its pipeline group (same dp, tp:
 * activations flow along it). Two more: the model-parallel group (same dp: one whole replica of
 * the model, tp x pp ranks) and, with P > 1 stages, the embedding group (the first and last
 * stage's ranks of one pipeline: both hold the tied embedding).
 */
export interface MeshShape {
  dp: number;
  tp: number;
  pp: number;
}

export interface MeshCoordinates {
  dp: number;
  tp: number;
  pp: number;
}

export function meshShape(world: number, tp: number, pp: number): MeshShape {
  if (!Number.isInteger(tp) || tp < 1 || !Number.isInteger(pp) || pp < 1 || world % (tp * pp) !== 0) {
    throw new TrainerError('TRAINER_ERR_MESH', `${world} workers do not split into tensor-parallel groups of ${tp} and ${pp} pipeline stages`, {
      hint: `use a number of workers that is a multiple of tp x pp = ${tp * pp}`,
      details: { world, tp, pp },
    });
  }
  return { dp: world / (tp * pp), tp, pp };
}

export function coordinatesOf(rank: number, s: MeshShape): MeshCoordinates {
  return { tp: rank % s.tp, dp: Math.floor(rank / s.tp) % s.dp, pp: Math.floor(rank / (s.tp * s.dp)) };
}

export function rankOf(c: MeshCoordinates, s: MeshShape): number {
  return (c.pp * s.dp + c.dp) * s.tp + c.tp;
}

/** Every group of every axis, as rank lists, in the order all ranks create them. */
export function meshGroupRanks(s: MeshShape): Record<'tp' | 'dp' | 'pp' | 'mp' | 'embedding', number[][]> {
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  return {
    tp: range(s.pp).flatMap((pp) => range(s.dp).map((dp) => range(s.tp).map((tp) => rankOf({ dp, tp, pp }, s)))),
    dp: range(s.pp).flatMap((pp) => range(s.tp).map((tp) => range(s.dp).map((dp) => rankOf({ dp, tp, pp }, s)))),
    pp: range(s.dp).flatMap((dp) => range(s.tp).map((tp) => range(s.pp).map((pp) => rankOf({ dp, tp, pp }, s)))),
    mp: range(s.dp).map((dp) => range(s.pp).flatMap((pp) => range(s.tp).map((tp) => rankOf({ dp, tp, pp }, s)))),
    embedding: s.pp === 1 ? [] : range(s.dp).flatMap((dp) => range(s.tp).map((tp) => [rankOf({ dp, tp, pp: 0 }, s), rankOf({ dp, tp, pp: s.pp - 1 }, s)])),
  };
}

/**
 * DiLoCo's split of the data-parallel axis into R replicas of dp / R ranks each (contiguous dp
 * ranks, so a replica's ranks are neighbours: one host when they fit): `replica` groups are the
 * data-parallel groups inside one replica (ZeRO partitions over them), `outer` groups the ranks
 * at the same place of every replica (the pseudo-gradients are averaged over them), `whole` every
 * rank of one replica (its global gradient norm under tp or pp).
 */
export function replicaGroupRanks(s: MeshShape, replicas: number): { replica: number[][]; outer: number[][]; whole: number[][] } {
  if (!Number.isInteger(replicas) || replicas < 1 || s.dp % replicas !== 0) {
    throw new TrainerError('TRAINER_ERR_MESH', `${s.dp} data-parallel ranks do not split into ${replicas} replicas`, {
      hint: `use a number of replicas that divides the data-parallel size ${s.dp}`,
      details: { dp: s.dp, replicas },
    });
  }
  const per = s.dp / replicas;
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  const lists = { replica: [] as number[][], outer: [] as number[][], whole: [] as number[][] };
  for (const pp of range(s.pp)) {
    for (const tp of range(s.tp)) {
      for (const r of range(replicas)) lists.replica.push(range(per).map((j) => rankOf({ dp: r * per + j, tp, pp }, s)));
      for (const j of range(per)) lists.outer.push(range(replicas).map((r) => rankOf({ dp: r * per + j, tp, pp }, s)));
    }
  }
  for (const r of range(replicas)) lists.whole.push(range(s.pp).flatMap((pp) => range(per).flatMap((j) => range(s.tp).map((tp) => rankOf({ dp: r * per + j, tp, pp }, s)))).sort((a, b) => a - b));
  return lists;
}

export interface Mesh<G> {
  shape: MeshShape;
  coords: MeshCoordinates;
  world: G;
  tp: G;
  dp: G;
  pp: G;
  /** Every rank of this rank's model replica (same dp). */
  mp: G;
  /** First and last pipeline stage of this rank's pipeline, when this rank is one of them and P > 1. */
  embedding: G | undefined;
  /** DiLoCo (replicas given): this rank's data-parallel group inside its replica, and its outer group across replicas. */
  replicas?: { replica: G; outer: G; whole: G; index: number; count: number };
}

/**
 * Creates every group on this rank (collective group creation: every rank creates all of them
 * in the same order, members or not) and returns this rank's three.
 */
export function buildMesh<G>(rank: number, world: G, shape: MeshShape, newGroup: (ranks: number[]) => G, replicas?: number): Mesh<G> {
  const lists = { ...meshGroupRanks(shape), ...(replicas !== undefined ? replicaGroupRanks(shape, replicas) : { replica: [], outer: [], whole: [] }) };
  const mine = (kind: keyof typeof lists): G | undefined => {
    let found: G | undefined;
    for (const ranks of lists[kind]) {
      const g = newGroup(ranks);
      if (ranks.includes(rank)) found = g;
    }
    return found;
  };
  const tp = mine('tp')!;
  const dp = mine('dp')!;
  const pp = mine('pp')!;
  const mp = mine('mp')!;
  const embedding = mine('embedding');
  const coords = coordinatesOf(rank, shape);
  if (replicas === undefined) return { shape, coords, world, tp, dp, pp, mp, embedding };
  const replica = mine('replica')!;
  const outer = mine('outer')!;
  const whole = mine('whole')!;
  return { shape, coords, world, tp, dp, pp, mp, embedding, replicas: { replica, outer, whole, index: Math.floor(coords.dp / (shape.dp / replicas)), count: replicas } };
}
