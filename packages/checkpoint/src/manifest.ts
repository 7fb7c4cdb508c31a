import { z } from 'zod';
import { CheckpointErrorCode, checkpointError } from './errors.js';
import { forEachRun, numel, regionProblem, regionSize } from './region.js';
import { dtypeBytes, type ShardDtype } from './shard-file.js';

/**
 * manifest.json: the description of one checkpoint, written by the coordinator last, after every
 * shard file is on disk and its checksum checked. A folder without it is not a checkpoint.
 *
 * For every logical tensor (Hugging Face GPT-2 name and shape) and every kind of state
 * (parameters, AdamW's m and v, and under bf16/fp16 the 16-bit working parameters) it lists the
 * pieces that hold it: file, absolute byte offset, byte length and the slice of the tensor
 * covered. A slice is a `region` of the tensor (a tensor-parallel shard: row and column ranges,
 * region.ts; the whole tensor when absent) and a range `flat` [start, end) of that region
 * flattened row-major (a ZeRO piece of it). A reader refuses fields it does not know, and
 * versions newer than its own.
 *
 * Version 2 added `stateDtypes` and the optional `params16` kind; version 1 manifests (fp32
 * state only, written before) are still read, as if `stateDtypes` were all F32.
 *
 * Version 3 added DiLoCo runs (`outer`): R replicas each hold their own params, m and v, so every
 * piece of those names its `replica` (absent: 0) and each replica's pieces tile the tensor on
 * their own; the outer optimizer's state (`outer_anchor`, `outer_momentum`, `outer_pending`:
 * shared, replica 0's pieces; `outer_base`: per replica, overlapped syncs only) are kinds beside them. A reader that
 * asks for no replica gets replica 0. Checkpoints without `outer` are still written as version 2.
 */
export const MANIFEST_FORMAT = 'trainer-checkpoint';
export const MANIFEST_VERSION = 3;
/** The version of a checkpoint without DiLoCo's replicas (what every reader since version 2 reads). */
export const MANIFEST_VERSION_PLAIN = 2;
/** Every version this code reads. */
export const MANIFEST_READ_VERSIONS = [1, 2, 3] as const;
export const MANIFEST_FILE = 'manifest.json';

/**
 * The kinds of state a checkpoint holds per tensor, in the order a shard lays them out:
 *
 *   params    fp32 parameters (the master copy under bf16/fp16): what resume restores; first, so
 *             reading the fp32 weights touches a prefix of each file
 *   m, v      AdamW's moments, fp32
 *   outer_anchor, outer_momentum
 *             DiLoCo runs only (version 3): the parameters the replicas last agreed on and the
 *             outer Nesterov momentum, fp32, one copy (replica 0's ranks write them)
 *   outer_base  DiLoCo with overlapped syncs only: where each replica's progress since its last
 *             sync is measured from, fp32, per replica
 *   outer_pending  DiLoCo with overlapped syncs, saved between a sync and its landing only: the
 *             sum of the replicas' pseudo-gradients, not yet applied, fp32, one copy
 *   params16  bf16/fp16 runs only: the 16-bit working parameters, round(params), what the model
 *             computes with (half the bytes; for consumers that want weights only); last, so
 *             every fp32 piece stays 4-byte aligned and the 16-bit weights are one suffix
 *
 * Gradients are not saved: they are zeroed at every step.
 */
export const STATE_KINDS = ['params', 'm', 'v', 'outer_anchor', 'outer_momentum', 'outer_base', 'outer_pending', 'params16'] as const;
export type StateKind = (typeof STATE_KINDS)[number];
/** The kinds every checkpoint holds: the fp32 training state that resume restores. */
export const TRAINING_STATE_KINDS = ['params', 'm', 'v'] as const satisfies readonly StateKind[];
/** DiLoCo's shared outer state: one copy, in replica 0's pieces. */
export const SHARED_OUTER_KINDS = ['outer_anchor', 'outer_momentum', 'outer_pending'] as const satisfies readonly StateKind[];

/** The dtype of every kind of state a checkpoint holds (params16 absent under fp32). */
export const StateDtypesSchema = z.object({
  params: z.literal('F32'),
  m: z.literal('F32'),
  v: z.literal('F32'),
  outer_anchor: z.literal('F32').optional(),
  outer_momentum: z.literal('F32').optional(),
  outer_base: z.literal('F32').optional(),
  outer_pending: z.literal('F32').optional(),
  params16: z.enum(['BF16', 'F16']).optional(),
}).strict();
export type StateDtypes = z.infer<typeof StateDtypesSchema>;

/** What a version 1 checkpoint holds: fp32 params, m and v. */
const V1_STATE_DTYPES: StateDtypes = { params: 'F32', m: 'F32', v: 'F32' };

/** The 16-bit dtype of a precision's working parameters (none for fp32). */
export function halfDtypeOf(precision: 'fp32' | 'bf16' | 'fp16'): 'BF16' | 'F16' | undefined {
  return precision === 'bf16' ? 'BF16' : precision === 'fp16' ? 'F16' : undefined;
}

const count = z.number().int().nonnegative();
const sha256 = z.string().regex(/^[0-9a-f]{64}$/);
/** A plain file name inside the checkpoint folder: no separators, no '..'. */
const fileName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/);

const range = z.tuple([count, count]);
export const SliceSchema = z.object({ flat: range, rows: range.optional(), cols: z.array(range).min(1).max(1024).optional() }).strict();

export const PieceSchema = z.object({
  file: fileName, offset: count, length: count, slice: SliceSchema,
  /** Version 3, DiLoCo: the replica whose state this is (absent: 0). */
  replica: count.optional(),
}).strict();
export type Piece = z.infer<typeof PieceSchema>;

export const TensorEntrySchema = z.object({
  name: z.string().min(1).max(500),
  shape: z.array(count).max(8),
  /** The tensor's own dtype (its parameters' master copy); each state's is in the manifest's stateDtypes. */
  dtype: z.literal('F32'),
  state: z.object({
    params: z.array(PieceSchema), m: z.array(PieceSchema), v: z.array(PieceSchema),
    outer_anchor: z.array(PieceSchema).optional(), outer_momentum: z.array(PieceSchema).optional(), outer_base: z.array(PieceSchema).optional(), outer_pending: z.array(PieceSchema).optional(),
    params16: z.array(PieceSchema).optional(),
  }).strict(),
});
export type TensorEntry = z.infer<typeof TensorEntrySchema>;

export const OuterSchema = z.object({
  replicas: z.number().int().positive(),
  syncEvery: z.number().int().positive(),
  lr: z.number(),
  momentum: z.number(),
  precision: z.enum(['fp32', 'bf16']),
  /** Steps an overlapped sync runs behind before it lands; 0: syncs wait. */
  overlap: z.number().int().nonnegative(),
}).strict();
export type OuterManifest = z.infer<typeof OuterSchema>;

export const FileEntrySchema = z.object({ name: fileName, rank: count.nullable(), bytes: count, sha256 });
export type FileEntry = z.infer<typeof FileEntrySchema>;

export const ManifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  version: z.union(MANIFEST_READ_VERSIONS.map((v) => z.literal(v))),
  /** Optimizer steps completed: a resumed run starts at this step index. */
  step: count,
  /** AdamW's step counter (bias correction), restored as is. */
  optimizerStep: count,
  createdAt: z.string(),
  model: z.object({ name: z.string(), config: z.record(z.string(), z.unknown()) }),
  /** A copy of the tokenizer in the checkpoint folder, with its hash; null for synthetic data. */
  tokenizer: z.object({ file: fileName, sha256 }).nullable(),
  layout: z.object({
    world: z.number().int().positive(),
    dp: z.number().int().positive(),
    tp: z.number().int().positive(),
    pp: z.number().int().positive(),
    zeroStage: z.number().int().min(0).max(3),
    /** How the writer held its working parameters: `params` is its fp32 master copy, `params16` (bf16, fp16) the working copy. */
    precision: z.enum(['fp32', 'bf16', 'fp16']),
    /** The ZeRO partition of the writer (informative: readers use the tensor pieces). */
    partition: z.unknown().optional(),
  }),
  /** Hyperparameters of the run that wrote it (seed, batch, AdamW, clipping, total steps). */
  training: z.record(z.string(), z.unknown()),
  /** The learning-rate schedule, a pure function of the step, and its value at `step`. */
  lrSchedule: z.object({ kind: z.literal('warmup-cosine'), lr: z.number(), minLr: z.number(), warmupSteps: count, decaySteps: count, lrAtStep: z.number() }),
  /** fp16's dynamic loss scaling state; null without loss scaling (fp32, bf16). */
  lossScale: z.object({ scale: z.number().positive(), goodSteps: count, skipsAtMinimum: count }).nullable(),
  /**
   * Random state. The sampler is stateless (batch of step s = f(seed, s)), so its position is
   * the step; the model has no dropout, so there is no dropout generator to save.
   */
  rng: z.object({
    sampler: z.object({ kind: z.literal('stateless'), seed: count, nextStep: count }),
    dropout: z.null(),
  }),
  /** Figures at the time of saving (loss, learning rate, validation loss when known). */
  metrics: z.record(z.string(), z.number().nullable()),
  files: z.array(FileEntrySchema).min(1),
  /** Version 2: the dtype of each kind of state (`params16` present exactly under bf16 and fp16). Absent in version 1 (all F32). */
  stateDtypes: StateDtypesSchema.optional(),
  tensors: z.array(TensorEntrySchema).min(1),
  /** Version 3: a DiLoCo run's replicas and outer optimizer (absent: one model, every-step data parallelism). */
  outer: OuterSchema.optional(),
  /**
   * The resolved options of the command that started the run (long option name -> value, the
   * content of the run folder's run-config.yaml, which `--config` reads). For the record: resume
   * does not read it. Optional in every version: checkpoints written before it lack it, and older
   * readers ignore it.
   */
  runConfig: z.record(z.string(), z.unknown()).optional(),
});
export type Manifest = z.infer<typeof ManifestSchema>;

/** The dtype of every kind of state `m` holds (a version 1 manifest: fp32 params, m and v). */
export function stateDtypes(m: Manifest): StateDtypes {
  return m.stateDtypes ?? V1_STATE_DTYPES;
}

/** The kinds of state `m` holds, in file order. */
export function stateKinds(m: Manifest): StateKind[] {
  const dtypes = stateDtypes(m);
  return STATE_KINDS.filter((k) => dtypes[k] !== undefined);
}

/** The dtype of state `kind` in `m`, or undefined when the checkpoint does not hold it. */
export function stateDtype(m: Manifest, kind: StateKind): ShardDtype | undefined {
  return stateDtypes(m)[kind];
}

export function tensorSize(shape: readonly number[]): number {
  return numel(shape);
}

/**
 * Parses and validates manifest text: our format, a version we read (a newer one is refused
 * before the schema is looked at), the schema, and consistency: every piece in a listed file and
 * inside its size, byte lengths matching slices, and every tensor's every state covered exactly
 * once (no gap, no overlap).
 */
export function parseManifest(text: string, path: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw checkpointError(CheckpointErrorCode.FORMAT, `${path} is not JSON`, { cause: err, file: path });
  }
  const head = (raw ?? {}) as { format?: unknown; version?: unknown };
  if (head.format !== MANIFEST_FORMAT) throw checkpointError(CheckpointErrorCode.FORMAT, `${path} is not a trainer checkpoint manifest (format ${JSON.stringify(head.format ?? null)})`, { file: path });
  if (!(MANIFEST_READ_VERSIONS as readonly unknown[]).includes(head.version)) {
    const newer = typeof head.version === 'number' && head.version > MANIFEST_VERSION;
    throw checkpointError(CheckpointErrorCode.VERSION, `${path} has checkpoint format version ${String(head.version)}${newer ? ', newer than' : ';'} this trainer reads versions 1 to ${MANIFEST_VERSION}`, {
      file: path, details: { version: head.version, supported: [...MANIFEST_READ_VERSIONS] },
      ...(newer ? {} : { hint: 'this is not a checkpoint version any trainer wrote; the file is damaged' }),
    });
  }
  const parsed = ManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw checkpointError(CheckpointErrorCode.FORMAT, `${path} is malformed at ${issue.path.join('.') || '<root>'}: ${issue.message}`, { file: path });
  }
  checkConsistency(parsed.data, path);
  return parsed.data;
}

function checkConsistency(m: Manifest, path: string): void {
  const bad = (why: string) => checkpointError(CheckpointErrorCode.FORMAT, `${path}: ${why}`, { file: path });
  const files = new Map<string, FileEntry>();
  for (const f of m.files) {
    if (files.has(f.name)) throw bad(`file ${f.name} is listed twice`);
    files.set(f.name, f);
  }
  if (m.tokenizer && files.has(m.tokenizer.file)) throw bad(`the tokenizer ${m.tokenizer.file} is also listed as a shard`);
  const kinds = checkStateDtypes(m, bad);
  const replicas = m.outer?.replicas ?? 1;
  const names = new Set<string>();
  for (const t of m.tensors) {
    if (names.has(t.name)) throw bad(`tensor ${t.name} is listed twice`);
    names.add(t.name);
    const size = tensorSize(t.shape);
    for (const kind of STATE_KINDS) {
      const pieces = t.state[kind];
      const dtype = kinds[kind];
      if (!dtype || !pieces) {
        if (dtype || pieces) throw bad(`${t.name} ${pieces ? 'has' : 'lacks'} ${kind} pieces, but the checkpoint's stateDtypes ${dtype ? 'list' : 'do not list'} ${kind}`);
        continue;
      }
      const bytes = dtypeBytes(dtype);
      // Every replica's runs of tensor elements; each replica's must tile [0, size) exactly.
      const runs = new Map<number, [number, number][]>();
      for (const p of pieces) {
        const [s, e] = p.slice.flat;
        const f = files.get(p.file);
        if (!f) throw bad(`${t.name} (${kind}) refers to ${p.file}, which is not listed in files`);
        const replica = p.replica ?? 0;
        if (replica >= replicas) throw bad(`${t.name} (${kind}): a piece of replica ${replica}, but the checkpoint has ${replicas} replica(s)`);
        const problem = regionProblem(t.shape, p.slice);
        if (problem) throw bad(`${t.name} (${kind}): ${problem}`);
        const regionElems = regionSize(t.shape, p.slice);
        if (e < s || e > regionElems) throw bad(`${t.name} (${kind}): slice [${s}, ${e}) outside its region of ${regionElems} elements`);
        if (p.length !== (e - s) * bytes) throw bad(`${t.name} (${kind}): ${p.length} bytes for ${e - s} ${dtype} elements`);
        if (p.offset % bytes !== 0 || p.offset + p.length > f.bytes) throw bad(`${t.name} (${kind}): bytes [${p.offset}, ${p.offset + p.length}) outside ${p.file} (${f.bytes} bytes)`);
        const mine = runs.get(replica) ?? [];
        runs.set(replica, mine);
        forEachRun(t.shape, p.slice, s, e, (g, _r, n) => mine.push([g, g + n]));
      }
      const holders = (SHARED_OUTER_KINDS as readonly StateKind[]).includes(kind) ? 1 : replicas;
      for (let replica = 0; replica < holders; replica++) {
        const of = replicas > 1 ? ` of replica ${replica}` : '';
        const mine = (runs.get(replica) ?? []).sort((a, b) => a[0] - b[0]);
        let pos = 0;
        for (const [s, e] of mine) {
          if (s !== pos) throw bad(`${t.name} (${kind}${of}): ${s < pos ? 'overlapping pieces' : 'a gap'} at element ${Math.min(s, pos)}`);
          pos = e;
        }
        if (pos !== size) throw bad(`${t.name} (${kind}${of}) is covered up to element ${pos} of ${size}`);
      }
      if (runs.size > holders) throw bad(`${t.name} (${kind}) is held by ${runs.size} replicas; DiLoCo's shared state is replica 0's alone`);
    }
  }
}

/**
 * The dtype of each kind `m` holds, checked against its version and precision: version 1 holds
 * fp32 params, m and v only; version 2 lists them in `stateDtypes`, with `params16` exactly when
 * the writer ran in 16 bits, in that precision's dtype; version 3 adds DiLoCo's outer kinds,
 * exactly those its `outer` section implies.
 */
function checkStateDtypes(m: Manifest, bad: (why: string) => Error): Partial<Record<StateKind, ShardDtype>> {
  if (m.version < 3 && m.outer) throw bad('the outer (DiLoCo) section is a version 3 field');
  if (m.version < 3 && m.tensors.some((t) => Object.values(t.state).some((ps) => ps?.some((p) => p.replica !== undefined)))) throw bad('a piece names its replica, a version 3 field');
  if (m.version === 1) {
    if (m.stateDtypes) throw bad('stateDtypes is a version 2 field; a version 1 checkpoint holds fp32 params, m and v only');
    return V1_STATE_DTYPES;
  }
  if (!m.stateDtypes) throw bad('stateDtypes is missing (required from version 2)');
  const outerKinds = (['outer_anchor', 'outer_momentum', 'outer_base', 'outer_pending'] as const).filter((k) => m.stateDtypes![k] !== undefined);
  if (m.version < 3 && outerKinds.length > 0) throw bad(`${outerKinds.join(', ')}: DiLoCo's outer state is a version 3 field`);
  if (m.outer) {
    const want = ['outer_anchor', 'outer_momentum', ...(m.outer.overlap ? ['outer_base'] : [])];
    const held = outerKinds.filter((k) => !(m.outer!.overlap && k === 'outer_pending')); // a pending average is there only between a sync and its landing
    if (want.join() !== held.join()) throw bad(`a DiLoCo checkpoint${m.outer.overlap ? ' with overlapped syncs' : ''} holds ${want.join(', ')}; this one lists ${outerKinds.join(', ') || 'none'}`);
  } else if (outerKinds.length > 0) {
    throw bad(`stateDtypes lists ${outerKinds.join(', ')}, but the checkpoint has no outer (DiLoCo) section`);
  }
  const half = halfDtypeOf(m.layout.precision);
  if (m.stateDtypes.params16 !== half) {
    throw bad(`stateDtypes.params16 is ${m.stateDtypes.params16 ?? 'absent'}, but the run was ${m.layout.precision}: its checkpoint holds ${half ? `its working parameters as ${half}` : 'no 16-bit parameters'}`);
  }
  return m.stateDtypes;
}
