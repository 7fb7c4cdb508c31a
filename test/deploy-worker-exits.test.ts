import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { killAllStarted, pidsWithMarker, startTrainer, waitFor } from './helpers/processes.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

const TOKEN = 'deploy-worker-exits-token-0123456789';

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

/**
 * Under a scheduler, a worker that cannot reach its coordinator must end (so srun's
 * --kill-on-bad-exit, a Job's backoff or a container restart policy can act), not hang: before
 * the job starts, its data plane's listening server would otherwise keep the process alive.
 */
describe('a worker without its coordinator exits', () => {
  it('when the coordinator port is closed: a coded error at once', async () => {
    const port = await closedPort();
    const worker = startTrainer(['worker', '--coordinator', `127.0.0.1:${port}`], { env: { TRAINER_TOKEN: TOKEN }, timeoutMs: 30_000 });
    const r = await worker.result;
    expect(r.signal, 'the worker hung and was killed').toBeNull();
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`TRAINER_ERR_CONNECT_FAILED: cannot connect to 127\\.0\\.0\\.1:${port}`));
    expect(pidsWithMarker(worker.marker)).toEqual([]);
  });

  it('when the coordinator dies before assigning ranks: TRAINER_ERR_COORDINATOR_LOST', async () => {
    const ws = tinyWorkspace();
    const port = 20000 + Math.floor(Math.random() * 20000);
    const env = { TRAINER_TOKEN: TOKEN };
    const coordinator = startTrainer(['coordinator', '--nodes', '2', '--port', String(port), '--host', '127.0.0.1', ...tinyJobArgs(ws, ['--out', ws.out('run')])], { env });
    await waitFor(() => /coordinator listening/.test(coordinator.output()), 30_000, 'the coordinator to listen');
    const worker = startTrainer(['worker', '--coordinator', `127.0.0.1:${port}`], { env, timeoutMs: 30_000 });
    await waitFor(() => /joined the coordinator/.test(worker.output()), 30_000, 'the worker to join');
    coordinator.child.kill('SIGKILL');
    const r = await worker.result;
    expect(r.signal, 'the worker hung and was killed').toBeNull();
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/TRAINER_ERR_COORDINATOR_LOST: the coordinator closed the connection before assigning a rank/);
    expect(pidsWithMarker(worker.marker)).toEqual([]);
  });
});
