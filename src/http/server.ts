/**
 * The HTTP face (node:http, no framework):
 *   GET  /                 live status page (status-page.ts), refreshing from /api/status
 *   GET  /api/status       JSON snapshot (status.ts)
 *   GET  /api/history[?seconds=N]  the last minutes, sampled every second (history.ts), for the charts
 *   GET  /assets/uplot.js, /assets/uplot.css  the charting library (uPlot), served from node_modules
 *   GET  /metrics          Prometheus text (metrics.ts)
 *   GET  /primary          200 when a primary is up, else 503 (Patroni-style)
 *   GET  /replica[?lag=N]  200 when a standby is up (and lags at most N bytes; kB/MB/GB allowed)
 *   GET  /health           200 when at least one backend is up, else 503 — never behind auth
 *   POST /api/nodes/:id/{attach|detach|promote}  admin actions, only when http_auth is set
 * With auth ('user:password', pgmaitre's http_auth) every path but /health needs Basic auth.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { AdminContext } from '../admin/types';
import { createMetricsRegistry } from './metrics';
import { healthCheck, parseLag, statusSnapshot } from './status';
import { STATUS_PAGE_HTML } from './status-page';
import { HistorySampler } from './history';
import { listenOn } from '../util/listen';

/** Options of createHttpServer. */
export interface HttpServerOptions {
  /** http_port; 0 picks a free port. */
  readonly port: number;
  /** http_listen_addresses: comma-separated, '*' for all. */
  readonly listenAddresses: string;
  /** http_auth 'user:password'; '' or undefined = no auth (and no admin actions). A function is read per request (reload). */
  readonly auth?: string | (() => string | undefined);
  /** Milliseconds between history samples (default 1000). */
  readonly historyIntervalMs?: number;
}

/**
 * uPlot (a small, fast, MIT-licensed time-series chart library) as installed in node_modules:
 * the page loads it from pgmaitre itself, so it works offline and behind firewalls.
 */
const ASSETS: Readonly<Record<string, { file: string; type: string }>> = {
  '/assets/uplot.js': { file: 'uplot/dist/uPlot.iife.min.js', type: 'text/javascript; charset=utf-8' },
  '/assets/uplot.css': { file: 'uplot/dist/uPlot.min.css', type: 'text/css; charset=utf-8' },
};
const assetCache = new Map<string, Buffer>();

function asset(p: string): { body: Buffer; type: string } | undefined {
  const a = ASSETS[p];
  if (a === undefined) return undefined;
  let body = assetCache.get(p);
  if (body === undefined) assetCache.set(p, (body = fs.readFileSync(require.resolve(a.file))));
  return { body, type: a.type };
}

/** An HTTP server. */
export interface HttpServer {
  listen(): Promise<number>;
  close(): Promise<void>;
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function send(res: http.ServerResponse, code: number, body: string | object, type = 'application/json; charset=utf-8'): void {
  const text = typeof body === 'string' ? body : `${JSON.stringify(body)}\n`;
  res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Builds the HTTP server over an AdminContext. */
export function createHttpServer(ctx: AdminContext, opts: HttpServerOptions): HttpServer {
  const registry = createMetricsRegistry(ctx);
  const history = new HistorySampler(ctx, opts.historyIntervalMs !== undefined ? { intervalMs: opts.historyIntervalMs } : {});
  const authValue = (): string => (typeof opts.auth === 'function' ? opts.auth() : opts.auth) ?? '';

  const authorized = (req: http.IncomingMessage): boolean => {
    const want = authValue();
    if (want === '') return true;
    const m = /^Basic\s+(.+)$/i.exec(req.headers.authorization ?? '');
    return m !== null && sameText(Buffer.from(m[1] ?? '', 'base64').toString('utf8'), want);
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const p = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    await ctx.refresh?.(); // worker_processes > 1: the whole instance's figures
    if (p === '/health' && (method === 'GET' || method === 'HEAD')) {
      const [code, body] = healthCheck(ctx, 'health');
      send(res, code, body);
      return;
    }
    if (!authorized(req)) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="pgmaitre"', 'content-type': 'text/plain' });
      res.end('authentication required\n');
      return;
    }
    const action = /^\/api\/nodes\/(\d+)\/(attach|detach|promote)$/.exec(p);
    if (action !== null) {
      if (method !== 'POST') { send(res, 405, { error: 'use POST' }); return; }
      if (authValue() === '') { send(res, 403, { error: 'admin actions over HTTP need http_auth to be set' }); return; }
      const id = Number(action[1]);
      if (!ctx.nodes().some((n) => n.id === id)) { send(res, 404, { error: `node ${id} does not exist` }); return; }
      try {
        const message = action[2] === 'attach' ? await ctx.actions.attachNode(id)
          : action[2] === 'detach' ? await ctx.actions.detachNode(id) : await ctx.actions.promoteNode(id);
        send(res, 200, { ok: true, message });
      } catch (err) {
        send(res, 409, { ok: false, error: err instanceof Error ? err.message : String(err) });
      }
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') { send(res, 405, { error: 'method not allowed' }); return; }
    switch (p) {
      case '/': send(res, 200, STATUS_PAGE_HTML, 'text/html; charset=utf-8'); return;
      case '/api/status': send(res, 200, { ...statusSnapshot(ctx), actionsEnabled: authValue() !== '' }); return;
      case '/api/history': {
        const seconds = Number(url.searchParams.get('seconds') ?? '');
        send(res, 200, history.snapshot(Number.isFinite(seconds) && seconds > 0 ? seconds : undefined));
        return;
      }
      case '/metrics': send(res, 200, await registry.metrics(), registry.contentType); return;
      case '/primary':
      case '/master':
      case '/read-write': { const [c, b] = healthCheck(ctx, 'primary'); send(res, c, b); return; }
      case '/replica':
      case '/read-only': { const [c, b] = healthCheck(ctx, 'replica', parseLag(url.searchParams.get('lag'))); send(res, c, b); return; }
      default: {
        const a = asset(p);
        if (a === undefined) { send(res, 404, { error: 'not found' }); return; }
        res.writeHead(200, { 'content-type': a.type, 'cache-control': 'public, max-age=86400', 'content-length': a.body.length });
        res.end(method === 'HEAD' ? undefined : a.body);
      }
    }
  };

  const servers: http.Server[] = [];
  return {
    async listen(): Promise<number> {
      const items = opts.listenAddresses.split(',').map((h) => h.trim()).filter((h) => h !== '');
      const hosts = items.includes('*') ? [undefined] : items;
      let port = opts.port;
      for (const host of hosts) {
        const srv = http.createServer((req, res) => {
          handle(req, res).catch((err: unknown) => {
            if (!res.headersSent) send(res, 500, { error: err instanceof Error ? err.message : String(err) });
            else res.destroy();
          });
        });
        srv.keepAliveTimeout = 5000;
        servers.push(srv);
        await listenOn(srv, { port, ...(host !== undefined ? { host } : {}) }, 'http_listen_addresses/http_port');
        const a = srv.address();
        if (typeof a === 'object' && a !== null) port = a.port;
      }
      history.start();
      return port;
    },
    async close(): Promise<void> {
      history.stop();
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => { s.closeAllConnections(); s.close(() => resolve()); })));
      servers.length = 0;
    },
  };
}
