import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { DataPlane } from '../collectives/data-plane.js';
import { ChannelServer } from './channel-server.js';
import { connectChannel } from './connect-channel.js';
import type { TlsOptions } from './tls.js';

const TOKEN = 'tls-test-token-0123456789';

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

/** A CA and one certificate it signed (ed25519), in a fresh folder. */
function makeCa(dir: string, name: string): TlsOptions {
  openssl('req', '-x509', '-newkey', 'ed25519', '-nodes', '-keyout', join(dir, `${name}-ca.key`), '-out', join(dir, `${name}-ca.pem`), '-days', '1', '-subj', `/CN=${name}-ca`);
  openssl('req', '-newkey', 'ed25519', '-nodes', '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.csr`), '-subj', `/CN=${name}`);
  openssl('x509', '-req', '-in', join(dir, `${name}.csr`), '-CA', join(dir, `${name}-ca.pem`), '-CAkey', join(dir, `${name}-ca.key`), '-CAcreateserial', '-out', join(dir, `${name}.pem`), '-days', '1');
  return { cert: readFileSync(join(dir, `${name}.pem`)), key: readFileSync(join(dir, `${name}.key`)), ca: readFileSync(join(dir, `${name}-ca.pem`)) };
}

let hasOpenssl = true;
try {
  execFileSync('openssl', ['version'], { stdio: 'ignore' });
} catch {
  hasOpenssl = false;
  console.warn('skipping TLS channel tests: no openssl to make certificates');
}

const closers: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

describe.skipIf(!hasOpenssl)('TLS channels (wss, mutual)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'comm-tls-'));
  const cluster = hasOpenssl ? makeCa(dir, 'cluster') : undefined!;
  const stranger = hasOpenssl ? makeCa(dir, 'stranger') : undefined!;

  it('carries control messages between peers of one CA and refuses everyone else before the token handshake', async () => {
    const server = await ChannelServer.listen({ token: TOKEN, role: 'control', tls: cluster });
    closers.push(() => server.close());
    const rejects: { code: string; reason: string }[] = [];
    server.on('reject', (r: { code: string; reason: string }) => rejects.push(r));
    const accepted = new Promise<Record<string, unknown>>((resolve) => server.once('channel', (ch) => ch.once('message', (h: Record<string, unknown>) => resolve(h))));
    const client = await connectChannel({ host: '127.0.0.1', port: server.address.port, token: TOKEN, role: 'control', tls: cluster });
    closers.push(() => client.close());
    client.send({ type: 'hello over tls' });
    expect(await accepted).toEqual({ type: 'hello over tls' });

    // A certificate from another CA, no certificate, and plain ws: all refused, none becomes a channel.
    await expect(connectChannel({ host: '127.0.0.1', port: server.address.port, token: TOKEN, role: 'control', tls: stranger, timeoutMs: 3000 })).rejects.toMatchObject({ code: 'TRAINER_ERR_CONNECT_FAILED' });
    await expect(connectChannel({ host: '127.0.0.1', port: server.address.port, token: TOKEN, role: 'control', tls: { ...cluster, cert: '', key: '' } as TlsOptions, timeoutMs: 3000 })).rejects.toBeDefined();
    await expect(connectChannel({ host: '127.0.0.1', port: server.address.port, token: TOKEN, role: 'control', timeoutMs: 3000 })).rejects.toBeDefined();
    await new Promise<void>((resolve) => {
      const ws = new WebSocket(`wss://127.0.0.1:${server.address.port}/`, { rejectUnauthorized: false });
      ws.on('error', () => resolve());
      ws.on('open', () => resolve());
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(rejects.length).toBeGreaterThanOrEqual(3);
    expect(rejects.every((r) => r.code === 'TRAINER_ERR_AUTH_FAILED' || r.code === 'TRAINER_ERR_FRAME_INVALID')).toBe(true);
    expect(rejects.some((r) => /TLS handshake failed/.test(r.reason))).toBe(true);
    // And a client of the cluster does not accept a server with a stranger's certificate.
    const fake = await ChannelServer.listen({ token: TOKEN, role: 'control', tls: { ...stranger, ca: cluster.ca } });
    closers.push(() => fake.close());
    await expect(connectChannel({ host: '127.0.0.1', port: fake.address.port, token: TOKEN, role: 'control', tls: cluster, timeoutMs: 3000 })).rejects.toMatchObject({ code: 'TRAINER_ERR_CONNECT_FAILED' });
  });

  it('runs the data plane (stream mode, direct reads) over TLS, also between peers on one machine', async () => {
    const planes = await Promise.all([0, 1].map(() => DataPlane.listen({ token: TOKEN, tls: cluster })));
    closers.push(...planes.map((p) => () => p.close()));
    const peers = planes.map((p, rank) => ({ rank, host: p.address.host, port: p.address.port }));
    const comms = await Promise.all(planes.map((p, rank) => p.connect({ rank, world: 2, peers })));
    closers.push(...comms.map((c) => () => c.close()));
    const bufs = [0, 1].map((r) => Float32Array.from({ length: 300_000 }, (_, i) => (i % 7) + r));
    await Promise.all(comms.map((c, r) => c.worldGroup.allReduce(bufs[r])));
    for (const b of bufs) expect(b[6]).toBe(6 + 6 + 1);
    expect(bufs[0]).toEqual(bufs[1]);
    // A plain connection to a TLS data port is refused.
    const plain = await DataPlane.listen({ token: TOKEN });
    closers.push(() => plain.close());
    const rejected = new Promise((resolve) => planes[0].once('reject', resolve));
    await expect(plain.connect({ rank: 1, world: 2, peers: [peers[0], { rank: 1, host: plain.address.host, port: plain.address.port }], timeoutMs: 1500 })).rejects.toBeDefined();
    await rejected;
  });
});
