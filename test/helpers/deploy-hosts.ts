import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createTestNetwork, type TestHost, type TestNetwork } from './netns.js';

/**
 * Named hosts for running deployment files: network namespaces (test/helpers/netns.ts) whose
 * names resolve in every one of them, as Compose service names, Kubernetes pod DNS names and
 * Slurm node names do. `ip netns exec NS` mounts /etc/netns/NS/hosts over /etc/hosts, so each
 * namespace gets a hosts file naming every host.
 */
export interface NamedHost extends TestHost {
  names: string[];
}

export interface HostProcess {
  label: string;
  host: NamedHost;
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface NamedCluster {
  net: TestNetwork;
  hosts: NamedHost[];
  host(name: string): NamedHost;
  /** Starts `command args` on a host with exactly `env` (no environment is inherited), in `cwd`. */
  start(host: NamedHost, label: string, command: string, args: string[], env: Record<string, string>, cwd?: string): HostProcess;
  /** Live processes of a host's namespace: pid, argv and environment. */
  processes(host: NamedHost): { pid: number; argv: string[]; env: Record<string, string> }[];
  /** Kills every process in the namespaces, removes them, the bridge and the hosts files. */
  destroy(): void;
}

/** The PATH of every process: the directory of this Node.js first (an image has `node` on its PATH). */
export const BASE_PATH = `${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;

export function createNamedCluster(names: string[][]): NamedCluster {
  const net = createTestNetwork(names.length);
  const hosts: NamedHost[] = net.hosts.map((h, i) => ({ ...h, names: names[i] }));
  const hostsFile = ['127.0.0.1 localhost', ...hosts.map((h) => `${h.ip} ${h.names.join(' ')}`)].join('\n') + '\n';
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  const destroy = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    net.destroy();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  };
  try {
    for (const h of hosts) {
      const dir = `/etc/netns/${h.namespace}`;
      mkdirSync(dir, { recursive: true });
      dirs.push(dir);
      writeFileSync(join(dir, 'hosts'), hostsFile);
    }
  } catch (err) {
    destroy();
    throw err;
  }
  return {
    net,
    hosts,
    host(name) {
      const h = hosts.find((x) => x.names.includes(name));
      if (!h) throw new Error(`no test host is named ${name}`);
      return h;
    },
    start(host, label, command, args, env, cwd) {
      const child = spawn('ip', ['netns', 'exec', host.namespace, command, ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout!.on('data', (d) => (text += d));
      child.stderr!.on('data', (d) => (text += d));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
      children.push(child);
      return { label, host, child, output: () => text, exited };
    },
    processes(host) {
      let pids: string[] = [];
      try {
        pids = execFileSync('ip', ['netns', 'pids', host.namespace], { encoding: 'utf8' }).split('\n').filter(Boolean);
      } catch {
        return [];
      }
      return pids.flatMap((pid) => {
        try {
          const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
          const env = Object.fromEntries(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean).map((kv) => {
            const i = kv.indexOf('=');
            return [kv.slice(0, i), kv.slice(i + 1)];
          }));
          return [{ pid: Number(pid), argv, env }];
        } catch {
          return []; // it ended while we looked
        }
      });
    },
    destroy,
  };
}

/** Names of the test's namespaces still present (for the check that nothing is left behind). */
export function leftoverNamespaces(cluster: NamedCluster): string[] {
  let present: string[] = [];
  try {
    present = readdirSync('/var/run/netns');
  } catch {
    return [];
  }
  return cluster.hosts.map((h) => h.namespace).filter((ns) => present.includes(ns));
}

/** JSON log lines of a process's output. */
export function jsonLines(text: string): Record<string, unknown>[] {
  return text.split('\n').filter((l) => l.startsWith('{')).flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

/** Resolves when `predicate` holds, polling; rejects after `timeoutMs` naming `what`. */
export async function until(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGTERM, then SIGKILL after `graceMs` (docker stop's 10 s), as a container runtime stops a process. */
export async function stopProcess(p: HostProcess, graceMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  const r = await p.exited;
  clearTimeout(timer);
  return r;
}

/**
 * Options appended to a deployment's training options to make the job tiny (a 1-block GPT with a
 * 300-token vocabulary), so that five processes train in seconds on two cores. Commander keeps
 * the last value of a repeated option, so these override the file's own values.
 */
export const TINY_MODEL_OPTIONS = [
  '--layers', '1', '--heads', '2', '--d-model', '32', '--vocab-size', '300', '--context-length', '32',
  '--backend', 'wasm', '--global-batch', '4', '--lr', '3e-3', '--warmup-steps', '1', '--eval-batches', '2', '--sample-tokens', '8',
];

/** Replaces a path prefix (the image's or a volume's) in a value: `/data/x` -> `<dir>/x`. */
export function mapPath(value: string, mounts: Record<string, string>): string {
  for (const [inside, outside] of Object.entries(mounts)) {
    if (value === inside) return outside;
    if (value.startsWith(inside.replace(/\/$/, '') + '/')) return outside.replace(/\/$/, '') + value.slice(inside.replace(/\/$/, '').length);
  }
  return value;
}
