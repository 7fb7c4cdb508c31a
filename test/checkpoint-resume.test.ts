import { createHash } from 'node:crypto';
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { asFloat32, readSafetensors } from '@trainer/checkpoint';
import { encodeBf16, encodeFp16 } from '@trainer/comm';
import { killAllStarted, killMarked, runTrainer, startTrainer, waitFor } from './helpers/processes.js';
import { maxParamDiff, tinyRun, type TinyRun } from './helpers/checkpoint-run.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/**
 * Resuming from sharded checkpoints, multi-process. On the same layout the continued run is
 * bitwise identical to the uninterrupted one (every loss, the validation loss, the final
 * parameters file byte for byte). Under another worker count or ZeRO stage each rank reads only
 * its slices, and the trajectory matches within the data-parallel equivalence tolerance.
 */
const LOSS_RTOL = 2e-5;
const PARAM_ATOL = 2e-5;
const JOB = ['--steps', '8', '--global-batch', '12', '--eval-every', '4', '--layers', '2'];

function expectSameTail(run: TinyRun, ref: TinyRun, from: number, exact: boolean, label: string, paramAtol = PARAM_ATOL): void {
  expect(run.code, label + '\n' + run.output).toBe(0);
  for (let step = from; step < ref.summary.losses.length; step++) {
    const a = run.summary.losses[step]!;
    const b = ref.summary.losses[step]!;
    if (exact) expect(a, `${label} step ${step}`).toBe(b);
    else expect(Math.abs(a - b), `${label} step ${step}`).toBeLessThanOrEqual(LOSS_RTOL * b);
  }
  // Steps before the checkpoint were not run again.
  expect(run.summary.losses.slice(0, from).every((l) => l === null), label).toBe(true);
  if (exact) {
    expect(run.summary.val_loss, label).toBe(ref.summary.val_loss);
    expect(run.modelBytes!.equals(ref.modelBytes!), `${label}: model.safetensors differs`).toBe(true);
  } else {
    expect(Math.abs(run.summary.val_loss - ref.summary.val_loss), label).toBeLessThanOrEqual(LOSS_RTOL * ref.summary.val_loss);
    expect(maxParamDiff(run, ref), label).toBeLessThanOrEqual(paramAtol);
  }
}

/**
 * A bf16/fp16 checkpoint holds, beside the fp32 master params and m, v, the 16-bit working
 * parameters: in every shard each `params/<tensor>` piece has a `params16/<tensor>` piece whose
 * codes are exactly the master's rounding, at half its bytes; `checkpoint inspect` and `verify`
 * show and check them.
 */
async function expectParams16(ckpt: string, precision: 'bf16' | 'fp16'): Promise<void> {
  const dtype = precision === 'bf16' ? 'BF16' : 'F16';
  const manifest = JSON.parse(readFileSync(join(ckpt, 'manifest.json'), 'utf8'));
  expect(manifest.version).toBe(2);
  expect(manifest.stateDtypes).toEqual({ params: 'F32', m: 'F32', v: 'F32', params16: dtype });
  let checked = 0;
  for (const { name } of manifest.files) {
    const shard = await readSafetensors(join(ckpt, name));
    const names = [...shard.tensors.keys()];
    expect(names.filter((n) => n.startsWith('params16/')).map((n) => n.slice(9))).toEqual(names.filter((n) => n.startsWith('params/')).map((n) => n.slice(7)));
    for (const [n, t] of shard.tensors) {
      if (!n.startsWith('params/')) continue;
      const half = shard.tensors.get(`params16/${n.slice(7)}`)!;
      expect(half.dtype).toBe(dtype);
      const master = asFloat32(t);
      const rounded = new Uint16Array(master.length);
      (precision === 'bf16' ? encodeBf16 : encodeFp16)(master, rounded);
      const codes = new Uint16Array(half.data.buffer, half.data.byteOffset, half.data.byteLength / 2);
      for (let i = 0; i < codes.length; i++) if (codes[i] !== rounded[i]) throw new Error(`${name} ${n}[${i}]: params16 ${codes[i]}, round(master) ${rounded[i]}`);
      checked += codes.length;
    }
  }
  const info = JSON.parse((await runTrainer(['checkpoint', 'inspect', ckpt, '--json'])).stdout);
  expect(checked).toBe(info.parameters); // every element once
  expect(info.bytes.params16 * 2).toBe(info.bytes.params);
  expect(info.bytes.params).toBe(4 * info.parameters);
  expect((await runTrainer(['checkpoint', 'inspect', ckpt])).stdout).toMatch(new RegExp(`state +params F32 [\\d.]+ KiB, m F32 [\\d.]+ KiB, v F32 [\\d.]+ KiB, params16 ${dtype} [\\d.]+ KiB`));
  const verify = await runTrainer(['checkpoint', 'verify', ckpt]);
  expect(verify.code, verify.stdout + verify.stderr).toBe(0);
}

/**
 * The checkpoint an fp32 run wrote before format version 2, made from one written now: the same
 * shards but for their header's format_version (one character), the manifest at version 1
 * without stateDtypes, checksums recomputed.
 */
function asVersion1(ckpt: string, dest: string): string {
  cpSync(ckpt, dest, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(dest, 'manifest.json'), 'utf8'));
  expect(manifest.stateDtypes).toEqual({ params: 'F32', m: 'F32', v: 'F32' });
  for (const f of manifest.files) {
    const bytes = readFileSync(join(dest, f.name));
    const at = bytes.indexOf('"format_version":"2"');
    expect(at, f.name).toBeGreaterThan(0);
    bytes.write('"format_version":"1"', at);
    writeFileSync(join(dest, f.name), bytes);
    f.sha256 = createHash('sha256').update(bytes).digest('hex');
  }
  delete manifest.stateDtypes;
  writeFileSync(join(dest, 'manifest.json'), JSON.stringify({ ...manifest, version: 1 }, null, 1));
  return dest;
}

describe('resume from sharded checkpoints (multi-process)', () => {
  it('same layout: bitwise identical; other worker counts and ZeRO stages: within the equivalence tolerance, each rank reading only its slices', async () => {
    const ws = tinyWorkspace();
    const ref = await tinyRun(ws, 'ref', 2, [...JOB, '--zero', '1', '--save-every', '3']);
    expect(ref.code, ref.output).toBe(0);
    expect(ref.summary.losses[7]!).toBeLessThan(ref.summary.losses[0]!);
    expect(readdirSync(join(ref.out, 'checkpoints')).sort()).toEqual(['latest', 'step-000003', 'step-000006', 'step-000008']);
    const ckpt = join(ref.out, 'checkpoints', 'step-000003');

    // The resumed runs are independent of each other: they run at once (each in its own folder).
    const reshards = [[1, 0], [3, 2], [4, 3]];
    const [same, v1, ...resharded] = await Promise.all([
      tinyRun(ws, 'same', 2, [...JOB, '--zero', '1', '--resume', ckpt]),
      // A version 1 checkpoint (fp32 runs before 16-bit parameter shards) resumes just as well.
      tinyRun(ws, 'same-v1', 2, [...JOB, '--zero', '1', '--resume', asVersion1(ckpt, join(ws.dir, 'v1', 'step-000003'))]),
      ...reshards.map(([nodes, zero]) => tinyRun(ws, `reshard-${nodes}-${zero}`, nodes, [...JOB, '--zero', String(zero), '--resume', ckpt])),
    ]);
    expectSameTail(same, ref, 3, true, 'same layout (2 workers, ZeRO 1)');
    expectSameTail(v1, ref, 3, true, 'same layout from a version 1 checkpoint');

    const total = ref.params.size && [...ref.params.values()].reduce((s, p) => s + p.length, 0);
    for (const [i, [nodes, zero]] of reshards.entries()) {
      const label = `${nodes} worker(s), ZeRO ${zero}`;
      const run = resharded[i]!;
      expectSameTail(run, ref, 3, false, label);
      expect(run.output).toContain(`resharding: the checkpoint was written by 2 worker(s) (dp 2 x tp 1 x pp 1) with ZeRO 1; this run has ${nodes} (dp ${nodes} x tp 1 x pp 1) with ZeRO ${zero}`);
      const reads = run.metrics.filter((m) => typeof m.resume_bytes_read === 'number').map((m) => m.resume_bytes_read as number);
      expect(reads.length, label).toBe(nodes);
      // Stage 0 keeps everything (params, m, v: 12 bytes per parameter on every rank); stage 3
      // only its pieces of all three (together: the checkpoint once); stages 1-2 all parameters
      // but only their pieces of m and v (the engine may read its parameter pieces a second time
      // for its master copy: at most 4/N more). Pieces differ by under one element per unit.
      const full = 12 * total;
      const slack = 12 * 8;
      const sum = reads.reduce((a, b) => a + b, 0);
      for (const r of reads) {
        if (zero === 0) expect(r, label).toBe(full);
        else if (zero === 3) expect(Math.abs(r - full / nodes), label).toBeLessThanOrEqual(slack);
        else {
          expect(r, label).toBeGreaterThanOrEqual(4 * total + (8 * total) / nodes - slack);
          expect(r, label).toBeLessThanOrEqual(4 * total + (12 * total) / nodes + slack);
        }
      }
      if (zero === 3) expect(sum, label).toBe(full);
    }
  }, 300_000);

  it('tensor and pipeline parallel: a tp 2 x pp 2 checkpoint resumes bitwise on its layout, and as 1 worker, dp 2 x tp 2 with ZeRO 3, and pp 2', async () => {
    // Tolerances of test/tensor-parallel.test.ts: partial sums in another order, amplified by Adam in near-zero gradients.
    const TP_PARAM_ATOL = 1e-4;
    const job = ['--steps', '6', '--global-batch', '8', '--micro-batches', '2', '--eval-every', '3', '--layers', '4'];
    const ws = tinyWorkspace();
    const ref = await tinyRun(ws, 'tp2pp2', 4, [...job, '--tp', '2', '--pp', '2', '--save-every', '3']);
    expect(ref.code, ref.output).toBe(0);
    const ckpt = join(ref.out, 'checkpoints', 'step-000003');
    const manifest = JSON.parse(readFileSync(join(ckpt, 'manifest.json'), 'utf8'));
    expect(manifest.layout).toEqual({ world: 4, dp: 1, tp: 2, pp: 2, zeroStage: 0, precision: 'fp32' });
    // Column-parallel c_attn: each tp rank wrote its q, k and v columns; wte once (not the last stage's tied copy).
    const cAttn = manifest.tensors.find((t: { name: string }) => t.name === 'h.0.attn.c_attn.weight');
    expect(cAttn.state.params.map((p: { slice: { cols: number[][] } }) => p.slice.cols)).toEqual([[[0, 16], [32, 48], [64, 80]], [[16, 32], [48, 64], [80, 96]]]);
    expect(manifest.tensors.find((t: { name: string }) => t.name === 'wte.weight').state.params.length).toBe(2); // vocab-parallel rows, first stage only

    // The resumed runs are independent of each other: they run at once.
    const layouts = [[1, []], [4, ['--tp', '2', '--zero', '3']], [2, ['--pp', '2']]] as [number, string[]][];
    const [same, ...resharded] = await Promise.all([
      tinyRun(ws, 'same', 4, [...job, '--tp', '2', '--pp', '2', '--resume', ckpt]),
      ...layouts.map(([nodes, layout]) => tinyRun(ws, `from-tp2pp2-${nodes}-${layout.join('')}`, nodes, [...job, ...layout, '--resume', ckpt])),
    ]);
    expectSameTail(same, ref, 3, true, 'same layout (tp 2 x pp 2)');
    for (const [i, [nodes, layout]] of layouts.entries()) {
      const label = `${nodes} worker(s) ${layout.join(' ')}`;
      const run = resharded[i]!;
      expectSameTail(run, ref, 3, false, label, TP_PARAM_ATOL);
      expect(run.output, label).toContain('resharding: the checkpoint was written by 4 worker(s) (dp 1 x tp 2 x pp 2) with ZeRO 0');
    }
  }, 300_000);

  it('fp16: the loss scale is saved and restored (bitwise resume); the fp32 master resumes in bf16 and fp32', async () => {
    const ws = tinyWorkspace();
    const job = [...JOB, '--zero', '2'];
    const ref = await tinyRun(ws, 'fp16', 2, [...job, '--precision', 'fp16', '--save-every', '3']);
    expect(ref.code, ref.output).toBe(0);
    const ckpt = join(ref.out, 'checkpoints', 'step-000003');
    const manifest = JSON.parse(readFileSync(join(ckpt, 'manifest.json'), 'utf8'));
    expect(manifest.layout.precision).toBe('fp16');
    expect(manifest.lossScale).toEqual({ scale: 65536, goodSteps: 3, skipsAtMinimum: 0 });
    // The scale really comes from the checkpoint: one about to grow (999 good steps of 1000) continues so
    // (a copy of the checkpoint with that scale, so that every run below can run at once).
    const scaled = join(ws.dir, 'scaled', 'step-000003');
    cpSync(ckpt, scaled, { recursive: true });
    writeFileSync(join(scaled, 'manifest.json'), JSON.stringify({ ...manifest, lossScale: { scale: 1024, goodSteps: 999, skipsAtMinimum: 0 } }));
    const precisions = ['bf16', 'fp32'];
    const [, same, grown, ...others] = await Promise.all([
      expectParams16(ckpt, 'fp16'),
      tinyRun(ws, 'fp16-same', 2, [...job, '--precision', 'fp16', '--resume', ckpt]),
      tinyRun(ws, 'fp16-scale', 2, [...job, '--precision', 'fp16', '--resume', scaled]),
      // Another precision continues from the same fp32 master.
      ...precisions.map((precision) => tinyRun(ws, `fp16-to-${precision}`, 1, [...job, '--precision', precision, '--resume', ckpt])),
    ]);
    expectSameTail(same, ref, 3, true, 'same layout and precision (fp16)');
    const scales = same.metrics.filter((m) => m.rank === 0 && typeof m.loss_scale === 'number').map((m) => m.loss_scale);
    expect(scales.length).toBe(5);
    expect(scales.every((s) => s === 65536)).toBe(true);
    expect(grown.code, grown.output).toBe(0);
    expect(grown.metrics.filter((m) => m.rank === 0 && typeof m.loss_scale === 'number').map((m) => m.loss_scale)).toEqual([1024, 2048, 2048, 2048, 2048]);
    // Another precision continues from the same fp32 master: losses within mixed precision's 1% of fp16's.
    for (const [i, precision] of precisions.entries()) {
      const run = others[i]!;
      expect(run.code, run.output).toBe(0);
      expect(run.output).toContain(`with ZeRO 2, fp16; this run has 1 (dp 1 x tp 1 x pp 1) with ZeRO 2${precision === 'fp32' ? '' : ', bf16'}`);
      for (let step = 3; step < 8; step++) expect(Math.abs(run.summary.losses[step]! - ref.summary.losses[step]!) / ref.summary.losses[step]!, `${precision} step ${step}`).toBeLessThan(0.01);
    }
  }, 300_000);

  it('bf16: the checkpoint holds params16 = round(master) at half the bytes; resuming from it is bitwise identical, down to the next checkpoints\' shards', async () => {
    const ws = tinyWorkspace();
    const job = [...JOB, '--zero', '3', '--precision', 'bf16'];
    const ref = await tinyRun(ws, 'bf16', 2, [...job, '--save-every', '3']);
    expect(ref.code, ref.output).toBe(0);
    const ckpt = join(ref.out, 'checkpoints', 'step-000003');
    const [, same] = await Promise.all([expectParams16(ckpt, 'bf16'), tinyRun(ws, 'bf16-same', 2, [...job, '--save-every', '3', '--resume', ckpt])]);
    expectSameTail(same, ref, 3, true, 'same layout and precision (bf16, ZeRO 3)');
    for (const step of ['step-000006', 'step-000008']) {
      for (const shard of ['rank-00000-of-00002.safetensors', 'rank-00001-of-00002.safetensors']) {
        const a = readFileSync(join(same.out, 'checkpoints', step, shard));
        expect(a.equals(readFileSync(join(ref.out, 'checkpoints', step, shard))), `${step}/${shard}`).toBe(true);
      }
    }
  }, 300_000);

  it('--resume auto: starts fresh when there is none, after a crash continues from the newest checkpoint that verifies, skipping a corrupt one', async () => {
    const ws = tinyWorkspace();
    const steps = ['--steps', '60', '--eval-every', '0', '--eval-batches', '1', '--sample-tokens', '0'];
    // The uninterrupted reference runs while the crashing run below does (its own folder).
    const reference = tinyRun(ws, 'ref', 2, steps);

    // A run that crashes (every process SIGKILLed) once it has committed checkpoint 6.
    const out = ws.out('crashed');
    const run = startTrainer(['launch', '--nodes', '2', ...tinyJobArgs(ws, ['--out', out, ...steps, '--save-every', '3', '--resume', 'auto'])]);
    const latest = () => {
      try {
        return readFileSync(join(out, 'checkpoints', 'latest'), 'utf8').trim();
      } catch {
        return '';
      }
    };
    await waitFor(() => latest() >= 'step-000006', 120_000, 'checkpoint step-000006');
    killMarked(run.marker);
    const crashed = await run.result;
    expect(crashed.signal ?? crashed.code, 'the run finished before it could be killed').not.toBe(0);
    expect(run.output()).toMatch(/--resume auto: no checkpoint in .* yet; starting from scratch/);

    // Break the newest committed checkpoint: --resume auto must skip it and say why.
    const committed = readdirSync(join(out, 'checkpoints')).filter((n) => /^step-\d+$/.test(n) && readdirSync(join(out, 'checkpoints', n)).includes('manifest.json')).sort();
    expect(committed.length).toBeGreaterThanOrEqual(2);
    const [older, newest] = committed.slice(-2);
    const shard = join(out, 'checkpoints', newest, 'rank-00001-of-00002.safetensors');
    const bytes = readFileSync(shard);
    bytes[bytes.length - 5] ^= 0x40;
    writeFileSync(shard, bytes);

    const [ref, resumed] = await Promise.all([reference, tinyRun(ws, 'crashed', 2, [...steps, '--save-every', '3', '--resume', 'auto'])]);
    expect(ref.code, ref.output).toBe(0);
    expect(resumed.code, resumed.output).toBe(0);
    expect(resumed.output).toContain(`--resume auto: skipping checkpoint ${newest}, which does not verify: TRAINER_ERR_CHECKPOINT_CHECKSUM: ${shard}`);
    expect(resumed.output).toContain(`resuming from ${join(out, 'checkpoints', older)} at step ${Number(older.slice(5))}`);
    // The interrupted, corrupted and resumed run ends exactly where the uninterrupted one did.
    expect(resumed.modelBytes!.equals(ref.modelBytes!)).toBe(true);
    expect(resumed.summary.losses[59]).toBe(ref.summary.losses[59]);
    // Saves that were cut off by the crash left temporary folders; the resumed run removed them.
    expect(readdirSync(join(out, 'checkpoints')).filter((n) => n.startsWith('.'))).toEqual([]);
    // metrics.jsonl kept the crashed run's lines and added the resumed run's.
    const lossSteps = resumed.metrics.filter((m) => typeof m.loss === 'number').map((m) => m.step as number);
    expect(lossSteps.filter((s) => s === Number(older.slice(5))).length).toBe(2);
  }, 300_000);
});
