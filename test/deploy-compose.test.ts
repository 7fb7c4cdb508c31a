import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { commandExists, composeConfig, imageSettings, parseDockerfile, REPO, workerEnvironmentNames, type ComposeConfig, type ImageSettings } from './helpers/deploy-files.js';
import { BASE_PATH, createNamedCluster, jsonLines, mapPath, stopProcess, TINY_MODEL_OPTIONS, until, type HostProcess, type NamedCluster } from './helpers/deploy-hosts.js';
import { netnsUnavailableReason } from './helpers/netns.js';

/**
 * docker/docker-compose.yml, without a Docker engine: `docker-compose config` (Debian's
 * docker-compose, installed by scripts/setup.sh) validates it and resolves what each container
 * gets; then every service's command runs as its own host (a network namespace named after the
 * service, as Compose's DNS names it), with the environment the file gives it, the image's entry
 * point and the shared volume as a temp folder. `up` trains; a restart of every service resumes.
 */

const COMPOSE = join(REPO, 'docker', 'docker-compose.yml');
const COMPOSE_GPU = join(REPO, 'docker', 'docker-compose.gpu.yml');
const TOKEN = 'deploy-compose-test-token-0123456789';
const WORKERS = ['worker-0', 'worker-1', 'worker-2', 'worker-3'];

const dirs: string[] = [];
let cluster: NamedCluster | undefined;
afterEach(() => {
  cluster?.destroy();
  cluster = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function workspace(): string {
  const dir = mkdtempSync(join(tmpdir(), 'trainer-compose-'));
  dirs.push(dir);
  return dir;
}

function tokenFile(dir: string): string {
  const file = join(dir, 'trainer.env');
  writeFileSync(file, `# test token\nTRAINER_TOKEN=${TOKEN}\n`);
  return file;
}

/** The value of the last `--name V` in a command (commander keeps the last). */
function option(command: string[], name: string): string | undefined {
  const i = command.lastIndexOf(name);
  return i >= 0 ? command[i + 1] : undefined;
}

/** A named volume's mount target in a service: `volume:/target[:mode]`. */
function volumeTarget(volumes: string[] | undefined, volume: string): string | undefined {
  const entry = (volumes ?? []).find((v) => v.split(':')[0] === volume);
  return entry?.split(':')[1];
}

const reason = netnsUnavailableReason();
if (reason) console.warn(`skipping the compose run as separate hosts: ${reason}`);

describe('docker/docker-compose.yml', () => {
  it("is valid for docker-compose, and wires 4 workers to the coordinator with the environment `trainer worker` reads", () => {
    expect(commandExists('docker-compose'), "docker-compose is missing: scripts/setup.sh installs Debian's package").toBe(true);
    const config = composeConfig([COMPOSE], { TRAINER_ENV_FILE: tokenFile(workspace()) });
    expect(Object.keys(config.services).sort()).toEqual(['coordinator', ...WORKERS]);
    const coordinator = config.services.coordinator;
    const command = coordinator.command!;
    expect(command[0]).toBe('coordinator');
    const port = option(command, '--port')!;
    const world = Number(option(command, '--nodes'));
    expect(world).toBe(WORKERS.length);
    // The defaults: Moby Dick, checkpoints, and a restart that resumes.
    expect(option(command, '--data')).toBe('moby-dick');
    expect(Number(option(command, '--save-every'))).toBeGreaterThan(0);
    expect(option(command, '--resume')).toBe('auto');

    // One image, built from the repository with docker/Dockerfile; tini as PID 1; the shared volume everywhere.
    const volume = Object.keys(config.volumes ?? {})[0];
    expect(volume).toBeDefined();
    const target = volumeTarget(coordinator.volumes, volume)!;
    expect(option(command, '--out')!.startsWith(target + '/')).toBe(true);
    for (const [name, s] of Object.entries(config.services)) {
      expect(s.build?.context.replace(/\/$/, ''), name).toBe(REPO.replace(/\/$/, ''));
      expect(s.build?.dockerfile).toBe('docker/Dockerfile');
      expect(s.image).toBe(coordinator.image);
      expect(s.init, name).toBe(true);
      expect(volumeTarget(s.volumes, volume), name).toBe(target);
      expect(s.environment?.TRAINER_CACHE_DIR?.startsWith(target + '/'), name).toBe(true);
      // The token comes from the env file, into every container.
      expect(s.environment?.TRAINER_TOKEN, name).toBe(TOKEN);
    }

    // Workers: the torchrun environment, pointing at the coordinator service; distinct ranks.
    const names = workerEnvironmentNames();
    expect(names).toEqual(['LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT', 'RANK', 'TRAINER_TOKEN', 'WORLD_SIZE']);
    const ranks: number[] = [];
    for (const name of WORKERS) {
      const s = config.services[name];
      expect(s.command).toEqual(['worker']);
      for (const v of names) expect(s.environment?.[v], `${name} ${v}`).toBeDefined();
      expect(s.environment!.MASTER_ADDR).toBe('coordinator');
      expect(s.environment!.MASTER_PORT).toBe(port);
      expect(Number(s.environment!.WORLD_SIZE)).toBe(world);
      ranks.push(Number(s.environment!.RANK));
      expect(s.depends_on).toEqual({ coordinator: { condition: 'service_healthy' } });
    }
    expect(ranks.sort()).toEqual([0, 1, 2, 3]);

    // The health check probes the coordinator's port; the dashboard is published on loopback only.
    expect(coordinator.healthcheck?.test[0]).toBe('CMD');
    expect(coordinator.healthcheck?.test.join(' ')).toContain(`connect(${port}, '127.0.0.1')`);
    expect(coordinator.ports).toEqual([`127.0.0.1:${port}:${port}/tcp`]);
  });

  it('variables change the run without editing the file', () => {
    const config = composeConfig([COMPOSE], { TRAINER_ENV_FILE: tokenFile(workspace()), TRAINER_STEPS: '77', TRAINER_DATA: 'sotu', TRAINER_MODEL: 'gpt-mini', TRAINER_RUN: 'x', TRAINER_BACKEND: 'cuda' });
    const command = config.services.coordinator.command!;
    expect([option(command, '--steps'), option(command, '--data'), option(command, '--model'), option(command, '--out'), option(command, '--backend')]).toEqual(['77', 'sotu', 'gpt-mini', '/data/runs/x', 'cuda']);
  });

  it('with docker-compose.gpu.yml: the CUDA image, and each worker its own GPU', () => {
    const config = composeConfig([COMPOSE, COMPOSE_GPU], { TRAINER_ENV_FILE: tokenFile(workspace()) });
    const gpus: string[] = [];
    for (const [name, s] of Object.entries(config.services)) {
      expect(s.build?.dockerfile, name).toBe('docker/Dockerfile.gpu');
      expect(s.image).toBe('trainer:gpu');
      if (name === 'coordinator') continue;
      const devices = s.deploy?.resources?.reservations?.devices ?? [];
      expect(devices).toHaveLength(1);
      expect(devices[0]).toMatchObject({ driver: 'nvidia', capabilities: ['gpu'] });
      gpus.push(...devices[0].device_ids!);
      // The one GPU the container sees; the rest of the worker's environment is kept.
      expect(s.environment).toMatchObject({ CUDA_VISIBLE_DEVICES: '0', MASTER_ADDR: 'coordinator', TRAINER_TOKEN: TOKEN });
    }
    expect(gpus.sort()).toEqual(['0', '1', '2', '3']);
  });

  it('a missing token file is an error naming it', () => {
    const missing = join(workspace(), 'nope.env');
    let message = '';
    try {
      composeConfig([COMPOSE], { TRAINER_ENV_FILE: missing });
    } catch (err) {
      message = String((err as { stderr?: string }).stderr ?? err);
    }
    expect(message).toContain(missing);
  });
});

/** What Compose would run for a service: the image's entry point and environment, the service's command and environment. */
function serviceProcess(config: ComposeConfig, image: ImageSettings, name: string, mounts: Record<string, string>, home: string) {
  const s = config.services[name];
  const argv = [...(s.entrypoint ?? image.entrypoint), ...(s.command ?? image.cmd)].map((a) => mapPath(a, mounts));
  const env: Record<string, string> = { PATH: BASE_PATH, HOME: home, TRAINER_LOG_FORMAT: 'json' };
  for (const [k, v] of Object.entries({ ...image.env, ...s.environment })) env[k] = mapPath(v, mounts);
  return { argv, env, cwd: mapPath(image.workdir, mounts) };
}

describe.skipIf(reason !== null)('docker compose up, then restart, with every service on its own host', () => {
  it('trains on Moby Dick, and after a restart of every service resumes from the newest checkpoint', async () => {
    const ws = workspace();
    const volumeDir = join(ws, 'volume');
    mkdirSync(volumeDir);
    const config = composeConfig([COMPOSE], { TRAINER_ENV_FILE: tokenFile(ws), TRAINER_STEPS: '40', TRAINER_SAVE_EVERY: '5', TRAINER_RUN: 'compose-test' });
    const coordinator = config.services.coordinator;
    const image = imageSettings(parseDockerfile(readFileSync(join(coordinator.build!.context, coordinator.build!.dockerfile!), 'utf8')));
    const volume = Object.keys(config.volumes!)[0];
    // The image holds the repository at its WORKDIR; the named volume is a folder every host sees.
    const mounts = { [image.workdir]: REPO, [volumeTarget(coordinator.volumes, volume)!]: volumeDir };
    const services = ['coordinator', ...WORKERS];
    cluster = createNamedCluster(services.map((s) => [s]));
    const c = cluster;
    const start = (name: string): HostProcess => {
      const p = serviceProcess(config, image, name, mounts, ws);
      // The test's tiny model (options appended to the coordinator's: the last value wins).
      const extra = name === 'coordinator' ? TINY_MODEL_OPTIONS : [];
      return c.start(c.host(name), name, p.argv[0], [...p.argv.slice(1), ...extra], p.env, p.cwd);
    };
    const health = coordinator.healthcheck!;
    const healthy = () => {
      try {
        execFileSync('ip', ['netns', 'exec', c.host('coordinator').namespace, ...health.test.slice(1)], { stdio: 'ignore', timeout: 5000, env: { PATH: BASE_PATH } });
        return true;
      } catch {
        return false;
      }
    };

    // `up`: the coordinator first; the workers once its health check passes.
    expect(healthy(), 'healthy before the coordinator runs').toBe(false);
    const first = [start('coordinator')];
    const interval = Number.parseFloat(health.interval!) * 1000;
    for (const deadline = Date.now() + 60_000; !healthy();) {
      if (Date.now() > deadline || first[0].child.exitCode !== null) throw new Error(`the coordinator never became healthy:\n${first[0].output()}`);
      await new Promise((r) => setTimeout(r, interval));
    }
    first.push(...WORKERS.map(start));
    await until(() => /checkpoint step-\d+ committed/.test(first[0].output()), 90_000, 'the first checkpoint');

    // `restart`: every container stopped (SIGTERM, then SIGKILL after 10 s) and started again at once.
    await Promise.all(first.map((p) => stopProcess(p)));
    const runDir = join(volumeDir, 'runs', 'compose-test');
    const committed = readFileSync(join(runDir, 'checkpoints', 'latest'), 'utf8').trim();
    const savedStep = Number(/step-(\d+)/.exec(committed)![1]);
    expect(savedStep).toBeGreaterThanOrEqual(5);
    const second = services.map(start);
    const exits = await Promise.all(second.map((p) => p.exited));
    const out = Object.fromEntries(second.map((p) => [p.label, p.output()]));
    expect(exits[0], out.coordinator).toEqual({ code: 0, signal: null });
    for (let i = 1; i < exits.length; i++) expect(exits[i], out[second[i].label]).toEqual({ code: 0, signal: null });

    // Started together, workers waited for the coordinator to prepare the job (docker/entrypoint.sh).
    expect(second.slice(1).some((p) => p.output().includes(`trainer: waiting for the coordinator at coordinator:${option(coordinator.command!, '--port')}`))).toBe(true);
    // The second run continued from the checkpoint the first committed, to the end.
    expect(out.coordinator).toContain(`resuming from ${join(runDir, 'checkpoints', committed)} at step ${savedStep}`);
    const summary = JSON.parse(readFileSync(join(runDir, 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ ok: true, world: 4, steps: 40 });
    // metrics.jsonl: the first run's steps from 0, the resume record, then steps savedStep..39.
    const rank0 = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r.rank === 0);
    const resumed = rank0.findIndex((r) => r.resumed_from !== undefined);
    expect(rank0[resumed]).toMatchObject({ step: savedStep, resumed_from: join(runDir, 'checkpoints', committed) });
    const trainedSteps = (records: Record<string, unknown>[]) => records.filter((r) => typeof r.loss === 'number').map((r) => r.step);
    expect(trainedSteps(rank0.slice(0, resumed)).slice(0, savedStep)).toEqual(Array.from({ length: savedStep }, (_, i) => i));
    expect(trainedSteps(rank0.slice(resumed + 1))).toEqual(Array.from({ length: 40 - savedStep }, (_, i) => savedStep + i));
    expect(existsSync(join(runDir, 'model', 'model.safetensors'))).toBe(true);
    expect(existsSync(join(volumeDir, 'cache'))).toBe(true);

    // Each worker ran on its own host (its data plane on its own address) with the rank the file gave it.
    for (const p of second.slice(1)) {
      const lines = jsonLines(p.output());
      const joined = lines.find((l) => l.msg === 'joined the coordinator; waiting for the other workers');
      expect(joined?.coordinator).toBe(`coordinator:${option(coordinator.command!, '--port')}`);
      expect(String(joined?.data).startsWith(`${p.host.ip}:`)).toBe(true);
      const connected = lines.find((l) => l.msg === 'data plane connected to all peers');
      expect(connected?.rank).toBe(Number(config.services[p.label].environment!.RANK));
    }
    for (const p of [...first, ...second]) expect(p.output()).not.toContain(TOKEN);
    for (const h of c.hosts) expect(c.processes(h), h.names[0]).toEqual([]);
  }, 240_000);
});

describe('the README on docker-compose', () => {
  it('names every variable the compose files read, and the files it runs exist', () => {
    const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('### docker-compose'), readme.indexOf('### Slurm'));
    const variables = new Set([COMPOSE, COMPOSE_GPU].flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/\$\{(TRAINER_[A-Z_]+)/g)].map((m) => m[1])));
    expect(variables.size).toBeGreaterThan(5);
    for (const v of variables) expect(section, v).toContain('`' + v + '`');
    const files = [...readme.matchAll(/(?:-f |sbatch )((?:docker|scripts)\/[\w./-]+)/g)].map((m) => m[1]);
    expect(new Set(files)).toEqual(new Set(['docker/docker-compose.yml', 'docker/docker-compose.gpu.yml', 'scripts/slurm/train.sbatch', 'docker/Dockerfile.gpu', 'docker/k8s/pvc.yaml', 'docker/k8s/trainer.yaml']));
    for (const f of files) expect(existsSync(join(REPO, f)), f).toBe(true);
    // The cluster section's link to the SSH launch section resolves (GitHub's heading anchors).
    for (const m of readme.matchAll(/\]\(#([a-z0-9-]+)\)/g)) {
      const headings = [...readme.matchAll(/^#+ (.+)$/gm)].map((h) => h[1].toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-'));
      expect(headings, `#${m[1]}`).toContain(m[1]);
    }
  });
});
