import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { imageSettings, parseDockerfile, REPO, type DockerInstruction } from './helpers/deploy-files.js';
import { BASE_PATH, TINY_MODEL_OPTIONS } from './helpers/deploy-hosts.js';
import { killMarked, pidsWithMarker, waitFor } from './helpers/processes.js';

/**
 * The images, checked without a Docker engine (none runs here): both Dockerfiles parse, what they
 * copy exists in the build context and is not ignored, the commands they run exist in the
 * repository, the GPU base image matches what tfjs-node-gpu's libtensorflow was built for, and the
 * image's entry point (docker/entrypoint.sh, which waits for a worker's coordinator) runs the CLI.
 */

const IMAGE_ROOT = '/opt/trainer';
const TOKEN = 'deploy-docker-test-token-0123456789';

/** TensorFlow's tested build configurations (tensorflow.org/install/source#gpu): libtensorflow -> CUDA, cuDNN. */
const TENSORFLOW_GPU_BUILDS: Record<string, { cuda: string; cudnn: string }> = {
  '2.9': { cuda: '11.2', cudnn: '8.1' },
};

function dockerfile(name: string): DockerInstruction[] {
  return parseDockerfile(readFileSync(join(REPO, 'docker', name), 'utf8'));
}

/** The repository path of an image path under /opt/trainer (the image copies the build context there). */
function inRepo(imagePath: string): string {
  expect(imagePath.startsWith(IMAGE_ROOT + '/'), `${imagePath} is not under ${IMAGE_ROOT}`).toBe(true);
  return join(REPO, imagePath.slice(IMAGE_ROOT.length + 1));
}

/** Whether a .dockerignore's patterns exclude a context path (Go filepath.Match with `**`, as BuildKit does). */
function ignored(patterns: string[], path: string): boolean {
  let out = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const pattern = (negate ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, '');
    const re = new RegExp('^' + pattern.split('/').map((part) => part === '**' ? '.*' : part.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')).join('/').replace(/\.\*\//g, '(?:.*/)?') + '(?:/.*)?$');
    if (re.test(path)) out = !negate;
  }
  return out;
}

function dockerignore(name: string): string[] {
  return readFileSync(join(REPO, 'docker', `${name}.dockerignore`), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
}

/** Every process run() started, killed after each test (also when the test timed out). */
const children = new Set<ChildProcess>();
afterEach(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
});

function run(command: string, args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

const ENTRYPOINT = join(REPO, 'docker', 'entrypoint.sh');
const baseEnv = { PATH: BASE_PATH, HOME: tmpdir(), TRAINER_LOG_FORMAT: 'json' };

describe('docker/Dockerfile and docker/Dockerfile.gpu', () => {
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { packageManager: string; scripts: Record<string, string> };
  const pnpmVersion = pkg.packageManager.replace(/^pnpm@/, '');

  for (const name of ['Dockerfile', 'Dockerfile.gpu']) {
    it(`${name}: parses; what it copies, runs and starts exists in the repository`, () => {
      const instructions = dockerfile(name);
      const image = imageSettings(instructions);
      const patterns = dockerignore(name);

      // The container starts docker/entrypoint.sh with `--help`, as the unprivileged node user.
      expect(image.workdir).toBe(IMAGE_ROOT);
      expect(image.entrypoint).toEqual([`${IMAGE_ROOT}/docker/entrypoint.sh`]);
      accessSync(inRepo(image.entrypoint[0]), constants.X_OK);
      expect(image.cmd).toEqual(['--help']);
      expect(image.user).toBe('node');
      expect(image.env.TRAINER_CACHE_DIR).toBe('/data/cache');

      // Every COPY from the build context names files that exist there and are not ignored;
      // everything `COPY . .` brings must include the sources and the lockfile, and not node_modules.
      const copies = instructions.filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'));
      expect(copies.length).toBeGreaterThan(0);
      for (const c of copies) {
        const sources = c.args.split(/\s+/).filter((a) => !a.startsWith('--')).slice(0, -1);
        for (const s of sources) {
          if (s === '.') continue;
          expect(existsSync(join(REPO, s)), `${name}:${c.line} copies ${s}`).toBe(true);
          expect(ignored(patterns, s), `${name}:${c.line} copies ${s}, which ${name}.dockerignore excludes`).toBe(false);
        }
      }
      for (const needed of ['pnpm-lock.yaml', 'packages/cli/bin/trainer.js', 'packages/model/src/backend.ts', 'docker/entrypoint.sh', 'docker/wait-for-coordinator.mjs', 'tsconfig.base.json']) {
        expect(existsSync(join(REPO, needed)), needed).toBe(true);
        expect(ignored(patterns, needed), `${needed} is excluded from the build context`).toBe(false);
      }
      for (const excluded of ['node_modules/x', 'packages/model/node_modules/x', 'packages/cli/dist/bin.js', '.git/HEAD', 'docker/trainer.env']) {
        expect(ignored(patterns, excluded), `${excluded} should not be in the build context`).toBe(true);
      }

      // The commands: pnpm at the version the repository pins, its scripts as package.json names them.
      const runs = instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
      const argPnpm = instructions.find((i) => i.keyword === 'ARG' && i.args.startsWith('PNPM_VERSION='));
      expect(argPnpm?.args).toBe(`PNPM_VERSION=${pnpmVersion}`);
      expect(readFileSync(join(REPO, 'scripts', 'setup.sh'), 'utf8')).toContain(`PNPM_VERSION=${pnpmVersion}`);
      expect(runs).toContain('npm install --global --no-audit --no-fund "pnpm@${PNPM_VERSION}"');
      const builtin = new Set(['install', 'fetch', 'add', 'prune', 'store']);
      const pnpmCommands = [...runs.matchAll(/\bpnpm ([a-z][a-z:-]*)/g)].map((m) => m[1]);
      expect(pnpmCommands).toEqual(expect.arrayContaining(['fetch', 'install', 'build']));
      for (const c of pnpmCommands) if (!builtin.has(c)) expect(pkg.scripts[c], `pnpm ${c} is not a script of package.json`).toBeDefined();
      expect(runs).toMatch(/pnpm install [^\n]*--frozen-lockfile/);
      // `trainer` on the PATH is the entry point.
      const link = /ln -s (\S+) \/usr\/local\/bin\/trainer/.exec(runs);
      expect(link?.[1]).toBe(image.entrypoint[0]);
    });
  }

  it('Dockerfile: the CPU image leaves out the optional native backends (wasm)', () => {
    const runs = dockerfile('Dockerfile').filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
    expect(runs).toMatch(/pnpm install [^\n]*--no-optional/);
    expect(imageSettings(dockerfile('Dockerfile')).from).toEqual(['node:20-bookworm-slim']);
  });

  it("Dockerfile.gpu: the CUDA base image is the one tfjs-node-gpu's libtensorflow was built for, and the build checks that it installed", () => {
    const instructions = dockerfile('Dockerfile.gpu');
    const image = imageSettings(instructions);
    const model = JSON.parse(readFileSync(join(REPO, 'packages', 'model', 'package.json'), 'utf8')) as { optionalDependencies: Record<string, string> };
    expect(model.optionalDependencies['@tensorflow/tfjs-node-gpu']).toBeDefined();
    const tfjsDir = join(REPO, 'packages', 'model', 'node_modules', '@tensorflow', 'tfjs-node-gpu');
    const constantsFile = join(tfjsDir, 'scripts', 'deps-constants.js');
    expect(existsSync(constantsFile), 'run scripts/setup.sh: the tfjs-node-gpu package (not its download) is installed everywhere').toBe(true);
    const libtensorflow = /LIBTENSORFLOW_VERSION = '([\d.]+)'/.exec(readFileSync(constantsFile, 'utf8'))![1];
    const build = TENSORFLOW_GPU_BUILDS[libtensorflow.split('.').slice(0, 2).join('.')];
    expect(build, `no known CUDA build for libtensorflow ${libtensorflow}: update the table and the base image`).toBeDefined();

    // [node image (for its binary), the CUDA base, the build stage, the final stage]
    const cuda = image.from.find((f) => f.startsWith('nvidia/cuda:'));
    const m = /^nvidia\/cuda:(\d+\.\d+)\.\d+-cudnn(\d+)-runtime-ubuntu(\d+\.\d+)$/.exec(cuda ?? '');
    expect(m, `base image ${cuda}`).not.toBeNull();
    expect(m![1]).toBe(build.cuda);
    // The cudnn8 images of CUDA 11.2.2 carry cuDNN 8.1.1: the major version is in the tag.
    expect(m![2]).toBe(build.cudnn.split('.')[0]);
    // Node.js 20 from the official image; glibc of Ubuntu 20.04 (2.31) is above the 2.28 it needs.
    expect(image.from[0]).toBe('node:20-bookworm-slim');
    expect(Number(m![3])).toBeGreaterThanOrEqual(20.04);

    const runs = instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
    expect(runs).not.toMatch(/--no-optional/);
    const check = /tfjs=(\S+)[^\n]*ls "\$tfjs"\/deps\/lib\/libtensorflow\.so\.([\d.]+)/.exec(runs);
    expect(check, 'the build checks that libtensorflow was downloaded').not.toBeNull();
    expect(join(REPO, check![1])).toBe(tfjsDir);
    expect(check![2]).toBe(libtensorflow);
    expect(readFileSync(join(REPO, 'packages', 'model', 'src', 'backend.ts'), 'utf8')).toContain("importNative('@tensorflow/tfjs-node-gpu')");
  });
});

describe('docker/entrypoint.sh (the images\' `trainer`)', () => {
  const dirs: string[] = [];
  const pids: number[] = [];
  const markers: string[] = [];
  afterEach(() => {
    for (const m of markers.splice(0)) killMarked(m);
    for (const pid of pids.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('runs the CLI as the image runs it, also through the /usr/local/bin/trainer link', async () => {
    const help = await run(ENTRYPOINT, ['--help'], baseEnv);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: trainer/);
    const bin = mkdtempSync(join(tmpdir(), 'trainer-bin-'));
    dirs.push(bin);
    symlinkSync(ENTRYPOINT, join(bin, 'trainer'));
    const version = await run('trainer', ['--version'], { ...baseEnv, PATH: `${bin}:${BASE_PATH}` });
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('a worker started before its coordinator waits for it, then joins and trains', async () => {
    const port = await freePort();
    const ws = mkdtempSync(join(tmpdir(), 'trainer-entry-'));
    dirs.push(ws);
    const env = { ...baseEnv, TRAINER_TOKEN: TOKEN, TRAINER_CACHE_DIR: join(ws, 'cache'), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), WORLD_SIZE: '1', RANK: '0' };
    const worker = spawn(ENTRYPOINT, ['worker'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    pids.push(worker.pid!);
    let workerOut = '';
    worker.stdout.on('data', (d) => (workerOut += d));
    worker.stderr.on('data', (d) => (workerOut += d));
    const workerDone = new Promise<number | null>((r) => worker.on('close', r));
    // Nothing listens yet: the worker is still there 2.5 s later, waiting.
    await new Promise((r) => setTimeout(r, 2500));
    expect(worker.exitCode, workerOut).toBeNull();
    const coordinator = await run(ENTRYPOINT, ['coordinator', '--nodes', '1', '--port', String(port), '--host', '127.0.0.1', '--data', 'moby-dick', '--steps', '3', '--out', join(ws, 'run'), ...TINY_MODEL_OPTIONS], env, 90_000);
    expect(coordinator.code, coordinator.stdout + coordinator.stderr).toBe(0);
    expect(await workerDone, workerOut).toBe(0);
    expect(JSON.parse(readFileSync(join(ws, 'run', 'summary.json'), 'utf8'))).toMatchObject({ ok: true, world: 1 });
    expect(workerOut).toMatch(/joined the coordinator/);
    expect(workerOut + coordinator.stdout + coordinator.stderr).not.toContain(TOKEN);
  }, 120_000);

  it('a worker whose coordinator never comes fails after TRAINER_WAIT_TIMEOUT, naming the address', async () => {
    const port = await freePort();
    const refused = await run(ENTRYPOINT, ['worker'], { ...baseEnv, TRAINER_TOKEN: TOKEN, MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), TRAINER_WAIT_TIMEOUT: '1' });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`trainer: TRAINER_ERR_CONNECT_FAILED: the coordinator at 127.0.0.1:${port} did not accept a connection within 1 s (last error: ECONNREFUSED)`);
    expect(refused.stderr).toMatch(/hint: check that the coordinator runs/);
    // --coordinator takes precedence over the environment, as in `trainer worker`; an unknown name says so.
    const unknown = await run(ENTRYPOINT, ['worker', '--coordinator', 'no-such-host.invalid:29500'], { ...baseEnv, TRAINER_TOKEN: TOKEN, MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), TRAINER_WAIT_TIMEOUT: '1' });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/the coordinator at no-such-host\.invalid:29500 did not accept a connection within 1 s \(last error: (ENOTFOUND|EAI_AGAIN)\)/);
  }, 30_000);

  it('a worker stopped while it waits (docker stop, a pod deleted) ends with its wait, leaving nothing behind', async () => {
    const port = await freePort();
    const marker = `deploy-docker-${process.pid}-${port}`;
    markers.push(marker);
    const worker = spawn(ENTRYPOINT, ['worker'], { env: { ...baseEnv, TRAINER_TOKEN: TOKEN, MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), TRAINER_TEST_MARKER: marker }, stdio: ['ignore', 'pipe', 'pipe'] });
    pids.push(worker.pid!);
    const done = new Promise<number | null>((r) => worker.on('close', r));
    let err = '';
    worker.stderr.on('data', (d) => (err += d));
    await waitFor(() => err.includes('waiting for the coordinator'), 10_000, 'the worker to wait');
    expect(pidsWithMarker(marker).length).toBe(2); // the entry point's shell and its waiter
    worker.kill('SIGTERM');
    expect(await done).toBe(143);
    await waitFor(() => pidsWithMarker(marker).length === 0, 5000, 'the waiter to end');
  }, 30_000);

  it('bad waiting settings and a missing address are coded errors, not hangs', async () => {
    const badTimeout = await run(ENTRYPOINT, ['worker'], { ...baseEnv, TRAINER_TOKEN: TOKEN, MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29500', TRAINER_WAIT_TIMEOUT: 'soon' });
    expect(badTimeout.code).toBe(2);
    expect(badTimeout.stderr).toContain('trainer: TRAINER_ERR_BAD_ENV: environment variable TRAINER_WAIT_TIMEOUT="soon" is not a number of seconds');
    // Nothing to wait for: the worker itself reports the missing address.
    const noAddress = await run(ENTRYPOINT, ['worker'], { ...baseEnv, TRAINER_TOKEN: TOKEN });
    expect(noAddress.code).toBe(2);
    expect(noAddress.stderr).toMatch(/TRAINER_ERR_NO_COORDINATOR/);
  }, 30_000);
});
