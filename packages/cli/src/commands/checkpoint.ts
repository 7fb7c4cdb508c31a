import { Command } from 'commander';
import { readManifest, resolveCheckpointDir, stateDtypes, stateKinds, tensorSize, verifyCheckpoint, type Manifest } from '@trainer/checkpoint';
import { exitCode } from '../action.js';
import { formatBytes } from '../format.js';

/**
 * `trainer checkpoint inspect PATH [--json]`: what a sharded checkpoint holds (step, model,
 * parallel layout, files, tensors, sizes, metrics at saving), from its manifest alone.
 * `trainer checkpoint verify PATH`: every file present, of its recorded size, with a valid
 * header and its recorded SHA-256; exit 0 when all verify, 1 otherwise (each problem named).
 * PATH: a checkpoint folder, a checkpoints folder (its latest) or a run folder.
 */
export function checkpointCommand(): Command {
  const cmd = new Command('checkpoint').description('inspect or verify a sharded checkpoint (a checkpoint, checkpoints or run folder)');
  cmd.command('inspect')
    .description('step, model, layout, files, tensors, sizes and metrics of a checkpoint')
    .argument('<path>', 'checkpoint folder, checkpoints folder (its latest) or run folder')
    .option('--json', 'print one JSON object')
    .action(exitCode(async (path: string, o: { json?: boolean }) => {
      const dir = await resolveCheckpointDir(path);
      const m = await readManifest(dir);
      process.stdout.write(o.json ? JSON.stringify(describe(dir, m), null, 2) + '\n' : formatManifest(dir, m));
      return 0;
    }));
  cmd.command('verify')
    .description('check every file of a checkpoint: present, complete, checksums')
    .argument('<path>', 'checkpoint folder, checkpoints folder (its latest) or run folder')
    .action(exitCode(async (path: string) => {
      const r = await verifyCheckpoint(path);
      for (const f of r.files) process.stdout.write(`${f.ok ? 'ok  ' : 'FAIL'}  ${f.name}  ${formatBytes(f.bytes)}${f.code ? `  ${f.code}` : ''}\n`);
      for (const p of r.problems) process.stderr.write(`trainer: ${p.format()}\n`);
      const mib = r.bytes / 2 ** 20;
      process.stdout.write(r.problems.length
        ? `${r.dir}: ${r.problems.length} problem(s); do not resume from it\n`
        : `${r.dir}: step ${r.manifest.step}, ${r.files.length} file(s), ${mib.toFixed(1)} MiB verified in ${r.ms.toFixed(0)} ms (${(mib / (r.ms / 1000)).toFixed(0)} MiB/s)\n`);
      return r.problems.length ? 1 : 0;
    }));
  return cmd;
}

/** Bytes of every kind of state the checkpoint holds (params, m, v; params16 under bf16/fp16). */
function stateBytes(m: Manifest): Record<string, number> {
  const out: Record<string, number> = {};
  for (const kind of stateKinds(m)) out[kind] = m.tensors.reduce((s, t) => s + (t.state[kind] ?? []).reduce((a, p) => a + p.length, 0), 0);
  return out;
}

function describe(dir: string, m: Manifest): Record<string, unknown> {
  const { tensors, layout, ...rest } = m;
  const { partition: _p, ...shape } = layout;
  return {
    dir, ...rest, layout: shape, stateDtypes: stateDtypes(m),
    parameters: tensors.reduce((s, t) => s + tensorSize(t.shape), 0),
    bytes: { files: m.files.reduce((s, f) => s + f.bytes, 0), ...stateBytes(m) },
    tensors: tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype, pieces: Object.fromEntries(stateKinds(m).map((k) => [k, (t.state[k] ?? []).length])) })),
  };
}

function formatManifest(dir: string, m: Manifest): string {
  const c = m.model.config as Record<string, unknown>;
  const params = m.tensors.reduce((s, t) => s + tensorSize(t.shape), 0);
  const l = m.layout;
  const s = m.lrSchedule;
  const sizes = stateBytes(m);
  const kinds = stateKinds(m);
  const dtypes = stateDtypes(m);
  const lines = [
    `checkpoint   ${dir}`,
    `format       ${m.format} v${m.version}, written ${m.createdAt}`,
    `step         ${m.step} done (optimizer step ${m.optimizerStep}); next learning rate ${s.lrAtStep.toPrecision(4)} (warmup ${s.warmupSteps} steps, cosine ${s.lr.toPrecision(4)} -> ${s.minLr.toPrecision(4)} by step ${s.decaySteps})`,
    `model        ${m.model.name}: vocab ${String(c.vocabSize)}, context ${String(c.contextLength)}, ${String(c.layers)} layers, ${String(c.heads)} heads, d ${String(c.dModel)} (${params.toLocaleString('en-US')} parameters, ${m.tensors.length} tensors)`,
    `layout       world ${l.world} = dp ${l.dp} x tp ${l.tp} x pp ${l.pp}, ZeRO stage ${l.zeroStage}, ${l.precision}`,
    `state        ${kinds.map((k) => `${k} ${dtypes[k]} ${formatBytes(sizes[k])}`).join(', ')}${l.precision !== 'fp32' && !dtypes.params16 ? ` (no 16-bit parameters: format v${m.version} saved the fp32 master only)` : ''}`,
    `random       sampler ${m.rng.sampler.kind} (seed ${m.rng.sampler.seed}, next step ${m.rng.sampler.nextStep}); dropout ${m.rng.dropout ?? 'none'}; loss scale ${m.lossScale ? m.lossScale.scale : `none (${l.precision})`}`,
    `metrics      ${Object.entries(m.metrics).map(([k, v]) => `${k} ${typeof v === 'number' ? Number(v.toPrecision(6)) : 'n/a'}`).join(', ') || 'none'}`,
    `tokenizer    ${m.tokenizer ? `${m.tokenizer.file} (sha256 ${m.tokenizer.sha256.slice(0, 16)}...)` : 'none'}`,
    `files        ${m.files.length}, ${formatBytes(m.files.reduce((a, f) => a + f.bytes, 0))}`,
    ...m.files.map((f) => `  ${f.name}  ${formatBytes(f.bytes).padStart(10)}  rank ${f.rank ?? '-'}  sha256 ${f.sha256.slice(0, 16)}...`),
    `tensors      ${m.tensors.length}`,
    ...m.tensors.map((t) => `  ${t.name.padEnd(28)} ${JSON.stringify(t.shape).padEnd(14)} ${t.dtype}  pieces ${kinds.map((k) => (t.state[k] ?? []).length).join('/')} (${kinds.join('/')})`),
  ];
  return lines.join('\n') + '\n';
}
