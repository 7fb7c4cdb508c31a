import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestNetwork, netnsUnavailableReason, type TestNetwork } from './helpers/netns.js';

const reason = netnsUnavailableReason();
if (reason) console.warn(`skipping network-namespace tests: ${reason}`);

let net: TestNetwork | undefined;
afterEach(() => net?.destroy());

/** The test hosts themselves: separate addresses, reachable from each other, a link that can be cut. */
describe.skipIf(reason !== null)('test network of namespaces', () => {
  it('gives each host its own address, reachable by the others and by the gateway', async () => {
    net = createTestNetwork(2);
    const [a, b] = net.hosts;
    expect(a.ip).not.toBe(b.ip);
    const addrs = execFileSync('ip', ['-n', a.namespace, '-4', 'addr', 'show'], { encoding: 'utf8' });
    expect(addrs).toContain(a.ip);
    expect(addrs).not.toContain(b.ip);
    // A TCP connection from host a to a server on host b, by address.
    const server = net.spawn(b, process.execPath, ['-e', `require('net').createServer((s) => s.end('hello from b')).listen(7777, '${b.ip}', () => console.log('up'))`]);
    await new Promise((r) => server.stdout!.once('data', r));
    const client = net.spawn(a, process.execPath, ['-e', `require('net').connect(7777, '${b.ip}').on('data', (d) => { console.log(String(d)); process.exit(0); })`]);
    const reply = await new Promise<string>((r) => client.stdout!.once('data', (d) => r(String(d))));
    expect(reply.trim()).toBe('hello from b');
    net.setLink(b, false);
    const cut = net.spawn(a, process.execPath, ['-e', `require('net').connect({ port: 7777, host: '${b.ip}', timeout: 1500 }).on('timeout', () => { console.log('timeout'); process.exit(0); }).on('data', () => { console.log('connected'); process.exit(0); })`]);
    const after = await new Promise<string>((r) => cut.stdout!.once('data', (d) => r(String(d))));
    expect(after.trim()).toBe('timeout');
  });

  it('shapes a host\'s link to a rate (tc token bucket): 2 MB at 8 Mbit/s take at least 1.6 s', async () => {
    net = createTestNetwork(2);
    const [a, b] = net.hosts;
    net.shape(b, '8mbit');
    const server = net.spawn(b, process.execPath, ['-e', `require('net').createServer((s) => { s.end(Buffer.alloc(2e6)); }).listen(7778, '${b.ip}', () => console.log('up'))`]);
    await new Promise((r) => server.stdout!.once('data', r));
    const client = net.spawn(a, process.execPath, ['-e', `const t = Date.now(); let n = 0; require('net').connect(7778, '${b.ip}').on('data', (d) => (n += d.length)).on('end', () => { console.log(n, Date.now() - t); process.exit(0); })`]);
    const [bytes, ms] = (await new Promise<string>((r) => client.stdout!.once('data', (d) => r(String(d))))).trim().split(' ').map(Number);
    expect(bytes).toBe(2e6);
    // 16 Mbit at 8 Mbit/s: 2 s; at least 1.6 s whatever else runs (a slower machine only adds)
    expect(ms).toBeGreaterThanOrEqual(1600);
    // An added delay needs netem: where the kernel lacks it, a coded refusal that says so.
    let refusal: { code?: string; hint?: string } | undefined;
    try {
      net.shape(a, '8mbit', '1ms');
    } catch (err) {
      refusal = err as { code?: string; hint?: string };
    }
    if (refusal) expect(refusal).toMatchObject({ code: 'TRAINER_ERR_NETWORK_EMULATION', hint: expect.stringContaining('netem') });
  });
});
