import { describe, expect, it } from 'vitest';
import { rankOrder, suspectsOf } from './coordinator.js';
import type { WorkerHello } from './control-protocol.js';
import { cudaVisibleDevices, parseGpuMemory, parseNvidiaSmiList } from './devices.js';
import { parseFault } from './jobs/fault-injection.js';
import { parseHostPort, readTorchrunEnv } from './torchrun-env.js';
import { resolveClusterToken } from './cluster-token.js';

function hello(host: string, localRank: number, pid: number, requestedRank?: number): WorkerHello {
  return { kind: 'worker', protocol: 1, host, pid, localRank, dataHost: host, dataPort: 1000 + pid, device: 'cpu', ...(requestedRank === undefined ? {} : { requestedRank }) };
}

describe('rank assignment', () => {
  it('orders by host then local rank when no RANK was given', () => {
    const hellos = [hello('b', 0, 5), hello('a', 1, 3), hello('a', 0, 9)];
    expect(rankOrder(hellos, 3)).toEqual([2, 1, 0]);
  });

  it('uses RANK from the environment when every worker has one', () => {
    expect(rankOrder([hello('a', 0, 1, 2), hello('a', 1, 2, 0), hello('b', 0, 3, 1)], 3)).toEqual([1, 2, 0]);
  });

  it('refuses duplicate or out-of-range ranks with a coded error', () => {
    expect(rankOrder([hello('a', 0, 1, 0), hello('b', 0, 2, 0)], 2)).toMatchObject({ code: 'TRAINER_ERR_RANK_CONFLICT' });
    expect(rankOrder([hello('a', 0, 1, 0), hello('b', 0, 2, 5)], 2)).toMatchObject({ code: 'TRAINER_ERR_RANK_CONFLICT' });
  });
});

describe('failure attribution', () => {
  it('finds the suspect named by a lost-peer or timeout error, and none in a root cause', () => {
    expect(suspectsOf({ code: 'TRAINER_ERR_PEER_LOST', message: '', details: { rank: 2 } })).toEqual([2]);
    expect(suspectsOf({ code: 'TRAINER_ERR_COLLECTIVE_TIMEOUT', message: '', details: { missing: [1, 3] } })).toEqual([1, 3]);
    expect(suspectsOf({ code: 'TRAINER_ERR_NONFINITE', message: '', details: { rank: 2 } })).toEqual([]);
  });
});

describe('environment and addresses', () => {
  it('reads the torchrun environment and refuses nonsense', () => {
    expect(readTorchrunEnv({ MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29500', WORLD_SIZE: '4', RANK: '3', LOCAL_RANK: '1' })).toEqual({
      masterAddr: '10.0.0.1', masterPort: 29500, worldSize: 4, rank: 3, localRank: 1,
    });
    expect(() => readTorchrunEnv({ RANK: 'x' })).toThrow(/RANK="x"/);
    expect(() => readTorchrunEnv({ RANK: '4', WORLD_SIZE: '4' })).toThrow(/not below WORLD_SIZE/);
  });

  it('parses HOST:PORT including IPv6', () => {
    expect(parseHostPort('node1:29500', 'x')).toEqual({ host: 'node1', port: 29500 });
    expect(parseHostPort('[::1]:80', 'x')).toEqual({ host: '::1', port: 80 });
    expect(() => parseHostPort('node1', '--coordinator')).toThrow(/--coordinator "node1" is not HOST:PORT/);
  });

  it('parses nvidia-smi -L and gives each local rank its GPU', () => {
    const gpus = parseNvidiaSmiList('GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1)\nGPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-2)\n');
    expect(gpus).toEqual([{ index: 0, name: 'NVIDIA A100-SXM4-40GB' }, { index: 1, name: 'NVIDIA A100-SXM4-40GB' }]);
    expect(cudaVisibleDevices(1, gpus)).toBe('1');
    expect(cudaVisibleDevices(0, [])).toBeUndefined();
    // nvidia-smi --query-gpu=index,memory.total --format=csv,noheader,nounits (MiB)
    expect(parseGpuMemory('0, 81559\n1, 81559\n')).toEqual([{ index: 0, bytes: 81559 * 2 ** 20 }, { index: 1, bytes: 81559 * 2 ** 20 }]);
    expect(parseGpuMemory('NVIDIA-SMI has failed\n')).toEqual([]);
  });

  it('parses fault specs and refuses bad ones', () => {
    expect(parseFault('rank=1,step=3,kind=exit')).toEqual({ rank: 1, step: 3, kind: 'exit', round: 0 });
    expect(parseFault('rank=1,step=3,kind=kill,round=any')).toEqual({ rank: 1, step: 3, kind: 'kill', round: undefined });
    expect(() => parseFault('rank=1,step=3,kind=kill,round=x')).toThrow(/TRAINER_FAULT/);
    expect(parseFault(undefined)).toBeUndefined();
    expect(parseFault('rank=0,step=9,kind=pause')).toEqual({ rank: 0, step: 9, kind: 'pause', round: 0, ms: 15_000 });
    expect(parseFault('rank=0,step=9,kind=pause,ms=250')).toMatchObject({ kind: 'pause', ms: 250 });
    expect(() => parseFault('rank=0,step=9,kind=exit,ms=250')).toThrow(/TRAINER_FAULT/);
    expect(() => parseFault('rank=1,kind=boom')).toThrow(/TRAINER_FAULT/);
  });

  it('takes the cluster token from the environment, refusing weak ones, and never echoes it', async () => {
    await expect(resolveClusterToken({ env: { TRAINER_TOKEN: 'abcdefghijklmnopqrstu' }, required: true })).resolves.toBe('abcdefghijklmnopqrstu');
    await expect(resolveClusterToken({ env: {}, required: true })).rejects.toMatchObject({ code: 'TRAINER_ERR_TOKEN_MISSING' });
    const weak = resolveClusterToken({ env: { TRAINER_TOKEN: 'short-secret' }, required: true });
    await expect(weak).rejects.toMatchObject({ code: 'TRAINER_ERR_TOKEN_WEAK' });
    await expect(weak).rejects.not.toThrow(/short-secret/);
  });
});

describe('metrics on the wire', () => {
  it('turns NaN and infinities into null (a skipped fp16 step has no gradient norm)', async () => {
    const { finiteOrNull } = await import('./worker.js');
    expect(finiteOrNull({ step: 3, grad_norm: NaN, tokens_per_s: Infinity, loss: 2.5, sample: 'x' })).toEqual({ step: 3, grad_norm: null, tokens_per_s: null, loss: 2.5, sample: 'x' });
  });
});
