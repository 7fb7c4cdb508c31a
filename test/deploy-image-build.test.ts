import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { imageSettings, parseDockerfile, REPO } from './helpers/deploy-files.js';
import { BASE_PATH, mapPath, TINY_MODEL_OPTIONS } from './helpers/deploy-hosts.js';

/**
 * docker/Dockerfile's build, replayed without an engine: its COPY steps on a clean copy of the
 * build context (the committed tree), its pnpm commands exactly as written (the cache mount is
 * this machine's pnpm store, as BuildKit's is the builder's), no terminal, as in a build; then
 * the image's entry point runs the CLI and a tiny training job from the result. The system steps
 * (installing pnpm, the `trainer` link, /data) are not replayed: the Dockerfile tests check them.
 */

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function pnpmStoreRoot(): string {
  // `pnpm store path` names the versioned folder (…/store/v10); --store-dir takes its parent.
  return dirname(execFileSync('pnpm', ['store', 'path'], { encoding: 'utf8' }).trim());
}

describe('docker/Dockerfile, built without an engine', () => {
  it('its COPY and pnpm steps turn the committed tree into a working CLI on the wasm backend', () => {
    const instructions = parseDockerfile(readFileSync(join(REPO, 'docker', 'Dockerfile'), 'utf8'));
    const image = imageSettings(instructions);
    const root = mkdtempSync(join(tmpdir(), 'trainer-image-'));
    dirs.push(root);
    const context = join(root, 'context');
    mkdirSync(context);
    execFileSync('sh', ['-c', `git -C '${REPO}' archive HEAD | tar -x -C '${context}'`]);
    const mounts = { '/pnpm/store': pnpmStoreRoot(), [image.workdir]: join(root, 'rootfs', image.workdir.replace(/^\//, '')) };
    const pnpmVersion = instructions.find((i) => i.keyword === 'ARG' && i.args.startsWith('PNPM_VERSION='))!.args.split('=')[1];
    expect(execFileSync('pnpm', ['--version'], { encoding: 'utf8' }).trim(), 'the pnpm the image installs').toBe(pnpmVersion);

    let workdir = '/';
    const ran: string[] = [];
    const skipped: string[] = [];
    for (const ins of instructions) {
      if (ins.keyword === 'WORKDIR') {
        workdir = ins.args;
        mkdirSync(mapPath(workdir, mounts), { recursive: true });
      } else if (ins.keyword === 'COPY' && !ins.args.startsWith('--from')) {
        const words = ins.args.split(/\s+/);
        const dest = mapPath(words.at(-1) === './' || words.at(-1) === '.' ? workdir : words.at(-1)!, mounts);
        for (const source of words.slice(0, -1)) cpSync(join(context, source), source === '.' ? dest : join(dest, source), { recursive: true });
      } else if (ins.keyword === 'RUN') {
        const command = ins.args.replace(/^(--mount=\S+\s+)+/, '');
        for (const step of command.split('&&').map((s) => s.trim())) {
          if (!step.startsWith('pnpm ')) {
            skipped.push(step);
            continue;
          }
          const r = spawnSync('sh', ['-c', step.replaceAll('/pnpm/store', mounts['/pnpm/store'])], {
            cwd: mapPath(workdir, mounts), env: { PATH: BASE_PATH, HOME: root }, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 240_000,
          });
          expect(r.status, `${step}\n${r.stdout}\n${r.stderr}`).toBe(0);
          ran.push(step.split(' ').slice(0, 2).join(' '));
        }
      }
    }
    expect(ran).toEqual(['pnpm fetch', 'pnpm install', 'pnpm build']);
    expect(skipped.map((s) => s.split(' ')[0])).toEqual(['npm', 'ln', 'mkdir', 'chown']);

    // The image: its entry point runs the CLI; the native backends are not there, so training runs on wasm.
    const app = mapPath(image.workdir, mounts);
    expect(existsSync(join(app, 'packages', 'model', 'node_modules', '@tensorflow', 'tfjs-node-gpu'))).toBe(false);
    const entrypoint = mapPath(image.entrypoint[0], mounts);
    const help = spawnSync(entrypoint, image.cmd, { env: { PATH: BASE_PATH, HOME: root }, encoding: 'utf8' });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: trainer/);
    const out = join(root, 'run');
    const launch = spawnSync(entrypoint, ['launch', '--nodes', '2', '--data', 'moby-dick', '--steps', '2', '--out', out, ...TINY_MODEL_OPTIONS.filter((o, i, all) => o !== '--backend' && all[i - 1] !== '--backend')], {
      env: { PATH: BASE_PATH, HOME: root, TRAINER_CACHE_DIR: join(root, 'cache'), TRAINER_LOG_FORMAT: 'json' }, encoding: 'utf8', timeout: 120_000,
    });
    expect(launch.status, launch.stdout + launch.stderr).toBe(0);
    expect(launch.stdout + launch.stderr).toMatch(/backend: wasm .*tfjs-node-gpu is not installed/);
    expect(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'))).toMatchObject({ ok: true, world: 2, steps: 2 });
  }, 300_000);
});
