import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

/**
 * Separate hosts on one machine, for tests of what crosses a network: one Linux network
 * namespace per host, each with its own address on a bridge (veth pairs), so processes reach each
 * other by address, never by loopback, and a link can be cut. Needs root and iproute2; where they
 * are missing, `netnsUnavailableReason()` says why and the tests skip, saying so.
 *
 *   bridge  tr<id>        10.<a>.<b>.1/24   (the root namespace: the "coordinator host" if wanted)
 *   host i  tn<id>-<i>    10.<a>.<b>.(i+2)/24
 */
export interface TestHost {
  name: string;
  namespace: string;
  ip: string;
  /** The host-side end of its link (set down to cut the host off). */
  linkName: string;
}

export interface TestNetwork {
  hosts: TestHost[];
  /** The bridge's address in the root namespace: reachable from every host. */
  gatewayIp: string;
  /** Starts a process inside a host's namespace (same filesystem, its own network). */
  spawn(host: TestHost, command: string, args: string[], opts?: { env?: NodeJS.ProcessEnv }): ChildProcess;
  /** Cuts (down) or restores (up) a host's link, like pulling its cable. */
  setLink(host: TestHost, up: boolean): void;
  /** Kills everything running in the namespaces and removes them and the bridge. */
  destroy(): void;
}

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

let cachedReason: string | null | undefined;

/** Why namespaces cannot be used here, or null when they can. */
export function netnsUnavailableReason(): string | null {
  if (cachedReason !== undefined) return cachedReason;
  if (process.getuid?.() !== 0) return (cachedReason = 'network namespaces need root');
  const probe = `tprobe${process.pid % 100000}`;
  try {
    ip(['netns', 'add', probe]);
    ip(['netns', 'del', probe]);
    cachedReason = null;
  } catch (err) {
    cachedReason = `cannot create a network namespace (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
  }
  return cachedReason;
}

export function createTestNetwork(count: number): TestNetwork {
  const reason = netnsUnavailableReason();
  if (reason) throw new Error(reason);
  const id = (process.pid * 7 + Math.floor(Math.random() * 1000)) % 10000;
  const a = 10 + (id % 200);
  const b = Math.floor(id / 200) % 250;
  const bridge = `tr${id}`;
  const subnet = `10.${a}.${b}`;
  const hosts: TestHost[] = [];
  const children: ChildProcess[] = [];
  const destroy = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const h of hosts) {
      try {
        // Anything still inside the namespace (grandchildren too).
        const pids = execFileSync('ip', ['netns', 'pids', h.namespace], { encoding: 'utf8' }).split('\n').filter(Boolean);
        for (const pid of pids) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // already gone
          }
        }
      } catch {
        // the namespace is gone
      }
      try {
        ip(['netns', 'del', h.namespace]);
      } catch {
        // already removed
      }
    }
    try {
      ip(['link', 'del', bridge]);
    } catch {
      // already removed
    }
  };
  try {
    ip(['link', 'add', bridge, 'type', 'bridge']);
    ip(['addr', 'add', `${subnet}.1/24`, 'dev', bridge]);
    ip(['link', 'set', bridge, 'up']);
    for (let i = 0; i < count; i++) {
      const namespace = `tn${id}-${i}`;
      const outer = `tv${id}-${i}`;
      const inner = `tp${id}-${i}`;
      const host = { name: `host${i}`, namespace, ip: `${subnet}.${i + 2}`, linkName: outer };
      ip(['netns', 'add', namespace]);
      hosts.push(host);
      ip(['link', 'add', outer, 'type', 'veth', 'peer', 'name', inner]);
      ip(['link', 'set', inner, 'netns', namespace]);
      ip(['-n', namespace, 'addr', 'add', `${host.ip}/24`, 'dev', inner]);
      ip(['-n', namespace, 'link', 'set', inner, 'up']);
      ip(['-n', namespace, 'link', 'set', 'lo', 'up']);
      ip(['-n', namespace, 'route', 'add', 'default', 'via', `${subnet}.1`]);
      ip(['link', 'set', outer, 'master', bridge]);
      ip(['link', 'set', outer, 'up']);
    }
  } catch (err) {
    destroy();
    throw err;
  }
  return {
    hosts,
    gatewayIp: `${subnet}.1`,
    spawn(host, command, args, opts = {}) {
      const child = spawn('ip', ['netns', 'exec', host.namespace, command, ...args], { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      return child;
    },
    setLink(host, up) {
      ip(['link', 'set', host.linkName, up ? 'up' : 'down']);
    },
    destroy,
  };
}
