/**
 * `pgmaitre healthcheck -f pgpool.conf`: asks the running pgmaitre's HTTP `/health` (200 when at
 * least one backend is up, 503 otherwise) on the http_port of that configuration. It is the
 * container image's HEALTHCHECK (node images have no curl) and works in any script; /health is
 * never behind http_auth. Exit status 0 only for a 200 answer.
 */
import * as http from 'node:http';
import { loadConfig } from './config/load';

/** Outcome of one health request. */
export interface HealthCheckResult {
  readonly ok: boolean;
  readonly message: string;
}

/** The address to reach an HTTP listener bound to http_listen_addresses from this host. */
export function localAddressOf(listenAddresses: string): string {
  const items = listenAddresses.split(',').map((h) => h.trim()).filter((h) => h !== '');
  if (items.length === 0 || items.includes('*') || items.includes('localhost') || items.includes('0.0.0.0')) return '127.0.0.1';
  if (items.includes('::')) return '::1';
  return items[0]!;
}

/** GET /health of the pgmaitre configured by `configFile`. */
export async function httpHealthCheck(configFile: string, timeoutMs = 3000): Promise<HealthCheckResult> {
  const { config } = loadConfig(configFile);
  if (config.http_port === 0) return { ok: false, message: 'http_port = 0: the HTTP endpoint is disabled, nothing to ask' };
  const host = localAddressOf(config.http_listen_addresses);
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${config.http_port}/health`;
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ ok: res.statusCode === 200, message: `${url}: ${res.statusCode} ${body.trim()}` }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ ok: false, message: `${url}: ${e.message}` }));
  });
}
