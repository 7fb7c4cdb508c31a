import { get } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { connectChannel } from './connect-channel.js';
import { ChannelServer } from './channel-server.js';

const TOKEN = 'secret-token-0123456789';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

describe('ChannelServer: plain HTTP on the channel port', () => {
  it('answers 426 without a handler', async () => {
    const s = await ChannelServer.listen({ token: TOKEN, role: 'control' });
    cleanups.push(() => s.close());
    const r = await httpGet(s.address.port, '/');
    expect(r.status).toBe(426);
  });

  it('hands plain requests to onHttpRequest while channels still connect on the same port', async () => {
    const seen: string[] = [];
    const s = await ChannelServer.listen({
      token: TOKEN, role: 'control', hello: { who: 'server' },
      onHttpRequest: (req, res) => {
        seen.push(req.url ?? '');
        res.writeHead(200, { 'content-type': 'text/plain' }).end('hello page');
      },
    });
    cleanups.push(() => s.close());
    const r = await httpGet(s.address.port, '/page?x=1');
    expect(r).toEqual({ status: 200, body: 'hello page' });
    expect(seen).toEqual(['/page?x=1']);
    const accepted = new Promise((resolve) => s.once('channel', resolve));
    const ch = await connectChannel({ host: '127.0.0.1', port: s.address.port, token: TOKEN, role: 'control', hello: { who: 'client' } });
    cleanups.push(() => ch.close());
    await accepted;
    expect(ch.remoteHello).toEqual({ who: 'server' });
    expect(seen).toEqual(['/page?x=1']); // the upgrade never reached the HTTP handler
  });
});
