import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { asFloat32, readSafetensors } from '@trainer/checkpoint';
import { connectChannel } from '@trainer/comm';
import { maxParamDiff, tinyRun } from './helpers/checkpoint-run.js';
import { killAllStarted, runTrainer, startTrainer } from './helpers/processes.js';
import { makeCertificates, opensslUnavailableReason } from './helpers/tls-certs.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

const reason = opensslUnavailableReason();
if (reason) console.warn(`skipping the TLS tests: ${reason}`);
const TOKEN = 'tls-e2e-token-0123456789abcdef';
const JOB = ['--steps', '200', '--eval-every', '100'];

/** What a plaintext WebSocket upgrade gets from a port: the status line, or nothing. */
function plainUpgrade(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'));
    let got = '';
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('error', () => {});
    s.on('close', () => resolve(got.split('\r\n')[0]));
    setTimeout(() => s.destroy(), 3000);
  });
}

/** --tls-cert/--tls-key/--tls-ca: control and data channels are mutual TLS; strangers never reach the token handshake. */
describe.skipIf(reason !== null)('TLS (wss) for the control and data channels', () => {
  it('trains over TLS exactly as in plain text, and refuses plain and foreign clients on every port', async () => {
    const ws = tinyWorkspace();
    const certs = makeCertificates(ws.dir, 'cluster');
    const foreign = makeCertificates(ws.dir, 'foreign');
    const reference = await tinyRun(ws, 'plain', 2, JOB);
    expect(reference.code, reference.output).toBe(0);

    const out = ws.out('tls');
    const run = startTrainer(['launch', '--nodes', '2', '--tls-cert', certs.cert, '--tls-key', certs.key, '--tls-ca', certs.ca, ...tinyJobArgs(ws, ['--out', out, ...JOB])], { env: { TRAINER_TOKEN: TOKEN } });
    const until = async (re: RegExp) => {
      while (!re.test(run.output())) {
        if (run.child.exitCode !== null) throw new Error(run.output().slice(-3000));
        await new Promise((r) => setTimeout(r, 20));
      }
      return re.exec(run.output())!;
    };
    const control = Number((await until(/"port":(\d+),"world":2,"msg":"coordinator listening"/))[1]);
    await until(/step +\d+\/200/);
    const dataPorts = [...run.output().matchAll(/"data":"127\.0\.0\.1:(\d+)","msg":"joined the coordinator/g)].map((m) => Number(m[1]));
    expect(dataPorts).toHaveLength(2);
    // Plain WebSocket: no upgrade on any port (they speak TLS only; same-machine peers too).
    for (const port of [control, ...dataPorts]) expect(await plainUpgrade(port), `port ${port}`).not.toMatch(/^HTTP\/1\.1 101/);
    // The right token but a certificate from another CA: refused before the token handshake.
    const tlsOf = (c: { cert: string; key: string; ca: string }) => ({ cert: readFileSync(c.cert), key: readFileSync(c.key), ca: readFileSync(c.ca) });
    await expect(connectChannel({ host: '127.0.0.1', port: control, token: TOKEN, role: 'control', tls: { ...tlsOf(foreign), ca: tlsOf(certs).ca }, timeoutMs: 3000 })).rejects.toBeDefined();
    await expect(connectChannel({ host: '127.0.0.1', port: dataPorts[0], token: TOKEN, role: 'data', stream: true, tls: { ...tlsOf(foreign), ca: tlsOf(certs).ca }, timeoutMs: 3000 })).rejects.toBeDefined();
    const r = await run.result;
    expect(r.code, run.output().slice(-3000)).toBe(0);
    expect(run.output()).toMatch(/TLS handshake failed/);
    const model = await readSafetensors(join(out, 'model', 'model.safetensors'));
    expect(maxParamDiff(reference, { ...reference, params: new Map([...model.tensors].map(([n, t]) => [n, asFloat32(t)])) })).toBe(0);
  }, 180_000);

  it('refuses incomplete or mismatched TLS files before starting anything', async () => {
    const ws = tinyWorkspace();
    const a = makeCertificates(ws.dir, 'a');
    const b = makeCertificates(ws.dir, 'b');
    const partial = await runTrainer(['launch', '--nodes', '1', '--tls-cert', a.cert, ...tinyJobArgs(ws, ['--out', ws.out('x')])]);
    expect(partial.code).toBe(2);
    expect(partial.stderr).toContain('TRAINER_ERR_TLS_FILES: TLS needs a certificate, its key and the CA; missing: --tls-key, --tls-ca');
    const mismatched = await runTrainer(['launch', '--nodes', '1', '--tls-cert', a.cert, '--tls-key', b.key, '--tls-ca', a.ca, ...tinyJobArgs(ws, ['--out', ws.out('y')])]);
    expect(mismatched.code).toBe(2);
    expect(mismatched.stderr).toContain(`TRAINER_ERR_TLS_FILES: invalid TLS files: the key ${b.key} does not belong to the certificate ${a.cert}`);
  }, 60_000);
});
