import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { Command, Option } from 'commander';
import { parseDocument, stringify } from 'yaml';
import { TrainerError } from '@trainer/errors';
import type { TrainJob } from '@trainer/launcher';

/**
 * Run configuration files: `trainer launch --config run.yaml` (also `coordinator` and `finetune`).
 *
 * A run configuration is a YAML (.yaml, .yml) or JSON (.json) mapping from the command's long
 * option names, spelled as the flags are without their dashes (`global-batch: 32`,
 * `no-overlap: true`; camelCase keys are refused, naming the spelling to use), to the values the
 * flags take. Each value goes through its flag's own parser (parse.ts), so a value the flag
 * refuses is refused with the flag's message. Where a flag takes a list (`--data a b`,
 * `--pp-split 3,3,2`) the value may also be a YAML list; a flag without a value
 * (`--activation-checkpointing`, `--no-overlap`) takes true or false.
 *
 * Precedence: a flag given on the command line, then the file, then the option's default.
 *
 * The resolved configuration (every option's final value) is written to <out>/run-config.yaml
 * and recorded in the job, hence in every checkpoint's manifest (`runConfig`): `--config
 * <out>/run-config.yaml` runs the same job again (with `--out` elsewhere, a second copy of it).
 */

/** The file in the run folder that holds the resolved configuration. */
export const RUN_CONFIG_FILE = 'run-config.yaml';

/** A value of a run configuration: what one flag takes (lists for variadic and list flags). */
export type RunConfigValue = string | number | boolean | (string | number)[];
/** Long option name (kebab-case, as the flag) -> value. */
export type RunConfig = Record<string, RunConfigValue>;

export interface ConfigCliOptions {
  /** --config: the run configuration file the options were read from, if any. */
  config?: string;
}

/**
 * Adds `--config <file>` to `cmd`; call it after every other option is added. The file is read
 * after the command line is parsed, before the action runs (commander's preAction hook). Options
 * marked required are checked after the file is applied, so a file can supply them.
 */
export function addConfigOption(cmd: Command): Command {
  const required = cmd.options.filter((o) => o.mandatory);
  for (const option of required) option.mandatory = false;
  cmd.option('--config <file>', 'run configuration (YAML or JSON): keys are the long option names as the flags spell them (global-batch: 32); flags given here override it. Every run saves its resolved configuration to <out>/run-config.yaml');
  return cmd.hook('preAction', async (command) => {
    const file = command.getOptionValue('config') as string | undefined;
    if (file !== undefined) applyRunConfig(command, file, await readRunConfigFile(file));
    for (const option of required) {
      // commander's own message for a missing required option (main() turns `error:` into the usage code).
      if (command.getOptionValue(option.attributeName()) === undefined) command.error(`error: required option '${option.flags}' not specified`, { code: 'commander.missingMandatoryOptionValue' });
    }
  });
}

/** True when the user set the option: a flag on the command line, or a key of the --config file. */
export function userGave(cmd: Command, attribute: string): boolean {
  const source = cmd.getOptionValueSource(attribute);
  return source === 'cli' || source === 'config';
}

/** Reads a run configuration: a YAML or JSON mapping (an empty file is an empty mapping). */
export async function readRunConfigFile(path: string): Promise<Record<string, unknown>> {
  const ext = extname(path).toLowerCase();
  if (!['.yaml', '.yml', '.json'].includes(ext)) {
    throw new TrainerError('TRAINER_ERR_CONFIG_FORMAT', `${path}: a run configuration is a .yaml, .yml or .json file`, { hint: 'rename the file, or write it as YAML (key: value per line) or JSON' });
  }
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new TrainerError('TRAINER_ERR_CONFIG_NOT_FOUND', `${path}: ${missing ? 'no such file' : `cannot be read (${(err as Error).message})`}`, { cause: err, hint: 'check the --config path (relative paths are from the current folder)' });
  }
  let value: unknown;
  if (ext === '.json') {
    try {
      value = text.trim() === '' ? null : JSON.parse(text);
    } catch (err) {
      throw new TrainerError('TRAINER_ERR_CONFIG_FORMAT', `${path} is not JSON: ${(err as Error).message}`, { cause: err, hint: 'fix the JSON, or write the file as YAML (.yaml)' });
    }
  } else {
    // YAML 1.2 core schema: `yes` stays a string, `1e-3` is a number; a repeated key is an error.
    const doc = parseDocument(text, { prettyErrors: true });
    if (doc.errors.length) {
      throw new TrainerError('TRAINER_ERR_CONFIG_FORMAT', `${path} is not valid YAML: ${doc.errors[0].message}`, { cause: doc.errors[0], hint: 'fix the YAML at the line named' });
    }
    value = doc.toJS();
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new TrainerError('TRAINER_ERR_CONFIG_FORMAT', `${path} holds ${Array.isArray(value) ? 'a list' : `a ${typeof value}`}, not a mapping of options`, { hint: 'write one option per line: global-batch: 32' });
  }
  return value as Record<string, unknown>;
}

/**
 * Sets `cmd`'s options from a configuration's values (source 'config'), except those given on
 * the command line. Every key must be a long option name of `cmd` (all unknown keys are named,
 * with the nearest option names); every value is parsed as its flag's would be, including values
 * a flag overrides.
 */
export function applyRunConfig(cmd: Command, file: string, values: Record<string, unknown>): void {
  const byKey = new Map(configurableOptions(cmd).map((o) => [optionKey(o), o]));
  const unknown = Object.keys(values).filter((k) => !byKey.has(k));
  if (unknown.length) {
    const names = [...byKey.keys()];
    const nearest = unknown.map((k) => {
      const near = k === 'config' ? [] : nearMatches(k, names);
      return `${k}: ${k === 'config' ? 'a run configuration cannot name another' : near.length ? `did you mean ${near.join(', ')}?` : 'no option is named like it'}`;
    });
    throw new TrainerError('TRAINER_ERR_CONFIG_UNKNOWN_KEY', `${file}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')}: not ${unknown.length > 1 ? 'options' : 'an option'} of trainer ${cmd.name()}`, {
      hint: `${nearest.join('; ')} (keys are the long option names as the flags spell them: trainer ${cmd.name()} --help lists them)`,
      details: { file, keys: unknown },
    });
  }
  for (const [key, raw] of Object.entries(values)) {
    const option = byKey.get(key)!;
    const attribute = option.attributeName();
    const value = parseConfigValue(cmd, option, file, key, raw);
    const source = cmd.getOptionValueSource(attribute);
    if (source === 'cli' || source === 'env') continue; // the command line wins
    if (value === undefined) continue; // `activation-checkpointing: false`, `outer-overlap: false`: as if absent
    cmd.setOptionValueWithSource(attribute, value, 'config');
  }
}

/** Every option's final value (file, flags, defaults), by long option name in --help order; unset options left out. */
export function resolvedRunConfig(cmd: Command, omit: readonly string[] = []): RunConfig {
  const config: RunConfig = {};
  for (const option of configurableOptions(cmd)) {
    const attribute = option.attributeName();
    if (omit.includes(attribute)) continue;
    const value: unknown = cmd.getOptionValue(attribute);
    if (option.negate) config[optionKey(option)] = value === false; // no-overlap: true when overlap is off
    else if (option.isBoolean()) config[optionKey(option)] = value === true;
    else if (value !== undefined) config[optionKey(option)] = value as RunConfigValue;
  }
  return config;
}

/**
 * Writes `config` as <outDir>/run-config.yaml, with a header saying how to run it again, and
 * returns the path.
 */
export async function writeRunConfig(outDir: string, config: RunConfig, command: string): Promise<string> {
  await mkdir(outDir, { recursive: true });
  const path = join(outDir, RUN_CONFIG_FILE);
  const header = [
    `# trainer ${command}: the resolved run configuration (--config file, flags and defaults), written ${new Date().toISOString()}.`,
    `# The same run again: trainer ${command} --config ${path} (a flag given beside --config overrides its key).`,
  ];
  await writeFile(path, `${header.join('\n')}\n${stringify(config, { lineWidth: 0 })}`);
  return path;
}

/**
 * Records the resolved configuration in the job (so every checkpoint's manifest carries it) and
 * writes it to <out>/run-config.yaml. `out` is the run folder as resolved (its default is a fresh
 * runs/<time>), so the saved file names the folder the run wrote.
 */
export async function recordRunConfig(job: TrainJob, config: RunConfig, command: string): Promise<void> {
  job.runConfig = { ...config, out: job.outDir };
  if (job.outDir) await writeRunConfig(job.outDir, job.runConfig, command);
}

/** The options a file may set: all of the command's but --config itself. */
function configurableOptions(cmd: Command): Option[] {
  return cmd.options.filter((o) => o.long !== undefined && o.long !== '--config');
}

/** An option's key in a run configuration: its long flag without the dashes (`no-overlap`). */
function optionKey(option: Option): string {
  return option.long!.replace(/^--/, '');
}

/**
 * A configuration value as the option's flag would give it: booleans for flags without a
 * value, else the text the flag would carry through the option's parser. Returns undefined for
 * a flag set to false that has no --no- form (as if not given).
 */
function parseConfigValue(cmd: Command, option: Option, file: string, key: string, raw: unknown): unknown {
  const refuse = (why: string) => new TrainerError('TRAINER_ERR_CONFIG_VALUE', `${file}: ${key}: ${why}`, { hint: `give ${key} a value as ${option.flags} takes, or remove the key for the default`, details: { file, key } });
  if (raw === null || raw === undefined) throw refuse('has no value');
  if (option.negate || option.isBoolean()) {
    if (typeof raw !== 'boolean') throw refuse(`expected true or false (${option.long} takes no value), got ${JSON.stringify(raw)}`);
    if (option.negate) return !raw;
    return raw ? true : undefined; // `activation-checkpointing: false`: as if absent
  }
  if (option.optional && typeof raw === 'boolean') return raw ? (option.presetArg ?? true) : undefined;
  const scalar = (v: unknown): string => {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
    throw refuse(`expected ${option.variadic ? 'a value or a list of values' : 'a value'}, got ${v === null ? 'an empty value' : Array.isArray(v) ? 'a nested list' : 'a mapping'}`);
  };
  const previous: unknown = cmd.getOptionValue(option.attributeName());
  const parse = (text: string, prev: unknown): unknown => {
    if (!option.parseArg) return text;
    try {
      return option.parseArg(text, prev);
    } catch (err) {
      // The flag's own message: `option '--steps <n>' argument 'many' is invalid. expected ...`.
      if ((err as { code?: string }).code === 'commander.invalidArgument') throw refuse(`option '${option.flags}' argument '${text}' is invalid. ${(err as Error).message}`);
      throw err;
    }
  };
  if (option.variadic) {
    // --data a b: each element as the flag parses it, collected into a list (never added to the default).
    const items = Array.isArray(raw) ? raw.map(scalar) : [scalar(raw)];
    if (items.length === 0) throw refuse('an empty list');
    let acc: unknown[] = [];
    for (const item of items) acc = option.parseArg ? (parse(item, acc) as unknown[]) : [...acc, item];
    return acc;
  }
  if (Array.isArray(raw)) {
    if (!option.parseArg) throw refuse(`expected one value, got a list`);
    return parse(raw.map(scalar).join(','), previous); // list flags: --pp-split 3,3,2
  }
  return parse(scalar(raw), previous);
}

/** Up to three option names near `key`: its kebab-case spelling, then by edit distance. */
export function nearMatches(key: string, names: readonly string[]): string[] {
  const kebab = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).replace(/_/g, '-').toLowerCase();
  if (names.includes(kebab)) return [kebab];
  const limit = Math.max(2, Math.floor(kebab.length / 3));
  return names
    .map((name) => ({ name, d: editDistance(kebab, name) }))
    .filter((m) => m.d <= limit || (kebab.length >= 3 && m.name.includes(kebab)))
    .sort((a, b) => a.d - b.d || a.name.localeCompare(b.name))
    .slice(0, 3)
    .map((m) => m.name);
}

/** Levenshtein distance (insertions, deletions, substitutions). */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length];
}
