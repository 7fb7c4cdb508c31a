import { TrainerError } from '@trainer/errors';

/**
 * The torchrun environment (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK), as Slurm,
 * Kubernetes and other launchers set it. A worker uses these when no flag says otherwise.
 */
export interface TorchrunEnv {
  masterAddr?: string;
  masterPort?: number;
  worldSize?: number;
  rank?: number;
  localRank?: number;
}

export function readTorchrunEnv(env: NodeJS.ProcessEnv = process.env): TorchrunEnv {
  const out: TorchrunEnv = {};
  if (env.MASTER_ADDR) out.masterAddr = env.MASTER_ADDR;
  const port = intFromEnv(env, 'MASTER_PORT', 1, 65535);
  if (port !== undefined) out.masterPort = port;
  const world = intFromEnv(env, 'WORLD_SIZE', 1, 1 << 20);
  if (world !== undefined) out.worldSize = world;
  const rank = intFromEnv(env, 'RANK', 0, 1 << 20);
  if (rank !== undefined) out.rank = rank;
  const localRank = intFromEnv(env, 'LOCAL_RANK', 0, 1 << 16);
  if (localRank !== undefined) out.localRank = localRank;
  if (out.rank !== undefined && out.worldSize !== undefined && out.rank >= out.worldSize) {
    throw new TrainerError('TRAINER_ERR_BAD_ENV', `RANK=${out.rank} is not below WORLD_SIZE=${out.worldSize}`, {
      hint: 'ranks are numbered 0 .. WORLD_SIZE-1',
    });
  }
  return out;
}

function intFromEnv(env: NodeJS.ProcessEnv, name: string, min: number, max: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new TrainerError('TRAINER_ERR_BAD_ENV', `environment variable ${name}=${JSON.stringify(raw)} is not an integer in [${min}, ${max}]`, {
      hint: `fix or unset ${name}`,
    });
  }
  return value;
}

/** Parses HOST:PORT (IPv6 as [::1]:PORT). */
export function parseHostPort(value: string, what: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(value) ?? /^([^:]+):(\d+)$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) {
    throw new TrainerError('TRAINER_ERR_BAD_ADDRESS', `${what} ${JSON.stringify(value)} is not HOST:PORT`, {
      hint: 'for example --coordinator 10.0.0.1:29500',
    });
  }
  return { host: m[1], port };
}
