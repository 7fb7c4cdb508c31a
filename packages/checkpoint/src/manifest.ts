import { z } from 'zod';
import { CheckpointErrorCode, checkpointError } from './errors.js';
import { forEachRun, numel, regionProblem, regionSize } from './region.js';

/**
 * manifest.json: the description of one checkpoint, written by the coordinator last, after every
 * shard file is on disk and its checksum checked. A folder without it is not a checkpoint.
 *
 * For every logical tensor (Hugging Face GPT-2 name and shape) and every kind of state
 * (parameters, AdamW's m and v) it lists the pieces that hold it: file, absolute byte offset,
 * byte length and the slice of the tensor covered. A slice is a `region` of the tensor (a
 * tensor-parallel shard: row and column ranges, region.ts; the whole tensor when absent) and a
 * range `flat` [start, end) of that region flattened row-major (a ZeRO piece of it). A reader
 * refuses fields it does not know, and versions newer than its own.
 */
export const MANIFEST_FORMAT = 'trainer-checkpoint';
export const MANIFEST_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';

/** The kinds of state saved per tensor. Gradients are not: they are zeroed at every step. */
export const STATE_KINDS = ['params', 'm', 'v'] as const;
export type StateKind = (typeof STATE_KINDS)[number];

const count = z.number().int().nonnegative();
const sha256 = z.string().regex(/^[0-9a-f]{64}$/);
/** A plain file name inside the checkpoint folder: no separators, no '..'. */
const fileName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/);

const range = z.tuple([count, count]);
export const SliceSchema = z.object({ flat: range, rows: range.optional(), cols: z.array(range).min(1).max(1024).optional() }).strict();

export const PieceSchema = z.object({ file: fileName, offset: count, length: count, slice: SliceSchema }).strict();
export type Piece = z.infer<typeof PieceSchema>;

export const TensorEntrySchema = z.object({
  name: z.string().min(1).max(500),
  shape: z.array(count).max(8),
  dtype: z.literal('F32'),
  state: z.object({ params: z.array(PieceSchema), m: z.array(PieceSchema), v: z.array(PieceSchema) }).strict(),
});
export type TensorEntry = z.infer<typeof TensorEntrySchema>;

export const FileEntrySchema = z.object({ name: fileName, rank: count.nullable(), bytes: count, sha256 });
export type FileEntry = z.infer<typeof FileEntrySchema>;

export const ManifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  version: z.literal(MANIFEST_VERSION),
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
    /** How the writer held its working parameters; the saved parameters are its fp32 master copy. */
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
  tensors: z.array(TensorEntrySchema).min(1),
});
export type Manifest = z.infer<typeof ManifestSchema>;

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
  if (head.version !== MANIFEST_VERSION) {
    const newer = typeof head.version === 'number' && head.version > MANIFEST_VERSION;
    throw checkpointError(CheckpointErrorCode.VERSION, `${path} has checkpoint format version ${String(head.version)}${newer ? ', newer than' : ';'} this trainer reads version ${MANIFEST_VERSION}`, {
      file: path, details: { version: head.version, supported: MANIFEST_VERSION },
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
  const names = new Set<string>();
  for (const t of m.tensors) {
    if (names.has(t.name)) throw bad(`tensor ${t.name} is listed twice`);
    names.add(t.name);
    const size = tensorSize(t.shape);
    for (const kind of STATE_KINDS) {
      // Every piece's runs of tensor elements; together they must tile [0, size) exactly.
      const runs: [number, number][] = [];
      for (const p of t.state[kind]) {
        const [s, e] = p.slice.flat;
        const f = files.get(p.file);
        if (!f) throw bad(`${t.name} (${kind}) refers to ${p.file}, which is not listed in files`);
        const problem = regionProblem(t.shape, p.slice);
        if (problem) throw bad(`${t.name} (${kind}): ${problem}`);
        const regionElems = regionSize(t.shape, p.slice);
        if (e < s || e > regionElems) throw bad(`${t.name} (${kind}): slice [${s}, ${e}) outside its region of ${regionElems} elements`);
        if (p.length !== (e - s) * 4) throw bad(`${t.name} (${kind}): ${p.length} bytes for ${e - s} F32 elements`);
        if (p.offset % 4 !== 0 || p.offset + p.length > f.bytes) throw bad(`${t.name} (${kind}): bytes [${p.offset}, ${p.offset + p.length}) outside ${p.file} (${f.bytes} bytes)`);
        forEachRun(t.shape, p.slice, s, e, (g, _r, n) => runs.push([g, g + n]));
      }
      runs.sort((a, b) => a[0] - b[0]);
      let pos = 0;
      for (const [s, e] of runs) {
        if (s !== pos) throw bad(`${t.name} (${kind}): ${s < pos ? 'overlapping pieces' : 'a gap'} at element ${Math.min(s, pos)}`);
        pos = e;
      }
      if (pos !== size) throw bad(`${t.name} (${kind}) is covered up to element ${pos} of ${size}`);
    }
  }
}
