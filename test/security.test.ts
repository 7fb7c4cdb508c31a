import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { asFloat32, readSafetensors } from '@trainer/checkpoint';
import { connectChannel } from '@trainer/comm';
import { ATTACKS, idle, wrongToken } from './helpers/attacks.js';
import { maxParamDiff, tinyRun } from './helpers/checkpoint-run.js';
import { killAllStarted, startTrainer } from './helpers/processes.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

const TOKEN = 'security-test-token-0123456789abcdef';
const JOB = ['--steps', '300', '--eval-every', '100'];

/**
 * Strangers at the doors of a live run: every port (the coordinator's control port and each
 * worker's data port) gets garbage, malformed, truncated and enormous frames, a handshake with a
 * wrong token and idle connections, and the coordinator gets authenticated connections with
 * hellos that fail its schemas. Each is refused and logged; the run finishes exactly as an
 * undisturbed one.
 */
describe('a live run under attack', () => {
  it('refuses garbage, truncated and huge frames, wrong tokens and invalid hellos on every port, and trains exactly as undisturbed', async () => {
    const ws = tinyWorkspace();
    // The undisturbed reference runs beside the attacked run (its own folder), mostly while rank 0 there pauses.
    const undisturbed = tinyRun(ws, 'reference', 2, JOB);

    const out = ws.out('attacked');
    // Rank 0 pauses 20 s at step 150 (its event loop free, its sockets served), so the short run is
    // still in progress, wherever the machine's speed puts it, while the attacks arrive.
    const run = startTrainer(['launch', '--nodes', '2', ...tinyJobArgs(ws, ['--out', out, ...JOB])], { env: { TRAINER_TOKEN: TOKEN, TRAINER_FAULT: 'rank=0,step=150,kind=pause,ms=20000' } });
    const until = async (re: RegExp) => {
      while (!re.test(run.output())) {
        if (run.child.exitCode !== null) throw new Error(run.output().slice(-3000));
        await new Promise((r) => setTimeout(r, 20));
      }
      return re.exec(run.output())!;
    };
    const control = Number((await until(/"port":(\d+),"world":2,"msg":"coordinator listening"/))[1]);
    await until(/injecting fault pause at rank 0, step 150/);
    const dataPorts = [...run.output().matchAll(/"data":"127\.0\.0\.1:(\d+)","msg":"joined the coordinator/g)].map((m) => Number(m[1]));
    expect(dataPorts).toHaveLength(2);

    const idlers = await idle(control, 10);
    const outcomes: Record<string, string> = {};
    await Promise.all([control, ...dataPorts].flatMap((port, i) => [
      ...ATTACKS.map(async (a) => (outcomes[`${i ? `data ${i - 1}` : 'control'}: ${a.name}`] = await a.run(port))),
      (async () => (outcomes[`${i ? `data ${i - 1}` : 'control'}: wrong token`] = await wrongToken(port, i ? 'data' : 'control')))(),
    ]));
    // Holders of the token whose hellos fail the coordinator's schemas: dropped, never obeyed.
    const hellos = {
      'host name of 300 characters': { kind: 'worker', protocol: 1, host: 'h'.repeat(300), pid: 1, localRank: 0, dataHost: 'x', dataPort: 1, device: 'cpu' },
      'heartbeat of no worker': { kind: 'heartbeat', protocol: 1, rank: 7, pid: 4242 },
      'agent where none is expected': { kind: 'agent', protocol: 1, host: 'h', pid: 1, slots: 1 },
      'a third worker': { kind: 'worker', protocol: 1, host: 'h', pid: 99999, localRank: 0, dataHost: '127.0.0.1', dataPort: 1, device: 'cpu' },
    };
    for (const [name, hello] of Object.entries(hellos)) {
      const ch = await connectChannel({ host: '127.0.0.1', port: control, token: TOKEN, role: 'control', hello });
      outcomes[`control: ${name}`] = await new Promise<string>((resolve) => {
        ch.on('close', () => resolve('closed by the server'));
        setTimeout(() => resolve('still open'), 3000);
      });
    }
    await expect(connectChannel({ host: '127.0.0.1', port: control, token: TOKEN, role: 'control', hello: { pad: 'x'.repeat(8000) } }))
      .rejects.toMatchObject({ code: expect.stringMatching(/TRAINER_ERR_(FRAME_TOO_LARGE|CONNECT_FAILED|CHANNEL_CLOSED)/) });
    const stillTraining = !/step 300\/300/.test(run.output());
    for (const s of idlers) s.destroy();

    const [r, reference] = await Promise.all([run.result, undisturbed]);
    expect(reference.code, reference.output).toBe(0);
    expect(r.code, run.output().slice(-3000)).toBe(0);
    expect(stillTraining).toBe(true); // the attacks hit a run in progress
    for (const [name, outcome] of Object.entries(outcomes)) {
      if (name.endsWith('wrong token')) expect(outcome, name).toMatch(/TRAINER_ERR_(AUTH_FAILED|CONNECT_FAILED)/);
      else expect(outcome, name).toBe('closed by the server');
    }
    const output = run.output();
    expect(output.match(/refused a control connection/g)?.length ?? 0).toBeGreaterThanOrEqual(ATTACKS.length + 1);
    expect(output.match(/"worker":"rank \d","level":40[^\n]*"msg":"connection refused"/g)?.length ?? 0).toBeGreaterThanOrEqual(2 * (ATTACKS.length + 1));
    expect(output).toMatch(/dropped a control connection with an invalid hello/);
    expect(output).toMatch(/dropped a heartbeat connection that matches no worker/);
    expect(output).toMatch(/refused an agent: this coordinator was not started with agents/);
    expect(output).toMatch(/refused a worker: the job already has all its workers/);
    expect(output).not.toContain(TOKEN);
    // Unaffected: the same losses and the same parameters, bit for bit.
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary.losses).toEqual(reference.summary.losses);
    const model = await readSafetensors(join(out, 'model', 'model.safetensors'));
    expect(maxParamDiff(reference, { ...reference, params: new Map([...model.tensors].map(([n, t]) => [n, asFloat32(t)])) })).toBe(0);
  }, 180_000);
});
