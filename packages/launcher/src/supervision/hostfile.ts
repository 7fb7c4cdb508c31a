import { readFile } from 'node:fs/promises';
import { TrainerError } from '@trainer/errors';

/**
 * The hostfile of a multi-host launch, DeepSpeed's format: one host per line, optionally with
 * its worker count, `#` comments and blank lines ignored.
 *
 *   # name or address     workers (default: its GPUs, else 1)
 *   10.0.0.11 slots=4
 *   node12    slots=4
 *   alice@node13
 */
export interface HostEntry {
  /** What ssh dials ([user@]host), and how logs and failures name the host. */
  host: string;
  /** Workers on this host, when the hostfile says. */
  slots?: number;
  /** Where it was given: file:line. */
  where: string;
}

const HOST_PATTERN = /^(?:[A-Za-z0-9._-]+@)?(?:[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])$/;

export function parseHostfile(text: string, file: string): HostEntry[] {
  const hosts: HostEntry[] = [];
  const seen = new Map<string, string>();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const where = `${file}:${i + 1}`;
    const [host, ...fields] = line.split(/\s+/);
    if (!HOST_PATTERN.test(host)) throw hostfileError(`${where}: ${JSON.stringify(host)} is not a host name or address`);
    if (seen.has(host)) throw hostfileError(`${where}: host ${host} is listed twice (also at ${seen.get(host)})`, 'list every host once, with slots=N for several workers');
    seen.set(host, where);
    const entry: HostEntry = { host, where };
    for (const field of fields) {
      const m = /^slots=(\d+)$/.exec(field);
      if (!m || Number(m[1]) < 1 || Number(m[1]) > 1024) throw hostfileError(`${where}: ${JSON.stringify(field)} is not slots=N (N from 1 to 1024)`);
      entry.slots = Number(m[1]);
    }
    hosts.push(entry);
  }
  if (!hosts.length) throw hostfileError(`${file} lists no hosts`);
  return hosts;
}

export async function readHostfile(file: string): Promise<HostEntry[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new TrainerError('TRAINER_ERR_HOSTFILE', `cannot read the hostfile ${file}: ${(err as Error).message}`, { hint: 'pass --hostfile with a readable file: one host per line, optionally slots=N', cause: err });
  }
  return parseHostfile(text, file);
}

/** The first `nodes` hosts of the hostfile (all of them when nodes is undefined). */
export function pickHosts(hosts: readonly HostEntry[], nodes: number | undefined, file: string): HostEntry[] {
  if (nodes === undefined) return [...hosts];
  if (nodes > hosts.length) throw hostfileError(`--nodes ${nodes} asks for more hosts than ${file} lists (${hosts.length})`, `add hosts to ${file} or lower --nodes`);
  return hosts.slice(0, nodes);
}

function hostfileError(message: string, hint = 'one host per line: NAME [slots=N]; # starts a comment'): TrainerError {
  return new TrainerError('TRAINER_ERR_HOSTFILE', message, { hint });
}
