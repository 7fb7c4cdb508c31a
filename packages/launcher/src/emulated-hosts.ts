import { readFileSync } from 'node:fs';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { TrainerError } from '@trainer/errors';

/**
 * Separate hosts on one machine, for tests and benchmarks of what crosses a network: one Linux
 * network namespace per host, each with its own address on a bridge (veth pairs), so processes
 * reach each other by address, never by loopback; a link can be cut, or shaped to a rate (tc's
 * token bucket filter, both directions). Needs root and iproute2; where they are missing,
 * `emulationUnavailableReason()` says why.
 *
 *   bridge  tr<id>        10.<a>.<b>.1/24   (the root namespace: the "coordinator host" if wanted)
 *   host i  tn<id>-<i>    10.<a>.<b>.(i+2)/24
 */
export interface EmulatedHost {
  name: string;
  namespace: string;
  ip: string;
  /** The host-side end of its link (set down to cut the host off). */
  linkName: string;
  /** The end inside the namespace. */
  innerLinkName: string;
}

export interface EmulatedNetwork {
  hosts: EmulatedHost[];
  /** Bytes every host has sent over its link so far (its veth's counter: headers included), summed over the hosts. */
  bytesFromHosts(): number;
  /** The bridge's address in the root namespace: reachable from every host. */
  gatewayIp: string;
  /** Starts a process inside a host's namespace (same filesystem, its own network). */
  spawn(host: EmulatedHost, command: string, args: string[], opts?: { env?: NodeJS.ProcessEnv }): ChildProcess;
  /** Cuts (down) or restores (up) a host's link, like pulling its cable. */
  setLink(host: EmulatedHost, up: boolean): void;
  /**
   * Limits the host's link to `rate` each way (tc rate syntax: 20mbit, 1gbit), as a slower
   * network would, with tc's tbf (token bucket); with `delay` (tc time syntax: 1ms) through
   * netem instead, which needs a kernel with sch_netem (refused with
   * TRAINER_ERR_NETWORK_EMULATION where it has none, as this project's machines).
   */
  shape(host: EmulatedHost, rate: string, delay?: string): void;
  /** Kills everything running in the namespaces and removes them and the bridge. */
  destroy(): void;
}

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function tc(args: string[], hint?: string): void {
  try {
    execFileSync('tc', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw new TrainerError('TRAINER_ERR_NETWORK_EMULATION', `tc ${args.join(' ')} failed: ${((err as { stderr?: Buffer }).stderr ?? '').toString().trim() || String(err)}`, {
      hint: hint ?? 'shaping links needs root and iproute2\'s tc with the tbf qdisc (apt-get install iproute2)',
    });
  }
}

/** bits per second of a tc rate: 20mbit, 1gbit, 500kbit, 1000000 (bit). */
export function parseRate(rate: string): number {
  const m = /^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)?$/i.exec(rate.trim());
  if (!m) {
    throw new TrainerError('TRAINER_ERR_USAGE', `link rate ${JSON.stringify(rate)} is not a tc rate`, { hint: 'write it as tc does: 100mbit, 1gbit, 500kbit' });
  }
  const scale = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 }[(m[2] ?? 'bit').toLowerCase() as 'bit'];
  return Number(m[1]) * scale;
}

let cachedReason: string | null | undefined;

/** Why namespaces cannot be used here, or null when they can. */
export function emulationUnavailableReason(): string | null {
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

export function createEmulatedHosts(count: number): EmulatedNetwork {
  const reason = emulationUnavailableReason();
  if (reason) throw new Error(reason);
  const id = (process.pid * 7 + Math.floor(Math.random() * 1000)) % 10000;
  const a = 10 + (id % 200);
  const b = Math.floor(id / 200) % 250;
  const bridge = `tr${id}`;
  const subnet = `10.${a}.${b}`;
  const hosts: EmulatedHost[] = [];
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
      const host = { name: `host${i}`, namespace, ip: `${subnet}.${i + 2}`, linkName: outer, innerLinkName: inner };
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
    bytesFromHosts() {
      // The root-namespace end of each host's veth receives what the host sends.
      return hosts.reduce((sum, h) => sum + Number(readFileSync(`/sys/class/net/${h.linkName}/statistics/rx_bytes`, 'utf8').trim()), 0);
    },
    shape(host, rate, delay) {
      // The queue may hold ~100 ms of traffic at the rate before dropping; a burst of ~1 ms at it (at least 16 KiB).
      const bits = parseRate(rate);
      const qdisc = delay === undefined
        ? ['root', 'tbf', 'rate', rate, 'burst', String(Math.max(16384, Math.ceil(bits / 8 / 1000))), 'latency', '100ms']
        : ['root', 'netem', 'delay', delay, 'rate', rate];
      const hint = delay === undefined ? undefined : 'this kernel has no netem (sch_netem) for an added delay: leave out --delay to shape the rate alone with tbf';
      tc(['qdisc', 'replace', 'dev', host.linkName, ...qdisc], hint); // to the host
      tc(['-n', host.namespace, 'qdisc', 'replace', 'dev', host.innerLinkName, ...qdisc], hint); // from it
    },
    destroy,
  };
}
