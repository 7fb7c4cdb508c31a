import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { connectChannel } from '@trainer/comm';
import { killAllStarted, pidsWithMarker, startTrainer, waitFor } from './helpers/processes.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

const TOKEN = 'test-cluster-token-0123456789abcdef';

/**
 * The multi-host shape on one machine: `trainer coordinator` alone, workers started separately
 * with the torchrun environment (as Slurm or Kubernetes would start them), and strangers at the
 * coordinator's door while they work.
 */
describe('standalone coordinator and workers', () => {
  it('trains with workers started from the torchrun environment, and shrugs off strangers', async () => {
    const ws = tinyWorkspace();
    const out = ws.out('run');
    const port = 20000 + Math.floor(Math.random() * 20000);
    const env = { TRAINER_TOKEN: TOKEN };
    const coordinator = startTrainer(['coordinator', '--nodes', '2', '--port', String(port), '--host', '127.0.0.1', ...tinyJobArgs(ws, ['--out', out, '--steps', '6'])], { env });
    await waitFor(() => /coordinator listening/.test(coordinator.output()), 30_000, 'the coordinator to listen');

    // Strangers: no token, a wrong token, and raw garbage. Each is refused; the job goes on.
    await expect(connectChannel({ host: '127.0.0.1', port, token: 'wrong-token-wrong-token-wrong', role: 'control', hello: {} })).rejects.toMatchObject({ code: expect.stringMatching(/TRAINER_ERR_(AUTH_FAILED|CONNECT_FAILED|CHANNEL_CLOSED)/) });
    await new Promise<void>((resolve) => {
      const sock = new WebSocket(`ws://127.0.0.1:${port}`);
      sock.on('open', () => sock.send(Buffer.from('\x00\x00\x00\x05garbage-not-msgpack')));
      sock.on('close', () => resolve());
      sock.on('error', () => resolve());
    });

    const workers = [0, 1].map((rank) => startTrainer(['worker'], {
      env: { ...env, MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), WORLD_SIZE: '2', RANK: String(rank), LOCAL_RANK: String(rank) },
    }));
    const [c, w0, w1] = await Promise.all([coordinator.result, workers[0].result, workers[1].result]);
    expect(c.code, coordinator.output()).toBe(0);
    expect(w0.code, workers[0].output()).toBe(0);
    expect(w1.code, workers[1].output()).toBe(0);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ ok: true, world: 2, steps: 6 });
    expect(coordinator.output()).toMatch(/refused a control connection/);
    // The token never appears in any output.
    for (const run of [coordinator, ...workers]) expect(run.output()).not.toContain(TOKEN);
    for (const run of [coordinator, ...workers]) expect(pidsWithMarker(run.marker)).toEqual([]);
  });

  it('a worker without a coordinator address or token fails with a coded error', async () => {
    const noAddress = await startTrainer(['worker'], { env: { TRAINER_TOKEN: TOKEN, MASTER_ADDR: '', MASTER_PORT: '' } }).result;
    expect(noAddress.code).toBe(2);
    expect(noAddress.stderr).toMatch(/TRAINER_ERR_NO_COORDINATOR/);
    const noToken = await startTrainer(['worker', '--coordinator', '127.0.0.1:1'], { env: { TRAINER_TOKEN: '' } }).result;
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toMatch(/TRAINER_ERR_TOKEN_MISSING/);
  });
});
