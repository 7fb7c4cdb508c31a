import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommanderError, type Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { TrainerError } from '@trainer/errors';
import { buildProgram } from './main.js';
import { nearMatches, resolvedRunConfig, RUN_CONFIG_FILE, writeRunConfig } from './run-config.js';

/**
 * `--config FILE` on launch, coordinator and finetune, parsed by the real commands with their
 * actions replaced (nothing is launched): keys, precedence, validation, and the resolved config.
 */
const dir = mkdtempSync(join(tmpdir(), 'run-config-'));
let files = 0;
function file(text: string, ext = 'yaml'): string {
  const path = join(dir, `run-${files++}.${ext}`);
  writeFileSync(path, text);
  return path;
}

interface Parsed { opts: Record<string, unknown>; cmd: Command }

/** Parses `trainer <args>` with the command's action replaced by a capture; rejects as main() would see it. */
async function parse(args: string[]): Promise<Parsed> {
  const program = buildProgram();
  let parsed: Parsed | undefined;
  for (const sub of program.commands) {
    sub.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
    if (sub.name() !== 'finetune') sub.action((opts: Record<string, unknown>, cmd: Command) => { parsed = { opts, cmd }; });
  }
  await program.parseAsync(['node', 'trainer', ...args]);
  if (!parsed) throw new Error('the action did not run');
  return parsed;
}

/** The error `trainer <args>` is refused with: a TrainerError, or commander's usage error as main() prints it. */
async function refusal(args: string[]): Promise<{ code: string; message: string; hint?: string }> {
  try {
    await parse(args);
  } catch (err) {
    if (err instanceof TrainerError) return { code: err.code, message: err.message, hint: err.hint };
    if (err instanceof CommanderError) return { code: 'TRAINER_ERR_USAGE', message: err.message.replace(/^error: /, '') };
    throw err;
  }
  throw new Error(`trainer ${args.join(' ')} was accepted`);
}

describe('trainer launch --config', () => {
  it('sets options by their long names; flags on the command line override the file; the rest keep their defaults', async () => {
    const config = file([
      'steps: 7', 'global-batch: 8', 'lr: 3e-4', 'data: [a.txt, b.txt]', 'pp-split: [2, 1]', 'no-overlap: true',
      'activation-checkpointing: true', 'max-memory: 600MiB', 'precision: bf16', 'sample-prompt: "Call me "',
    ].join('\n'));
    const { opts, cmd } = await parse(['launch', '--config', config, '--steps', '9', '--data', 'c.txt']);
    expect(opts).toMatchObject({
      steps: 9, globalBatch: 8, lr: 3e-4, data: ['c.txt'], ppSplit: [2, 1], overlap: false, activationCheckpointing: true,
      maxMemory: 600 * 2 ** 20, precision: 'bf16', samplePrompt: 'Call me ', beta2: 0.95, zero: 0,
    });
    expect(cmd.getOptionValueSource('steps')).toBe('cli');
    expect(cmd.getOptionValueSource('globalBatch')).toBe('config');
    expect(cmd.getOptionValueSource('beta2')).toBe('default');
  });

  it('reads JSON the same way, and a YAML list or a single value for a variadic flag', async () => {
    const config = file(JSON.stringify({ steps: 5, data: 'sotu', 'outer-overlap': true, 'sync-every': 4, 'no-dashboard': true }), 'json');
    const { opts } = await parse(['launch', '--config', config]);
    expect(opts).toMatchObject({ steps: 5, data: ['sotu'], outerOverlap: true, syncEvery: 4, dashboard: false });
  });

  it('refuses unknown keys by name, with the option names nearest to each', async () => {
    const config = file('globalBatch: 8\nstepz: 3\nsteps: 2\n');
    const e = await refusal(['launch', '--config', config]);
    expect(e.code).toBe('TRAINER_ERR_CONFIG_UNKNOWN_KEY');
    expect(e.message).toBe(`${config}: unknown keys 'globalBatch', 'stepz': not options of trainer launch`);
    expect(e.hint).toContain('globalBatch: did you mean global-batch?');
    expect(e.hint).toContain('stepz: did you mean steps');
    // A key of another command (coordinator's --host) is not one of launch's.
    expect((await refusal(['launch', '--config', file('host: 0.0.0.0\n')])).message).toContain("unknown key 'host'");
    expect((await refusal(['launch', '--config', file('config: other.yaml\n')])).hint).toContain('a run configuration cannot name another');
  });

  it('refuses a bad value with the message its flag gives', async () => {
    for (const [key, value, flag] of [['steps', 'many', '--steps'], ['precision', 'fp8', '--precision'], ['lr', '-1', '--lr'], ['pp-split', '2,x', '--pp-split'], ['max-memory', 'lots', '--max-memory']] as const) {
      const byFlag = await refusal(['launch', flag, value]);
      const byFile = await refusal(['launch', '--config', file(`${key}: ${value}\n`)]);
      expect(byFlag.code).toBe('TRAINER_ERR_USAGE');
      expect(byFile.code).toBe('TRAINER_ERR_CONFIG_VALUE');
      expect(byFile.message).toMatch(new RegExp(`^.*: ${key}: `));
      expect(byFile.message.slice(byFile.message.indexOf(`: ${key}: `) + key.length + 4)).toBe(byFlag.message);
    }
    // A value the command line overrides is still checked.
    expect((await refusal(['launch', '--config', file('steps: many\n'), '--steps', '3'])).code).toBe('TRAINER_ERR_CONFIG_VALUE');
    // Types YAML can hold and no flag can.
    expect((await refusal(['launch', '--config', file('no-overlap: yes\n')])).message).toMatch(/no-overlap: expected true or false/);
    expect((await refusal(['launch', '--config', file('steps:\n')])).message).toMatch(/steps: has no value/);
    expect((await refusal(['launch', '--config', file('data: {a: 1}\n')])).message).toMatch(/data: expected a value or a list of values, got a mapping/);
    expect((await refusal(['launch', '--config', file('model: [a, b]\n')])).message).toMatch(/model: expected one value, got a list/);
  });

  it('refuses a missing file, another format, malformed YAML or JSON, and a file that is not a mapping', async () => {
    expect((await refusal(['launch', '--config', join(dir, 'absent.yaml')])).code).toBe('TRAINER_ERR_CONFIG_NOT_FOUND');
    expect((await refusal(['launch', '--config', file('steps = 3', 'toml')])).code).toBe('TRAINER_ERR_CONFIG_FORMAT');
    const badYaml = await refusal(['launch', '--config', file('steps: 3\nsteps: 4\n')]);
    expect(badYaml.code).toBe('TRAINER_ERR_CONFIG_FORMAT');
    expect(badYaml.message).toMatch(/unique/i);
    expect((await refusal(['launch', '--config', file('{"steps": 3,}', 'json')])).code).toBe('TRAINER_ERR_CONFIG_FORMAT');
    expect((await refusal(['launch', '--config', file('- steps\n- 3\n')])).message).toMatch(/holds a list, not a mapping/);
  });

  it('resolves every option (file, flags, defaults) into a file that parses back to the same options', async () => {
    const config = file('steps: 7\nglobal-batch: 8\nno-overlap: true\npp-split: 2,1\nmax-memory: 1GiB\ndata: [a.txt, b.txt]\n');
    const first = await parse(['launch', '--config', config, '--seed', '7', '--out', join(dir, 'out')]);
    const resolved = resolvedRunConfig(first.cmd);
    expect(resolved).toMatchObject({ steps: 7, 'global-batch': 8, seed: 7, 'no-overlap': true, 'pp-split': [2, 1], 'max-memory': 2 ** 30, data: ['a.txt', 'b.txt'], 'activation-checkpointing': false, 'no-dashboard': false, lr: 1e-3, nodes: 1 });
    expect(resolved).not.toHaveProperty('config');
    expect(resolved).not.toHaveProperty('micro-batch'); // unset: derived from the global batch and the workers
    const saved = await writeRunConfig(join(dir, 'out'), resolved, 'launch');
    expect(saved).toBe(join(dir, 'out', RUN_CONFIG_FILE));
    expect(parseYaml(readFileSync(saved, 'utf8'))).toEqual(resolved);
    const again = await parse(['launch', '--config', saved]);
    expect(resolvedRunConfig(again.cmd)).toEqual(resolved);
    const { config: _a, ...firstOpts } = first.opts;
    const { config: _b, ...againOpts } = again.opts;
    expect(againOpts).toEqual(firstOpts);
  });
});

describe('--config on coordinator and finetune', () => {
  it('coordinator: a required option may come from the file, and is refused as before when neither gives it', async () => {
    const { opts } = await parse(['coordinator', '--config', file('nodes: 3\nport: 29600\n')]);
    expect(opts).toMatchObject({ nodes: 3, port: 29600, host: '0.0.0.0' });
    expect(await refusal(['coordinator', '--config', file('port: 29600\n')])).toEqual({ code: 'TRAINER_ERR_USAGE', message: "required option '--nodes <n>' not specified" });
    expect(await refusal(['coordinator'])).toEqual({ code: 'TRAINER_ERR_USAGE', message: "required option '--nodes <n>' not specified" });
  });

  it('finetune: model options in the file are refused as the flags are, naming the file', async () => {
    const config = file('from: runs/base\ndata: task.jsonl\nmodel: gpt-mini\n');
    const e = await refusal(['finetune', '--config', config]);
    expect(e.code).toBe('TRAINER_ERR_USAGE');
    expect(e.message).toBe(`--model (model in ${config}) does not apply to finetune: the model and its tokenizer come from --from`);
    expect((await refusal(['finetune', '--model', 'gpt-mini', '--from', 'x', '--data', 't.jsonl'])).message).toMatch(/^--model does not apply to finetune/);
  });
});

describe('nearMatches', () => {
  const names = ['global-batch', 'micro-batch', 'micro-batches', 'steps', 'seq-len', 'lr', 'min-lr'];
  it('puts the kebab-case spelling of a camelCase or snake_case key first, else the nearest by edits', () => {
    expect(nearMatches('globalBatch', names)).toEqual(['global-batch']);
    expect(nearMatches('seq_len', names)).toEqual(['seq-len']);
    expect(nearMatches('micro-bach', names)).toEqual(['micro-batch', 'micro-batches']);
    expect(nearMatches('zzzzzz', names)).toEqual([]);
  });
});
