import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { TrainerError } from '@trainer/errors';
import { deriveDashboardKey, isAuthorized, keyMatches, sessionCookie } from './dashboard-auth.js';
import { pageHtml, messagePage } from './page.js';
import { PROMETHEUS_CONTENT_TYPE, renderPrometheus } from './prometheus.js';
import { DASHBOARD_CSS } from './view/panels.js';
import { RunState, type RunPatch } from './view/run-state.js';

/**
 * The live view of a run, as an HTTP request handler: the coordinator mounts it on its control
 * port (non-upgrade requests) or on a port of its own (`listen`).
 *
 *   GET /?key=K        trades the login link's key for a session cookie, redirects to /
 *   GET /              the page (server-rendered, then kept live by /assets/app.js)
 *   GET /events        Server-Sent Events: `snapshot` (the RunState) then one `patch` per update
 *   GET /api/state     the RunState as JSON
 *   GET /metrics       Prometheus text format (cookie or `Authorization: Bearer K`)
 *   GET /assets/*      the page's script modules and stylesheet (no CDN: all served from here)
 *
 * Everything but the login needs the key. Patches go to `publish`; every open page gets them.
 */
export interface DashboardOptions {
  /** The cluster token; the dashboard key is derived from it and the token is never shown. */
  token: string;
  /** Open /events streams at most (later ones get 503). */
  maxClients?: number;
  /** An SSE comment is sent this often so proxies keep idle streams open. */
  keepAliveMs?: number;
}

export const DEFAULT_MAX_DASHBOARD_CLIENTS = 32;
export const DEFAULT_KEEPALIVE_MS = 15_000;

/** Script modules of the page (browser-safe files of src/view), by the name the page asks for. */
const ASSETS = ['app.js', 'panels.js', 'charts.js', 'format.js', 'run-state.js'];

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

export class Dashboard {
  readonly key: string;
  readonly state = new RunState();
  private readonly clients = new Set<ServerResponse>();
  private readonly maxClients: number;
  private readonly keepAlive: NodeJS.Timeout;
  private own: Server | undefined;
  private assetCache = new Map<string, Buffer>();

  constructor(opts: DashboardOptions) {
    this.key = deriveDashboardKey(opts.token);
    this.maxClients = opts.maxClients ?? DEFAULT_MAX_DASHBOARD_CLIENTS;
    this.keepAlive = setInterval(() => this.broadcastRaw(': keep-alive\n\n'), opts.keepAliveMs ?? DEFAULT_KEEPALIVE_MS);
    this.keepAlive.unref();
  }

  /** Applies an update and sends it to every open page. */
  publish(patch: RunPatch): void {
    this.state.apply(patch);
    this.broadcastRaw(`event: patch\ndata: ${JSON.stringify(patch)}\n\n`);
  }

  /** The link to print: the key opens this dashboard only (never the cluster token). */
  loginUrl(host: string, port: number): string {
    const h = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
    return `http://${h}:${port}/?key=${this.key}`;
  }

  /** Serves the dashboard on a port of its own (--dashboard-port). */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const server = createServer(this.handle);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new TrainerError('TRAINER_ERR_DASHBOARD_LISTEN', `the dashboard cannot listen on ${host}:${port}: ${err.message}`, {
        hint: 'pick another --dashboard-port (0: any free port), or omit it to serve the dashboard on the coordinator port', cause: err,
      })));
      server.listen(port, host, () => resolve());
    });
    this.own = server;
    return { host, port: (server.address() as AddressInfo).port };
  }

  async close(): Promise<void> {
    clearInterval(this.keepAlive);
    for (const res of this.clients) res.end();
    this.clients.clear();
    if (this.own) {
      const s = this.own;
      this.own = undefined;
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      });
    }
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    try {
      this.route(req, res);
    } catch (err) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
      res.end(`dashboard error: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  };

  private route(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://dashboard.invalid');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS }).end('only GET\n');
      return;
    }
    const presented = url.searchParams.get('key');
    if (url.pathname === '/' && presented !== null) {
      if (!keyMatches(presented, this.key)) return this.send(res, 403, 'text/html; charset=utf-8', messagePage('Wrong key', 'This link does not open this run\'s dashboard. Use the login link the coordinator printed when it started.'));
      res.writeHead(303, { location: '/', 'set-cookie': sessionCookie(this.key), ...SECURITY_HEADERS }).end();
      return;
    }
    if (!isAuthorized(req, this.key)) {
      if (url.pathname === '/metrics' || url.pathname.startsWith('/api/')) {
        res.writeHead(401, { 'www-authenticate': 'Bearer realm="trainer"', 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS }).end('dashboard key required (Authorization: Bearer KEY)\n');
        return;
      }
      return this.send(res, 401, 'text/html; charset=utf-8', messagePage('Login needed', 'Open the login link the coordinator printed when it started (it carries this run\'s dashboard key).'));
    }
    switch (url.pathname) {
      case '/':
        return this.send(res, 200, 'text/html; charset=utf-8', pageHtml(this.state, Date.now()));
      case '/events':
        return this.openStream(req, res);
      case '/api/state':
        return this.send(res, 200, 'application/json', JSON.stringify(this.state.toJSON()));
      case '/metrics':
        return this.send(res, 200, PROMETHEUS_CONTENT_TYPE, renderPrometheus(this.state));
      case '/favicon.ico':
        res.writeHead(204, SECURITY_HEADERS).end();
        return;
      case '/assets/style.css':
        return this.send(res, 200, 'text/css; charset=utf-8', DASHBOARD_CSS);
    }
    const asset = /^\/assets\/([a-z-]+\.js)$/.exec(url.pathname)?.[1];
    if (asset && ASSETS.includes(asset)) return this.send(res, 200, 'text/javascript; charset=utf-8', this.readAsset(asset));
    this.send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
  }

  private send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...SECURITY_HEADERS }).end(body);
  }

  private openStream(req: IncomingMessage, res: ServerResponse): void {
    if (this.clients.size >= this.maxClients) {
      res.writeHead(503, { 'retry-after': '10', 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS }).end(`at most ${this.maxClients} open dashboards\n`);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive', ...SECURITY_HEADERS });
    res.write(`retry: 2000\nevent: snapshot\ndata: ${JSON.stringify(this.state.toJSON())}\n\n`);
    this.clients.add(res);
    req.socket.setNoDelay(true);
    const drop = () => this.clients.delete(res);
    req.on('close', drop);
    res.on('error', drop);
  }

  private broadcastRaw(text: string): void {
    for (const res of this.clients) res.write(text);
  }

  /** The compiled browser modules: next to this file in dist, or in dist when run from src (tests). */
  private readAsset(name: string): Buffer {
    let data = this.assetCache.get(name);
    if (!data) {
      const here = new URL(`./view/${name}`, import.meta.url);
      const built = new URL(`../dist/view/${name}`, import.meta.url);
      data = readFileSync(fileURLToPath(existsSync(fileURLToPath(here)) ? here : built));
      this.assetCache.set(name, data);
    }
    return data;
  }
}
