import { once } from 'node:events';
import { connect as tcpConnect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import type { TrainerError } from '@trainer/errors';
import type { Channel } from './channel.js';
import { connectChannel } from './connect-channel.js';
import { ChannelServer, type ChannelRejectInfo } from './channel-server.js';
import { encodeFrame } from './frame.js';
import { PROTOCOL_NAME, PROTOCOL_VERSION } from './handshake.js';
import type { Logger } from './logger.js';

const TOKEN = 'secret-token-0123456789';

/** A logger that records every line, to check what is logged (and that the token never is). */
function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const rec = (obj: object, msg?: string): void => void lines.push(JSON.stringify(obj) + ' ' + (msg ?? ''));
  return { lines, debug: rec, info: rec, warn: rec, error: rec };
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function server(opts: Partial<Parameters<typeof ChannelServer.listen>[0]> = {}): Promise<ChannelServer & { log: ReturnType<typeof recordingLogger> }> {
  const log = recordingLogger();
  const s = await ChannelServer.listen({ token: TOKEN, role: 'data', hello: { who: 'server' }, logger: log, ...opts });
  cleanups.push(() => s.close());
  return Object.assign(s, { log });
}

async function client(s: ChannelServer, opts: Partial<Parameters<typeof connectChannel>[0]> = {}): Promise<Channel> {
  const ch = await connectChannel({ host: '127.0.0.1', port: s.address.port, token: TOKEN, role: 'data', hello: { who: 'client' }, ...opts });
  cleanups.push(() => ch.close());
  return ch;
}

async function rejectionCode(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return (err as TrainerError).code;
  }
  return undefined;
}

/** Proves the server still serves legitimate peers after whatever the test did. */
async function expectServerStillWorks(s: ChannelServer): Promise<void> {
  const accepted = once(s, 'channel') as Promise<[Channel]>;
  const ch = await client(s);
  const [srv] = await accepted;
  const got = once(srv, 'message');
  ch.send({ ping: 1 }, Uint8Array.from([9]));
  const [header, payload] = await got;
  expect(header).toEqual({ ping: 1 });
  expect(Array.from(payload as Uint8Array)).toEqual([9]);
}

describe('channel handshake and messages', () => {
  it('exchanges hellos and messages in both directions', async () => {
    const s = await server();
    const accepted = once(s, 'channel') as Promise<[Channel]>;
    const c = await client(s);
    const [sc] = await accepted;
    expect(c.remoteHello).toEqual({ who: 'server' });
    expect(sc.remoteHello).toEqual({ who: 'client' });
    expect(sc.remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);

    const atServer = once(sc, 'message');
    c.send({ op: 'hi', n: 3 }, Uint8Array.from([1, 2, 3]));
    const [h1, p1] = await atServer;
    expect(h1).toEqual({ op: 'hi', n: 3 });
    expect(Array.from(p1 as Uint8Array)).toEqual([1, 2, 3]);

    const atClient = once(c, 'message');
    sc.send({ op: 'back' });
    const [h2, p2] = await atClient;
    expect(h2).toEqual({ op: 'back' });
    expect(p2).toBeUndefined();

    const closed = once(sc, 'close');
    c.close('bye');
    const [info] = await closed;
    expect(info).toEqual({ code: 1000, reason: 'bye' });
    expect(() => c.send({ late: true })).toThrow(expect.objectContaining({ code: 'TRAINER_ERR_CHANNEL_CLOSED' }));
  });

  it('refuses a wrong token on both sides without revealing it, and keeps serving', async () => {
    const s = await server();
    const rejected = once(s, 'reject') as Promise<[ChannelRejectInfo]>;
    const clientLog = recordingLogger();
    const err = await connectChannel({ host: '127.0.0.1', port: s.address.port, token: 'wrong-token-xyz', role: 'data', logger: clientLog }).catch((e: TrainerError) => e);
    expect((err as TrainerError).code).toBe('TRAINER_ERR_AUTH_FAILED');
    const [info] = await rejected;
    expect(info.code).toBe('TRAINER_ERR_AUTH_FAILED');
    const everything = [...s.log.lines, ...clientLog.lines, (err as Error).message, JSON.stringify(info)].join('\n');
    expect(everything).not.toContain(TOKEN);
    expect(everything).not.toContain('wrong-token-xyz');
    expect(s.log.lines.some((l) => l.includes('TRAINER_ERR_AUTH_FAILED'))).toBe(true);
    await expectServerStillWorks(s);
  });

  it('refuses a client that sends no token proof at all', async () => {
    const s = await server();
    const rejected = once(s, 'reject') as Promise<[ChannelRejectInfo]>;
    const ws = new WebSocket(`ws://127.0.0.1:${s.address.port}/`);
    cleanups.push(() => ws.terminate());
    await once(ws, 'message'); // the challenge
    ws.send(encodeFrame({ hs: 'auth', proto: PROTOCOL_NAME, v: PROTOCOL_VERSION, role: 'data', nonce: new Uint8Array(32), hello: Uint8Array.from([0x80]) }));
    const [info] = await rejected;
    expect(info.code).toBe('TRAINER_ERR_AUTH_FAILED');
    await expectServerStillWorks(s);
  });

  it('refuses an empty token before connecting', async () => {
    const s = await server();
    expect(await rejectionCode(connectChannel({ host: '127.0.0.1', port: s.address.port, token: '', role: 'data' }))).toBe('TRAINER_ERR_INVALID_ARGUMENT');
  });

  it('refuses a client of another role', async () => {
    const s = await server();
    const rejected = once(s, 'reject') as Promise<[ChannelRejectInfo]>;
    expect(await rejectionCode(client(s, { role: 'control' }))).toBe('TRAINER_ERR_ROLE_MISMATCH');
    expect((await rejected)[0].code).toBe('TRAINER_ERR_ROLE_MISMATCH');
    await expectServerStillWorks(s);
  });

  it('refuses another protocol version', async () => {
    const s = await server();
    const rejected = once(s, 'reject') as Promise<[ChannelRejectInfo]>;
    const ws = new WebSocket(`ws://127.0.0.1:${s.address.port}/`);
    cleanups.push(() => ws.terminate());
    await once(ws, 'message');
    ws.send(encodeFrame({ hs: 'auth', proto: PROTOCOL_NAME, v: PROTOCOL_VERSION + 1, role: 'data', nonce: new Uint8Array(32), hello: Uint8Array.from([0x80]), proof: new Uint8Array(32) }));
    expect((await rejected)[0].code).toBe('TRAINER_ERR_PROTOCOL_VERSION');
    await expectServerStillWorks(s);
  });

  it('authenticates the server too: a server without the token is refused by the client', async () => {
    const fake = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => new Promise<void>((r) => fake.close(() => r())));
    await once(fake, 'listening');
    fake.on('connection', (ws) => {
      ws.send(encodeFrame({ hs: 'challenge', proto: PROTOCOL_NAME, v: PROTOCOL_VERSION, nonce: new Uint8Array(32) }));
      ws.once('message', () => ws.send(encodeFrame({ hs: 'welcome', hello: Uint8Array.from([0x80]), proof: new Uint8Array(32) })));
    });
    const port = (fake.address() as { port: number }).port;
    expect(await rejectionCode(connectChannel({ host: '127.0.0.1', port, token: TOKEN, role: 'data' }))).toBe('TRAINER_ERR_AUTH_FAILED');
  });

  it('drops a silent client after the handshake timeout', async () => {
    const s = await server({ handshakeTimeoutMs: 200 });
    const rejected = once(s, 'reject') as Promise<[ChannelRejectInfo]>;
    const ws = new WebSocket(`ws://127.0.0.1:${s.address.port}/`);
    cleanups.push(() => ws.terminate());
    const t0 = Date.now();
    expect((await rejected)[0].code).toBe('TRAINER_ERR_HANDSHAKE_TIMEOUT');
    expect(Date.now() - t0).toBeLessThan(5000);
    await expectServerStillWorks(s);
  });

  it('refuses garbage: raw TCP bytes, a garbage WebSocket message, an oversized pre-auth message', async () => {
    const s = await server();
    const codes: string[] = [];
    s.on('reject', (info: ChannelRejectInfo) => codes.push(info.code));

    const sock = tcpConnect(s.address.port, '127.0.0.1');
    sock.on('error', () => {});
    sock.write(Buffer.from('\x00\x01garbage\r\n\r\n'));
    await once(sock, 'close');

    const ws1 = new WebSocket(`ws://127.0.0.1:${s.address.port}/`);
    ws1.on('error', () => {});
    await once(ws1, 'message');
    ws1.send(Buffer.from([2, 0, 0, 0, 0xc1, 0xc1, 0, 0]));
    await once(ws1, 'close');

    const ws2 = new WebSocket(`ws://127.0.0.1:${s.address.port}/`);
    ws2.on('error', () => {});
    await once(ws2, 'message');
    ws2.send(Buffer.alloc(64 * 1024)); // far above the pre-auth limit, far below maxPayloadBytes
    await once(ws2, 'close');

    await expect.poll(() => codes.length).toBe(3);
    expect(codes).toEqual(['TRAINER_ERR_FRAME_INVALID', 'TRAINER_ERR_FRAME_INVALID', 'TRAINER_ERR_FRAME_TOO_LARGE']);
    await expectServerStillWorks(s);
  });

  it('closes an established channel on a malformed frame with a coded error', async () => {
    const s = await server();
    const accepted = once(s, 'channel') as Promise<[Channel]>;
    const c = await client(s);
    const [sc] = await accepted;
    const errored = once(sc, 'error') as Promise<[TrainerError]>;
    const closed = new Promise((resolve) => sc.once('close', resolve)); // events.once would reject on 'error'
    c.sendFrame(Uint8Array.from([3, 0, 0, 0, 0xc1, 0xc1, 0xc1]));
    expect((await errored)[0].code).toBe('TRAINER_ERR_FRAME_INVALID');
    await closed;
    expect(s.log.lines.some((l) => l.includes('TRAINER_ERR_FRAME_INVALID'))).toBe(true);
    await expectServerStillWorks(s);
  });

  it('refuses an oversized payload before buffering it, and keeps serving', async () => {
    const s = await server({ limits: { maxPayloadBytes: 1024 } });
    const accepted = once(s, 'channel') as Promise<[Channel]>;
    const c = await client(s, { limits: { maxPayloadBytes: 1024 } });
    const [sc] = await accepted;
    const errored = once(sc, 'error') as Promise<[TrainerError]>;
    const got: number[] = [];
    sc.on('message', (_h: unknown, p?: Uint8Array) => got.push(p?.byteLength ?? 0));
    c.send({ ok: 1 }, new Uint8Array(1024));
    c.send({ big: 1 }, new Uint8Array(4096));
    expect((await errored)[0].code).toBe('TRAINER_ERR_FRAME_TOO_LARGE');
    expect(got).toEqual([1024]);
    await expectServerStillWorks(s);
  });

  it('reports backpressure: send() returns false above the high-water mark, then drain fires', async () => {
    const s = await server();
    const accepted = once(s, 'channel') as Promise<[Channel]>;
    const c = await client(s);
    const [sc] = await accepted;
    let received = 0;
    sc.on('message', () => void received++);
    const big = new Uint8Array(8 * 1024 * 1024);
    let sent = 0;
    while (c.send({ i: sent }, big)) sent++;
    sent++;
    expect(c.bufferedAmount).toBeGreaterThan(16 * 1024 * 1024);
    await once(c, 'drain');
    expect(c.bufferedAmount).toBeLessThanOrEqual(8 * 1024 * 1024);
    await expect.poll(() => received, { timeout: 10_000 }).toBe(sent);
  });
});
