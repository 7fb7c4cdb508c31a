import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { asFloat32, readSafetensors } from '@trainer/checkpoint';
import { runTrainer, type RunResult } from './processes.js';
import { tinyJobArgs, type tinyWorkspace } from './tiny-run.js';

/** A finished tiny run: exit, output, summary, metrics lines and final parameters. */
export interface TinyRun extends RunResult {
  out: string;
  output: string;
  summary: { ok: boolean; losses: (number | null)[]; val_loss: number; checkpoints?: Record<string, unknown>[] } & Record<string, unknown>;
  metrics: Record<string, number | string | null>[];
  params: Map<string, Float32Array>;
  modelBytes: Buffer | undefined;
}

export type Workspace = ReturnType<typeof tinyWorkspace>;

/** `trainer launch` of the tiny job into ws.out(name), with `extra` options. */
export async function tinyRun(ws: Workspace, name: string, nodes: number, extra: string[], env: NodeJS.ProcessEnv = {}): Promise<TinyRun> {
  const out = ws.out(name);
  const r = await runTrainer(['launch', '--nodes', String(nodes), ...tinyJobArgs(ws, ['--out', out, ...extra])], { env });
  const modelFile = join(out, 'model', 'model.safetensors');
  const hasModel = existsSync(modelFile);
  const model = hasModel ? await readSafetensors(modelFile) : undefined;
  return {
    ...r, out, output: r.stdout + r.stderr,
    summary: existsSync(join(out, 'summary.json')) ? JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) : { ok: false, losses: [], val_loss: NaN },
    metrics: existsSync(join(out, 'metrics.jsonl')) ? readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [],
    params: new Map(model ? [...model.tensors].map(([n, t]) => [n, asFloat32(t)]) : []),
    modelBytes: hasModel ? readFileSync(modelFile) : undefined,
  };
}

/** Largest absolute difference between two runs' final parameters. */
export function maxParamDiff(a: TinyRun, b: TinyRun): number {
  let max = 0;
  for (const [name, x] of a.params) {
    const y = b.params.get(name);
    if (!y || y.length !== x.length) return Infinity;
    for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i] - y[i]));
  }
  return a.params.size ? max : Infinity;
}
