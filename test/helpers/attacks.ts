import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { connectChannel } from '@trainer/comm';

/**
 * What a stranger on the network can throw at a trainer port: raw garbage, a WebSocket upgrade
 * followed by malformed, truncated or enormous frames, a handshake with a wrong token, idle
 * connections. Each function resolves when the server has closed the connection (or after
 * `ms`), with how it ended.
 */
const UPGRADE = 'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

/** A masked binary WebSocket frame (clients must mask); `claimed` overrides the length field. */
export function wsFrame(payload: Buffer, claimed?: bigint): Buffer {
  const len = claimed ?? BigInt(payload.length);
  const head = len < 126n ? Buffer.from([0x82, 0x80 | Number(len)]) : len < 65536n ? Buffer.from([0x82, 0x80 | 126, Number(len >> 8n), Number(len & 0xffn)]) : Buffer.alloc(10);
  if (len >= 65536n) {
    head[0] = 0x82;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(len, 2);
  }
  const mask = randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
  return Buffer.concat([head, mask, body]);
}

/** Our frame inside: [u32 LE header length][header bytes]. */
export function innerFrame(headerLength: number, header: Buffer): Buffer {
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32LE(headerLength >>> 0, 0);
  return Buffer.concat([prefix, header]);
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
}

/** Sends `chunks` (after an upgrade when `upgrade`), then waits for the server to close (bounded). */
async function attack(port: number, chunks: Buffer[], opts: { upgrade: boolean; end?: boolean; ms?: number }): Promise<string> {
  const s = await open(port);
  let got = '';
  s.on('data', (d) => (got += d.toString('latin1')));
  s.on('error', () => {});
  const closed = new Promise<string>((resolve) => s.on('close', () => resolve('closed by the server')));
  if (opts.upgrade) {
    s.write(UPGRADE);
    await new Promise((r) => setTimeout(r, 100));
    if (!got.startsWith('HTTP/1.1 101')) {
      s.destroy();
      return `no upgrade: ${got.split('\r\n')[0]}`;
    }
  }
  for (const c of chunks) s.write(c);
  if (opts.end) s.end();
  const outcome = await Promise.race([closed, new Promise<string>((r) => setTimeout(() => r('still open'), opts.ms ?? 3000))]);
  s.destroy();
  return outcome;
}

export type Attack = { name: string; run(port: number): Promise<string> };

export const ATTACKS: Attack[] = [
  { name: 'raw garbage', run: (p) => attack(p, [randomBytes(2048)], { upgrade: false }) },
  { name: 'garbage after the upgrade', run: (p) => attack(p, [randomBytes(512)], { upgrade: true }) },
  { name: 'a 2^40-byte WebSocket length', run: (p) => attack(p, [wsFrame(randomBytes(16), 1n << 40n)], { upgrade: true }) },
  { name: 'a 1 MiB frame before authenticating', run: (p) => attack(p, [wsFrame(randomBytes(1 << 20))], { upgrade: true }) },
  { name: 'a truncated frame', run: (p) => attack(p, [wsFrame(randomBytes(1000)).subarray(0, 40)], { upgrade: true, end: true }) },
  { name: 'a header length of 4 GiB', run: (p) => attack(p, [wsFrame(innerFrame(0xfffffff0, randomBytes(32)))], { upgrade: true }) },
  { name: 'a header that is not msgpack', run: (p) => attack(p, [wsFrame(innerFrame(7, Buffer.from('garbage')))], { upgrade: true }) },
  { name: 'a text frame', run: (p) => attack(p, [Buffer.concat([Buffer.from([0x81, 0x84, 0, 0, 0, 0]), Buffer.from('hi!!')])], { upgrade: true }) },
];

/** The handshake with a wrong token: refused (the error code says how). */
export async function wrongToken(port: number, role: 'control' | 'data'): Promise<string> {
  try {
    const ch = await connectChannel({ host: '127.0.0.1', port, token: 'not-the-cluster-token-at-all', role, hello: { rank: 0, world: 2, kind: 'worker' }, timeoutMs: 3000, ...(role === 'data' ? { stream: true } : {}) });
    ch.close();
    return 'ADMITTED';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

/** Connections that say nothing: the server must drop them at its handshake timeout, not keep them. */
export async function idle(port: number, count: number): Promise<Socket[]> {
  return Promise.all(Array.from({ length: count }, () => open(port)));
}
