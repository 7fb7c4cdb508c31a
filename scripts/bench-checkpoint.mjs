#!/usr/bin/env node
// Sharded checkpoint benchmark: trains MODEL on NODES workers (ZeRO stage ZERO) on synthetic
// tokens, saving every SAVE_EVERY steps, then resumes from the first checkpoint on the same
// layout and on 1 worker (resharded). Prints what a save costs the training loop (the copy out
// of the trainer, the whole blocked time), the background write and the coordinator's commit,
// checkpoint size, and resume times, from the run's own metrics.jsonl, summary.json and log.
//
//   node scripts/bench-checkpoint.mjs                     # gpt-mini, 2 workers, ZeRO 1
//   MODEL=gpt2-124m SEQ=64 STEPS=3 node scripts/bench-checkpoint.mjs
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../packages/cli/bin/trainer.js', import.meta.url));
const env = (k, d) => process.env[k] ?? d;
const model = env('MODEL', 'gpt-mini');
const nodes = Number(env('NODES', '2'));
const zero = env('ZERO', '1');
const steps = Number(env('STEPS', '6'));
const saveEvery = Number(env('SAVE_EVERY', '2'));
const seq = env('SEQ', '128');
const dir = mkdtempSync(join(tmpdir(), 'bench-ckpt-'));
const common = ['--model', model, '--data', 'synthetic', '--backend', 'wasm', '--steps', String(steps), '--global-batch', String(2 * nodes),
  '--seq-len', seq, '--eval-batches', '0', '--sample-tokens', '0'];

function launch(name, n, extra) {
  const started = Date.now();
  const r = spawnSync(process.execPath, [cli, 'launch', '--nodes', String(n), ...common, '--out', join(dir, name), ...extra], { encoding: 'utf8', env: { ...process.env, TRAINER_LOG_FORMAT: 'json' }, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${name} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  const metrics = readFileSync(join(dir, name, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const summary = JSON.parse(readFileSync(join(dir, name, 'summary.json'), 'utf8'));
  return { metrics, summary, log: r.stdout + r.stderr, wallMs: Date.now() - started };
}
const max = (xs) => Math.max(...xs);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const f = (x, d = 1) => (typeof x === 'number' ? x.toFixed(d) : 'n/a');

const run = launch('train', nodes, ['--zero', zero, '--save-every', String(saveEvery)]);
const saves = [...new Set(run.metrics.filter((m) => m.checkpoint_step !== undefined).map((m) => m.checkpoint_step))];
const stepMs = run.metrics.filter((m) => m.rank === 0 && typeof m.step_ms === 'number');
const afterSave = stepMs.filter((m) => saves.includes(m.step) && m.step > 0).map((m) => m.step_ms);
const otherSteps = stepMs.filter((m) => !saves.includes(m.step) && m.step > 0).map((m) => m.step_ms);
const rows = saves.map((s) => {
  const per = run.metrics.filter((m) => m.checkpoint_step === s);
  const ev = run.summary.checkpoints.find((e) => e.step === s) ?? {};
  return { step: s, copy_ms: max(per.map((m) => m.checkpoint_copy_ms)), blocked_ms: max(per.map((m) => m.checkpoint_blocked_ms)), shard_mib: max(per.map((m) => m.checkpoint_shard_bytes)) / 2 ** 20, ...ev };
});
const first = saves[0];
const ckpt = join(dir, 'train', 'checkpoints', `step-${String(first).padStart(6, '0')}`);
const resumeOf = (r) => ({ resume_ms_max: max(r.metrics.filter((m) => m.resume_ms !== undefined).map((m) => m.resume_ms)), verify_ms: Number(/checksums verified in (\d+) ms/.exec(r.log)?.[1]) });
const same = resumeOf(launch('resume-same', nodes, ['--zero', zero, '--resume', ckpt]));
const reshard = resumeOf(launch('resume-1', 1, ['--zero', '0', '--resume', ckpt]));

process.stdout.write(`\nsharded checkpoints: ${model}, ${nodes} workers, ZeRO ${zero}, save every ${saveEvery} of ${steps} steps (wasm, ${seq} tokens x ${2 * nodes} sequences per step)\n`);
process.stdout.write(`step   copy ms  blocked ms  shard MiB  write ms (bg)  verify ms  commit ms  checkpoint MiB\n`);
for (const r of rows) process.stdout.write(`${String(r.step).padStart(4)} ${f(r.copy_ms).padStart(9)} ${f(r.blocked_ms).padStart(11)} ${f(r.shard_mib).padStart(10)} ${f(r.write_ms_max).padStart(14)} ${f(r.verify_ms).padStart(10)} ${f(r.commit_ms).padStart(10)} ${f(r.bytes / 2 ** 20).padStart(15)}\n`);
process.stdout.write(`step time (rank 0, median): ${f(median(otherSteps), 0)} ms; steps running while a shard was written: ${f(median(afterSave), 0)} ms\n`);
process.stdout.write(`resume from ${`step-${first}`}: verify (launcher, all files) ${f(same.verify_ms, 0)} ms; load on ${nodes} workers ZeRO ${zero} ${f(same.resume_ms_max, 0)} ms; resharded to 1 worker ZeRO 0 ${f(reshard.resume_ms_max, 0)} ms\n`);
process.stdout.write(JSON.stringify({ bench: 'checkpoint', model, nodes, zero: Number(zero), saves: rows, step_ms_median: median(otherSteps), step_ms_during_write_median: median(afterSave), resume_same: same, resume_resharded: reshard }) + '\n');
rmSync(dir, { recursive: true, force: true });
