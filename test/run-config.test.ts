import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseManifest } from '@trainer/checkpoint';
import { killAllStarted, runTrainer } from './helpers/processes.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/** The tiny job's flags as YAML lines: `--global-batch 4` -> `global-batch: 4` (JSON scalars are YAML scalars). */
function tinyConfigYaml(ws: ReturnType<typeof tinyWorkspace>, extra: Record<string, string | number>): string {
  const args = tinyJobArgs(ws);
  const config: Record<string, string | number> = {};
  for (let i = 0; i < args.length; i += 2) config[args[i].replace(/^--/, '')] = Number.isNaN(Number(args[i + 1])) ? args[i + 1] : Number(args[i + 1]);
  return Object.entries({ ...config, ...extra }).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join('\n') + '\n';
}

/** The resolved configuration a run recorded: its latest checkpoint's manifest holds what run-config.yaml holds. */
function manifestOf(out: string): { path: string; manifest: Record<string, unknown> & { runConfig?: Record<string, unknown> } } {
  const path = join(out, 'checkpoints', readFileSync(join(out, 'checkpoints', 'latest'), 'utf8').trim(), 'manifest.json');
  return { path, manifest: JSON.parse(readFileSync(path, 'utf8')) };
}

describe('trainer launch --config (multi-process)', () => {
  it('runs a file\'s job with the command line\'s overrides, saves the resolved config in the run folder and its checkpoints, and runs the same job again from it', async () => {
    const ws = tinyWorkspace();
    const file = join(ws.dir, 'run.yaml');
    writeFileSync(file, tinyConfigYaml(ws, { steps: 2, 'save-every': 2 }));
    const out = ws.out('first');
    const first = await runTrainer(['launch', '--nodes', '2', '--config', file, '--steps', '4', '--out', out]);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ ok: true, world: 2, steps: 4 }); // --steps 4 beat the file's 2

    // The resolved configuration (the file, the flags and the defaults, by long option name) is in
    // the checkpoint's manifest, which also parses without it (as written before), and in the run
    // folder's run-config.yaml.
    const { path: manifestPath, manifest } = manifestOf(out);
    const resolved = manifest.runConfig!;
    expect(resolved).toMatchObject({ nodes: 2, steps: 4, 'save-every': 2, 'global-batch': 4, layers: 1, 'd-model': 32, lr: 3e-3, seed: 1337, 'no-overlap': false, out, data: [ws.corpus] });
    expect(resolved).not.toHaveProperty('config');
    expect(parseManifest(JSON.stringify(manifest), manifestPath).runConfig).toEqual(resolved);
    delete manifest.runConfig;
    expect(parseManifest(JSON.stringify(manifest), manifestPath).runConfig).toBeUndefined();
    const saved = join(out, 'run-config.yaml');
    const yaml = readFileSync(saved, 'utf8');
    expect(yaml).toMatch(/^# trainer launch: the resolved run configuration/);
    for (const line of ['nodes: 2', 'steps: 4', 'save-every: 2', 'global-batch: 4', 'no-overlap: false', `out: ${out}`]) expect(yaml.split('\n')).toContain(line);

    // The same run again from the saved file alone (into another folder): the same losses.
    const out2 = ws.out('again');
    const again = await runTrainer(['launch', '--config', saved, '--out', out2]);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    const summary2 = JSON.parse(readFileSync(join(out2, 'summary.json'), 'utf8'));
    expect(summary2).toMatchObject({ ok: true, world: 2, steps: 4 });
    expect(summary2.losses).toEqual(summary.losses);
    expect(summary2.val_loss).toBe(summary.val_loss);
    expect(manifestOf(out2).manifest.runConfig).toEqual({ ...resolved, out: out2 });
  });

  it('refuses an unknown key by name, and a bad value with the message of its flag, before starting anything', async () => {
    const ws = tinyWorkspace();
    const unknown = join(ws.dir, 'unknown.yaml');
    writeFileSync(unknown, 'globalBatch: 8\nsteps: 2\n');
    const r = await runTrainer(['launch', '--config', unknown, '--out', ws.out('unknown')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`trainer: TRAINER_ERR_CONFIG_UNKNOWN_KEY: ${unknown}: unknown key 'globalBatch': not an option of trainer launch`);
    expect(r.stderr).toContain('did you mean global-batch?');
    expect(existsSync(ws.out('unknown'))).toBe(false);

    const bad = join(ws.dir, 'bad.yaml');
    writeFileSync(bad, 'steps: many\n');
    const byFile = await runTrainer(['launch', '--config', bad]);
    const byFlag = await runTrainer(['launch', '--steps', 'many']);
    expect(byFile.code).toBe(2);
    expect(byFlag.code).toBe(2);
    const flagMessage = byFlag.stderr.split('\n')[0].replace('trainer: TRAINER_ERR_USAGE: ', '');
    expect(flagMessage).toMatch(/^option '--steps <n>' argument 'many' is invalid\. expected an integer/);
    expect(byFile.stderr.split('\n')[0]).toBe(`trainer: TRAINER_ERR_CONFIG_VALUE: ${bad}: steps: ${flagMessage}`);
  });
});
