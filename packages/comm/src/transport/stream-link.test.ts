import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { TrainerError } from '@trainer/errors';
import type { Channel } from './channel.js';
import { ChannelServer, type ChannelRejectInfo } from './channel-server.js';
import { connectChannel } from './connect-channel.js';

/** Stream mode: the data-channel transport (StreamLink + DirectReader), over TCP and a Unix socket. */
const TOKEN = 'stream-token-0123456789';
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function pair(opts: { unix?: boolean; limits?: { maxPayloadBytes: number } } = {}): Promise<{ server: ChannelServer; client: Channel; accepted: Channel }> {
  const server = await ChannelServer.listen({ token: TOKEN, role: 'data', stream: true, limits: opts.limits });
  cleanups.push(() => server.close());
  const path = `/tmp/trainer-comm-test-${process.pid}-${server.address.port}.sock`;
  if (opts.unix) await server.listenUnix(path);
  const acceptedP = once(server, 'channel') as Promise<[Channel]>;
  const client = await connectChannel({ host: '127.0.0.1', port: server.address.port, token: TOKEN, role: 'data', stream: true, socketPath: opts.unix ? path : undefined, limits: opts.limits });
  cleanups.push(() => client.close());
  const [accepted] = await acceptedP;
  return { server, client, accepted };
}

function pattern(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed) & 255);
}

for (const unix of [false, true]) {
  describe(`stream channels over ${unix ? 'a Unix socket' : 'TCP'}`, () => {
    it('carries messages of every size both ways, in order, payloads intact', async () => {
      const { client, accepted } = await pair({ unix });
      expect(client.isStream && accepted.isStream).toBe(true);
      const sizes = [0, 1, 3, 125, 126, 65535, 65536, 70_000, 3 * 1024 * 1024 + 5];
      for (const [from, to] of [[client, accepted], [accepted, client]] as const) {
        const got: Array<[Record<string, unknown>, Uint8Array | undefined]> = [];
        to.on('message', (h: Record<string, unknown>, p?: Uint8Array) => got.push([h, p ? Uint8Array.from(p) : undefined]));
        sizes.forEach((n, i) => from.send({ i, n }, n ? pattern(n, i) : undefined));
        await expect.poll(() => got.length, { timeout: 10_000 }).toBe(sizes.length);
        got.forEach(([h, p], i) => {
          expect(h).toEqual({ i, n: sizes[i] });
          if (sizes[i] === 0) expect(p).toBeUndefined();
          else expect(Buffer.from(p!).equals(Buffer.from(pattern(sizes[i], i)))).toBe(true);
        });
        to.removeAllListeners('message');
      }
    });

    it('writes payloads where the payload sink says, and allocates otherwise', async () => {
      const { client, accepted } = await pair({ unix });
      const dest = new Uint8Array(1 << 20);
      client.setPayloadSink((h, length) => (h.into === true && length === dest.byteLength ? dest : undefined));
      const got: Array<Uint8Array | undefined> = [];
      client.on('message', (_h: unknown, p?: Uint8Array) => got.push(p));
      const data = pattern(1 << 20, 9);
      accepted.send({ into: true }, data);
      accepted.send({ into: false }, data);
      await expect.poll(() => got.length).toBe(2);
      expect(got[0]).toBe(dest); // received in place
      expect(Buffer.from(dest).equals(Buffer.from(data))).toBe(true);
      expect(got[1]).not.toBe(dest);
      expect(Buffer.from(got[1]!).equals(Buffer.from(data))).toBe(true);
    });

    it('refuses an oversized payload with a coded error', async () => {
      const { client, accepted } = await pair({ unix, limits: { maxPayloadBytes: 1000 } });
      const errored = once(client, 'error') as Promise<[TrainerError]>;
      accepted.send({ big: true }, new Uint8Array(1001));
      expect((await errored)[0].code).toBe('TRAINER_ERR_FRAME_TOO_LARGE');
    });
  });
}

describe('stream endpoints refuse what they do not speak', () => {
  it('a ws-mode client is refused by a stream server (and the server keeps serving)', async () => {
    const { server } = await pair();
    const rejected = once(server, 'reject') as Promise<[ChannelRejectInfo]>;
    await expect(connectChannel({ host: '127.0.0.1', port: server.address.port, token: TOKEN, role: 'data' })).rejects.toMatchObject({ code: 'TRAINER_ERR_PROTOCOL_VERSION' });
    expect((await rejected)[0].code).toBe('TRAINER_ERR_PROTOCOL_VERSION');
    const again = await connectChannel({ host: '127.0.0.1', port: server.address.port, token: TOKEN, role: 'data', stream: true });
    expect(again.isOpen).toBe(true);
    again.close();
  });

  it('a text frame or a non-zero mask key closes the channel as invalid', async () => {
    // [0x81 text, masked, length 0, key 0] and [0x82 binary, masked, length 4, key 1 2 3 4, 4 bytes]
    for (const bad of [[0x81, 0x80, 0, 0, 0, 0], [0x82, 0x84, 1, 2, 3, 4, 0, 0, 0, 0]]) {
      const { client, accepted } = await pair();
      const errored = once(accepted, 'error') as Promise<[TrainerError]>;
      // the client's own socket, under its StreamLink: only a hand-made frame can be malformed
      const socket = (client as unknown as { link: { socket: import('node:net').Socket } }).link.socket;
      socket.write(Buffer.from(bad));
      expect((await errored)[0].code).toBe('TRAINER_ERR_FRAME_INVALID');
    }
  });
});
