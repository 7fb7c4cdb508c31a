import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { deriveDashboardKey } from './dashboard-auth.js';
import { Dashboard } from './dashboard-server.js';

const TOKEN = 'cluster-token-0123456789abcdef';

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: string }

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    }).on('error', reject).end();
  });
}

/** Reads Server-Sent Events until `until` says enough; returns the events. */
function readEvents(port: number, cookie: string, until: (events: Array<{ event: string; data: string }>) => boolean, timeoutMs = 5000): Promise<Array<{ event: string; data: string }>> {
  return new Promise((resolve, reject) => {
    const events: Array<{ event: string; data: string }> = [];
    const req = request({ host: '127.0.0.1', port, path: '/events', headers: { cookie } }, (res) => {
      let buf = '';
      res.on('data', (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) events.push({ event, data });
        }
        if (until(events)) {
          req.destroy();
          resolve(events);
        }
      });
    });
    req.on('error', (e) => (events.length ? undefined : reject(e)));
    setTimeout(() => {
      req.destroy();
      reject(new Error(`timed out with ${events.length} events`));
    }, timeoutMs).unref();
    req.end();
  });
}

const open: Dashboard[] = [];
afterEach(async () => {
  for (const d of open.splice(0)) await d.close();
});

async function started(): Promise<{ d: Dashboard; port: number; cookie: string }> {
  const d = new Dashboard({ token: TOKEN });
  open.push(d);
  const { port } = await d.listen('127.0.0.1', 0);
  return { d, port, cookie: `trainer_dashboard=${d.key}` };
}

describe('Dashboard server', () => {
  it('derives its key from the token and never shows the token', async () => {
    const { d, port } = await started();
    expect(d.key).toBe(deriveDashboardKey(TOKEN));
    expect(d.key).not.toContain(TOKEN);
    expect(deriveDashboardKey('another-token-0123456789')).not.toBe(d.key);
    const url = d.loginUrl('0.0.0.0', port);
    expect(url).toBe(`http://localhost:${port}/?key=${d.key}`);
    expect(url).not.toContain(TOKEN);
  });

  it('trades the login key for a session cookie and refuses everyone else', async () => {
    const { d, port, cookie } = await started();
    const login = await get(port, `/?key=${d.key}`);
    expect(login.status).toBe(303);
    expect(login.headers.location).toBe('/');
    expect(String(login.headers['set-cookie'])).toMatch(new RegExp(`^trainer_dashboard=${d.key}; HttpOnly; SameSite=Strict`));
    expect((await get(port, '/?key=wrong')).status).toBe(403);
    expect((await get(port, '/')).status).toBe(401);
    expect((await get(port, '/events')).status).toBe(401);
    expect((await get(port, '/api/state')).status).toBe(401);
    expect((await get(port, '/metrics')).headers['www-authenticate']).toMatch(/Bearer/);
    expect((await get(port, '/metrics', { authorization: 'Bearer nope' })).status).toBe(401);
    expect((await get(port, '/', { cookie: 'trainer_dashboard=nope' })).status).toBe(401);
    const page = await get(port, '/', { cookie });
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toMatch(/script-src 'self'/);
    expect(page.body).toContain('<script type="module" src="/assets/app.js">');
    expect(page.body).not.toContain(TOKEN);
  });

  it('serves /metrics to a Bearer key, the page modules, and 404 for the rest', async () => {
    const { d, port, cookie } = await started();
    d.publish({ kind: 'metrics', rank: 0, time: 1, record: { step: 0, loss: 3.25 } });
    const m = await get(port, '/metrics', { authorization: `Bearer ${d.key}` });
    expect(m.status).toBe(200);
    expect(m.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(m.body).toMatch(/^trainer_loss 3\.25$/m);
    for (const asset of ['app.js', 'panels.js', 'charts.js', 'format.js', 'run-state.js']) {
      const r = await get(port, `/assets/${asset}`, { cookie });
      expect(r.status, asset).toBe(200);
      expect(r.headers['content-type']).toMatch(/javascript/);
    }
    expect((await get(port, '/assets/style.css', { cookie })).status).toBe(200);
    expect((await get(port, '/assets/dashboard-server.js', { cookie })).status).toBe(404);
    expect((await get(port, '/assets/../package.json', { cookie })).status).toBe(404);
  });

  it('streams a snapshot, then every patch, to each open page', async () => {
    const { d, port, cookie } = await started();
    d.publish({ kind: 'metrics', rank: 0, time: 1, record: { step: 0, loss: 4 } });
    const reading = readEvents(port, cookie, (ev) => ev.filter((e) => e.event === 'patch').length >= 2);
    await new Promise((r) => setTimeout(r, 100));
    d.publish({ kind: 'metrics', rank: 0, time: 2, record: { step: 1, loss: 3 } });
    d.publish({ kind: 'event', event: { time: 3, kind: 'checkpoint', step: 1, title: 'checkpoint 1' } });
    const events = await reading;
    expect(events[0].event).toBe('snapshot');
    expect(JSON.parse(events[0].data).points).toHaveLength(1);
    expect(events.slice(1).map((e) => JSON.parse(e.data).kind)).toEqual(['metrics', 'event']);
  });

  it('limits the number of open streams', async () => {
    const d = new Dashboard({ token: TOKEN, maxClients: 1 });
    open.push(d);
    const { port } = await d.listen('127.0.0.1', 0);
    const cookie = `trainer_dashboard=${d.key}`;
    const first = readEvents(port, cookie, () => false, 1500).catch(() => 'closed');
    await new Promise((r) => setTimeout(r, 200));
    expect((await get(port, '/events', { cookie })).status).toBe(503);
    await first;
  });
});
