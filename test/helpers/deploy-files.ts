import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Reading the deployment files the way their tools do, without the tools' engines: YAML through
 * PyYAML (a dependency of Debian's docker-compose, which scripts/setup.sh installs), Compose files
 * through `docker-compose config`, Dockerfiles through a small parser of their instruction syntax.
 */

/** The repository root (the build context of the Dockerfiles), with a trailing slash. */
export const REPO = fileURLToPath(new URL('../../', import.meta.url));

export function commandExists(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Every document of a YAML stream, as plain data (anchors and merge keys resolved). */
export function parseYamlDocuments(text: string): unknown[] {
  const json = execFileSync('python3', ['-c', 'import sys, json, yaml; json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)'], { input: text, encoding: 'utf8' });
  return JSON.parse(json) as unknown[];
}

/** One service of `docker-compose config`'s output (the fields the tests read). */
export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile?: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[]; interval?: string; timeout?: string; retries?: number; start_period?: string };
  ports?: string[];
  init?: boolean;
  deploy?: { resources?: { reservations?: { devices?: { driver?: string; device_ids?: string[]; capabilities?: string[] }[] } } };
}

export interface ComposeConfig {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

/**
 * `docker-compose -f FILE... config`: the file validated against the Compose schema, variables
 * interpolated from `env`, env_file contents merged into each service's environment.
 */
export function composeConfig(files: string[], env: NodeJS.ProcessEnv): ComposeConfig {
  const args = files.flatMap((f) => ['-f', f]);
  const out = execFileSync('docker-compose', [...args, 'config'], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return parseYamlDocuments(out)[0] as ComposeConfig;
}

export interface DockerInstruction {
  keyword: string;
  /** The arguments as written (continuation lines joined, comment lines inside them dropped). */
  args: string;
  /** JSON (exec) form, when the arguments are a JSON array of strings. */
  json?: string[];
  line: number;
}

const KEYWORDS = new Set(['FROM', 'RUN', 'CMD', 'LABEL', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL']);

/**
 * A Dockerfile's instructions, by the Dockerfile reference's rules: `#` comment lines (also
 * between continuation lines), `\` line continuations, and the exec form of JSON arrays. Throws
 * on an unknown instruction, a continuation at the end of the file, or a malformed JSON form.
 */
export function parseDockerfile(text: string): DockerInstruction[] {
  const lines = text.split('\n');
  const out: DockerInstruction[] = [];
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i].trim();
    if (first === '' || first.startsWith('#')) continue;
    const start = i;
    let joined = '';
    let line = lines[i];
    for (;;) {
      const trimmed = line.replace(/\s+$/, '');
      if (!trimmed.endsWith('\\')) {
        joined += trimmed;
        break;
      }
      joined += trimmed.slice(0, -1) + ' ';
      do {
        i++;
        if (i >= lines.length) throw new Error(`line ${start + 1}: the continuation runs past the end of the file`);
      } while (lines[i].trim().startsWith('#') || lines[i].trim() === '');
      line = lines[i];
    }
    const m = /^\s*([A-Za-z]+)\s*(.*)$/.exec(joined);
    if (!m || !KEYWORDS.has(m[1].toUpperCase())) throw new Error(`line ${start + 1}: not a Dockerfile instruction: ${joined.slice(0, 60)}`);
    const instruction: DockerInstruction = { keyword: m[1].toUpperCase(), args: m[2].trim(), line: start + 1 };
    if (instruction.args.startsWith('[')) {
      const parsed = JSON.parse(instruction.args) as unknown;
      if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`line ${start + 1}: the exec form must be a JSON array of strings`);
      instruction.json = parsed;
    }
    out.push(instruction);
  }
  return out;
}

/** The image a Dockerfile's last stage builds: the settings a container of it starts with. */
export interface ImageSettings {
  /** FROM of every stage, ARG defaults substituted. */
  from: string[];
  workdir: string;
  env: Record<string, string>;
  entrypoint: string[];
  cmd: string[];
  user?: string;
  /** Global ARG defaults (those before the first FROM) and stage ARG defaults. */
  args: Record<string, string>;
}

function substitute(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (all, a: string | undefined, b: string | undefined) => vars[(a ?? b)!] ?? all);
}

export function imageSettings(instructions: DockerInstruction[]): ImageSettings {
  const args: Record<string, string> = {};
  const from: string[] = [];
  let stage: Omit<ImageSettings, 'from' | 'args'> = { workdir: '/', env: {}, entrypoint: [], cmd: [] };
  for (const ins of instructions) {
    switch (ins.keyword) {
      case 'ARG': {
        const [name, value] = ins.args.split('=', 2);
        if (value !== undefined) args[name] = value;
        break;
      }
      case 'FROM':
        // A new stage starts from scratch (or from an earlier stage, which the tests do not need).
        from.push(substitute(ins.args.split(/\s+/)[0], args));
        stage = { workdir: '/', env: {}, entrypoint: [], cmd: [] };
        break;
      case 'WORKDIR':
        stage.workdir = ins.args.startsWith('/') ? ins.args : `${stage.workdir.replace(/\/$/, '')}/${ins.args}`;
        break;
      case 'ENV':
        for (const m of ins.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g)) stage.env[m[1]] = m[2].replace(/^"|"$/g, '');
        break;
      case 'ENTRYPOINT':
        stage.entrypoint = ins.json ?? ['/bin/sh', '-c', ins.args];
        stage.cmd = [];
        break;
      case 'CMD':
        stage.cmd = ins.json ?? ['/bin/sh', '-c', ins.args];
        break;
      case 'USER':
        stage.user = ins.args;
        break;
    }
  }
  return { from, args, ...stage };
}

/**
 * The environment `trainer worker` reads, from its sources (so a renamed variable fails the
 * deployment tests): the torchrun variables of launcher/src/torchrun-env.ts and the token's.
 */
export function workerEnvironmentNames(): string[] {
  const torchrun = readFileSync(join(REPO, 'packages', 'launcher', 'src', 'torchrun-env.ts'), 'utf8');
  const token = readFileSync(join(REPO, 'packages', 'launcher', 'src', 'cluster-token.ts'), 'utf8');
  const names = new Set([...torchrun.matchAll(/\benv\.([A-Z][A-Z0-9_]+)\b|intFromEnv\(env, '([A-Z][A-Z0-9_]+)'/g)].map((m) => m[1] ?? m[2]));
  names.add(/export const TOKEN_ENV = '([A-Z_]+)'/.exec(token)![1]);
  return [...names].sort();
}
