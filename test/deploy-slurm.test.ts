import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO, workerEnvironmentNames } from './helpers/deploy-files.js';
import { BASE_PATH, createNamedCluster, jsonLines, TINY_MODEL_OPTIONS, until, type NamedCluster, type NamedHost } from './helpers/deploy-hosts.js';
import { netnsUnavailableReason } from './helpers/netns.js';

/**
 * scripts/slurm/train.sbatch inside a fake allocation: two nodes as network namespaces
 * (tnode0, tnode1, names resolving as a cluster's do), stand-ins for `scontrol show hostnames`
 * and `srun` (test/helpers/fake-slurm: srun starts each task in its node's namespace with the
 * SLURM_* variables a task gets), and the script copied elsewhere first, as sbatch spools it.
 */

const SBATCH = join(REPO, 'scripts', 'slurm', 'train.sbatch');
const FAKE_SLURM = join(REPO, 'test', 'helpers', 'fake-slurm');
const NODES = ['tnode0', 'tnode1'];
const TASKS_PER_NODE = 2;

const dirs: string[] = [];
let cluster: NamedCluster | undefined;
afterEach(() => {
  cluster?.destroy();
  cluster = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The #SBATCH options of the script: name -> value. */
function sbatchOptions(text: string): Record<string, string> {
  return Object.fromEntries([...text.matchAll(/^#SBATCH --([a-z-]+)=(\S+)/gm)].map((m) => [m[1], m[2]]));
}

describe('scripts/slurm/train.sbatch', () => {
  it('is valid bash asking for one task per GPU, and exports the environment `trainer worker` reads', () => {
    execFileSync('bash', ['-n', SBATCH]);
    const text = readFileSync(SBATCH, 'utf8');
    const o = sbatchOptions(text);
    expect(Number(o['ntasks-per-node'])).toBe(Number(o['gpus-per-node']));
    expect(Number(o.nodes)).toBeGreaterThanOrEqual(1);
    // Each variable the worker reads is set by the script (RANK and LOCAL_RANK inside each task).
    for (const name of workerEnvironmentNames()) expect(text, name).toMatch(new RegExp(`export [^\\n]*\\b${name}\\b`));
  });
});

interface Allocation {
  ws: string;
  out: string;
  env: Record<string, string>;
  script: string;
  tnode0: NamedHost;
  tnode1: NamedHost;
  c: NamedCluster;
}

function allocate(): Allocation {
  const ws = mkdtempSync(join(tmpdir(), 'trainer-slurm-'));
  dirs.push(ws);
  // sbatch runs a copy of the script from its spool directory, not the repository.
  mkdirSync(join(ws, 'spool'));
  const script = join(ws, 'spool', 'slurm_script');
  copyFileSync(SBATCH, script);
  cluster = createNamedCluster(NODES.map((n) => [n]));
  const c = cluster;
  const out = join(ws, 'run');
  const env = {
    PATH: `${FAKE_SLURM}:${BASE_PATH}`, HOME: ws, TRAINER_LOG_FORMAT: 'json', TRAINER_CACHE_DIR: join(ws, 'cache'),
    SLURM_JOB_ID: '4242', SLURM_JOB_NAME: 'trainer', SLURM_JOB_NODELIST: 'tnode[0-1]', SLURM_JOB_NUM_NODES: String(NODES.length),
    SLURM_NTASKS: String(NODES.length * TASKS_PER_NODE), SLURM_NTASKS_PER_NODE: String(TASKS_PER_NODE), SLURM_SUBMIT_DIR: REPO,
    FAKE_SLURM_NAMESPACES: JSON.stringify(Object.fromEntries(c.hosts.map((h) => [h.names[0], h.namespace]))), FAKE_SLURM_GPUS_PER_NODE: String(TASKS_PER_NODE),
    TRAINER_OUT: out,
  };
  return { ws, out, env, script, tnode0: c.host('tnode0'), tnode1: c.host('tnode1'), c };
}

const reason = netnsUnavailableReason();
if (reason) console.warn(`skipping the Slurm runs on separate hosts: ${reason}`);

describe.skipIf(reason !== null)('train.sbatch in a fake allocation of 2 nodes x 2 tasks', () => {
  it('runs the coordinator on the first node and one worker per task, ranked by SLURM_PROCID, one GPU each', async () => {
    const a = allocate();
    const batch = a.c.start(a.tnode0, 'batch', 'bash', [a.script, '--data', 'moby-dick', '--steps', '6', '--save-every', '3', ...TINY_MODEL_OPTIONS], a.env, a.ws);
    // Watch the processes of both nodes while they run: argv, environment, and where they are.
    const seen = new Map<number, { host: string; argv: string[]; env: Record<string, string> }>();
    let done = false;
    void batch.exited.then(() => (done = true));
    while (!done) {
      for (const h of a.c.hosts) for (const p of a.c.processes(h)) if (!seen.has(p.pid) && p.argv.some((x) => x.endsWith('trainer.js'))) seen.set(p.pid, { host: h.names[0], argv: p.argv, env: p.env });
      await new Promise((r) => setTimeout(r, 50));
    }
    const exit = await batch.exited;
    const output = batch.output();
    expect(exit, output).toEqual({ code: 0, signal: null });
    expect(output).toContain(`train.sbatch: coordinator on tnode0:29500, 4 workers on 2 node(s) (tnode[0-1]), run folder ${a.out}`);
    expect(JSON.parse(readFileSync(join(a.out, 'summary.json'), 'utf8'))).toMatchObject({ ok: true, world: 4, steps: 6 });
    expect(existsSync(join(a.out, 'checkpoints', 'latest'))).toBe(true);

    const procs = [...seen.values()];
    const coordinators = procs.filter((p) => p.argv.includes('coordinator'));
    expect(coordinators.map((p) => p.host)).toEqual(['tnode0']);
    // The script's defaults come first, the submitted options after them (the last value wins).
    expect(coordinators[0].argv.slice(coordinators[0].argv.indexOf('coordinator'))).toEqual(expect.arrayContaining(['--nodes', '4', '--port', '29500', '--resume', 'auto', '--out', a.out, '--save-every', '3']));
    const workers = procs.filter((p) => p.argv.includes('worker')).sort((x, y) => Number(x.env.SLURM_PROCID) - Number(y.env.SLURM_PROCID));
    expect(workers).toHaveLength(4);
    const tokens = new Set<string>();
    for (const w of workers) {
      const procid = Number(w.env.SLURM_PROCID);
      expect(w.host).toBe(NODES[Math.floor(procid / TASKS_PER_NODE)]);
      expect(w.env).toMatchObject({
        RANK: String(procid), LOCAL_RANK: w.env.SLURM_LOCALID, WORLD_SIZE: '4', MASTER_ADDR: 'tnode0', MASTER_PORT: '29500',
        // Slurm showed the task both GPUs of its node; the script kept the LOCAL_RANK-th.
        CUDA_VISIBLE_DEVICES: w.env.SLURM_LOCALID,
      });
      expect(w.env.TRAINER_TOKEN.length).toBeGreaterThanOrEqual(32);
      tokens.add(w.env.TRAINER_TOKEN);
    }
    expect(tokens.size).toBe(1);
    expect(output).not.toContain([...tokens][0]);

    // Ranks follow SLURM_PROCID, and each node's workers advertise its own address.
    const lines = jsonLines(output);
    const ranks = lines.filter((l) => l.msg === 'data plane connected to all peers').map((l) => l.rank).sort();
    expect(ranks).toEqual([0, 1, 2, 3]);
    const dataHosts = lines.filter((l) => l.msg === 'joined the coordinator; waiting for the other workers').map((l) => String(l.data).split(':')[0]).sort();
    expect(dataHosts).toEqual([a.tnode0.ip, a.tnode0.ip, a.tnode1.ip, a.tnode1.ip].sort());
    const assigned = lines.find((l) => l.msg === 'ranks assigned');
    expect(assigned).toBeDefined();
    for (const h of a.c.hosts) expect(a.c.processes(h), h.names[0]).toEqual([]);
  }, 180_000);

  it('a node that cannot reach the first: its workers name the coordinator they cannot reach, the job fails, nothing is left running', async () => {
    const a = allocate();
    a.c.net.setLink(a.tnode1, false);
    const batch = a.c.start(a.tnode0, 'batch', 'bash', [a.script, '--data', 'moby-dick', '--steps', '6', ...TINY_MODEL_OPTIONS], a.env, a.ws);
    const exit = await batch.exited;
    const output = batch.output();
    expect(exit.code, output).not.toBe(0);
    // The cut node's workers fail at once (no host answers for tnode0), srun --kill-on-bad-exit
    // ends the others, and the script stops the coordinator, saying why.
    expect(output).toMatch(/trainer: TRAINER_ERR_CONNECT_FAILED: cannot connect to tnode0:29500: connect (EHOSTUNREACH|ETIMEDOUT)/);
    expect(output).toMatch(/train\.sbatch: a worker task failed \(srun exited with status [1-9]\d*; the task's error is above\); stopping the coordinator/);
    expect(output).not.toMatch(/"msg":"ranks assigned"/);
    await until(() => a.c.hosts.every((h) => a.c.processes(h).length === 0), 5000, 'every process of the job to end');
  }, 120_000);
});
