import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestNetwork, netnsUnavailableReason, type TestHost, type TestNetwork } from './netns.js';

/**
 * Test hosts you can SSH into: network namespaces (netns.ts), each with its own address and an
 * OpenSSH server listening on it, a fresh key pair the launcher's ssh uses (`sshOptions`: -F
 * with a config naming the key, no host key checks), root logins by key only. The launcher
 * reaches them by address, exactly as it would reach machines.
 */
export interface SshTestHosts {
  net: TestNetwork;
  hosts: TestHost[];
  /** Extra ssh options for `trainer launch --ssh-opts`. */
  sshOptions: string;
  dir: string;
  destroy(): void;
}

export const SSHD = '/usr/sbin/sshd';

/** Why SSH test hosts cannot be made here, or null when they can. */
export function sshHostsUnavailableReason(): string | null {
  const netns = netnsUnavailableReason();
  if (netns) return netns;
  if (!existsSync(SSHD)) return `no OpenSSH server at ${SSHD} (scripts/setup.sh installs openssh-server)`;
  try {
    execFileSync('ssh-keygen', ['-?'], { stdio: 'ignore' });
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return 'no ssh-keygen (openssh-client)';
  }
  return null;
}

/** `noSshd`: indices of hosts that get no SSH server (unreachable by the launcher, reachable by address). */
export async function createSshHosts(count: number, opts: { noSshd?: number[] } = {}): Promise<SshTestHosts> {
  const dir = mkdtempSync(join(tmpdir(), 'trainer-ssh-'));
  const net = createTestNetwork(count);
  const destroy = () => {
    net.destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    mkdirSync('/run/sshd', { recursive: true }); // sshd's privilege-separation directory
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id')]);
    execFileSync('cp', [join(dir, 'id.pub'), join(dir, 'authorized_keys')]);
    writeFileSync(join(dir, 'ssh_config'), [
      'Host *', `  IdentityFile ${join(dir, 'id')}`, '  User root', '  StrictHostKeyChecking no', '  UserKnownHostsFile /dev/null', '  LogLevel ERROR', '',
    ].join('\n'));
    const served = net.hosts.filter((_, i) => !opts.noSshd?.includes(i));
    for (const [i, h] of net.hosts.entries()) {
      if (opts.noSshd?.includes(i)) continue;
      const config = join(dir, `sshd-${i}.conf`);
      writeFileSync(config, [
        `ListenAddress ${h.ip}`, 'Port 22', `HostKey ${join(dir, 'host_key')}`, `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'PermitRootLogin prohibit-password', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no',
        `PidFile ${join(dir, `sshd-${i}.pid`)}`, 'LogLevel ERROR', '',
      ].join('\n'));
      net.spawn(h, SSHD, ['-D', '-e', '-f', config]);
    }
    // Ready when every server answers.
    const deadline = Date.now() + 10_000;
    for (const h of served) {
      for (;;) {
        try {
          execFileSync('ssh', ['-F', join(dir, 'ssh_config'), '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=2', h.ip, 'true'], { stdio: 'ignore' });
          break;
        } catch (err) {
          if (Date.now() > deadline) throw new Error(`sshd on ${h.ip} did not come up: ${(err as Error).message}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
  } catch (err) {
    destroy();
    throw err;
  }
  return { net, hosts: net.hosts, sshOptions: `-F ${join(dir, 'ssh_config')}`, dir, destroy };
}
