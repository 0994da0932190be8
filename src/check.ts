/**
 * `pgmaitre check -f pgpool.conf` (also `-C`/`-c`/`--check`): the configuration test an operator
 * runs before a start or a reload, as `haproxy -c -f haproxy.cfg` or `nginx -t` do.
 *
 * It reads pgpool.conf, pool_hba.conf, pool_passwd (with the AES key) and pcp.conf with the very
 * loaders a start uses (config/load.ts, config/auth-files.ts, config/pcp-conf.ts) and builds the
 * TLS context when ssl = on, then lists every error and warning as `FILE:LINE: key: why`. It
 * connects to no backend and keeps no listener: each port a start would open is only tried
 * (bound and closed at once) to note, as NOTICE lines, those another process holds now.
 * Beside the start's own checks it reports what would only fail later: a bad pcp.conf (PCP
 * logins), two listeners on one port (EADDRINUSE).
 * A top-level file (like app.ts) because it needs config/ and frontend/tls.ts.
 */
import { existsSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { basename, dirname, resolve } from 'node:path';
import { loadConfig, type Config, type LoadOverrides } from './config/load';
import { ConfigError, formatIssue, type ConfigIssue } from './config/config-error';
import { loadAuthFiles, startupWarnings } from './config/auth-files';
import { resolveWorkerCount } from './workers/count';
import { loadHba } from './config/hba';
import { loadPcpConf } from './config/pcp-conf';
import { buildFrontendTls } from './frontend/tls';
import { bindHosts } from './frontend/listener';
import { listenReason } from './util/listen';

/** What `pgmaitre check` found. */
export interface CheckReport {
  /** The files read, with what they hold (`pool_hba.conf: 4 rules`). */
  readonly checked: string[];
  /** `FILE:LINE: key: why` lines that stop a start (or break a feature for good). */
  readonly errors: string[];
  /** Lines a start accepts with a warning. */
  readonly warnings: string[];
  /**
   * Listeners a start could not open right now (a port taken by pgpool-II on the same host): printed
   * as NOTICE lines, not counted in the exit status, which judges the files only (the port may be
   * free by the time of the start, or be this very pgmaitre's, checked before a reload).
   */
  readonly notices?: string[];
}

/** Exit status of `pgmaitre check`: 0 valid, 1 errors (or warnings with strict), 2 warnings only. */
export function checkExitCode(r: CheckReport, strict: boolean): 0 | 1 | 2 {
  if (r.errors.length > 0) return 1;
  if (r.warnings.length > 0) return strict ? 1 : 2;
  return 0;
}

function issuesOf(e: unknown, fallbackFile: string): ConfigIssue[] {
  if (e instanceof ConfigError) return [...e.issues];
  return [{ file: fallbackFile, message: (e as Error)?.message ?? String(e) }];
}

/** Checks every file a start reads; never throws for a bad file (it becomes an error line). */
export function checkConfiguration(configFile: string, overrides: LoadOverrides = {}): CheckReport {
  const errors: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const checked: string[] = [];
  const confPath = resolve(configFile);
  let config: Config | null = null;
  try {
    const loaded = loadConfig(confPath, overrides);
    config = loaded.config;
    checked.push(`${confPath}: ${config.backends.length} backend(s)`);
    // loadConfig formats its warnings; keep them as they are.
    warnings.push(...loaded.warnings.map((w) => ({ file: '', message: w })));
  } catch (e) {
    errors.push(...issuesOf(e, basename(confPath)));
    if (e instanceof ConfigError) warnings.push(...e.warnings);
  }

  if (config !== null) {
    try {
      const files = loadAuthFiles(config);
      if (config.pool_passwd !== '') {
        checked.push(existsSync(config.pool_passwd) ? `${config.pool_passwd}: ${files.poolPasswd.size} user(s)` : `${config.pool_passwd}: absent (no passwords)`);
      }
      if (files.hba !== null) checked.push(`${config.hba_file}: ${files.hba.length} rule(s)`);
      warnings.push(...files.warnings);
    } catch (e) {
      errors.push(...issuesOf(e, basename(config.pool_passwd)));
    }
    warnings.push(...startupWarnings(config));
    try {
      resolveWorkerCount(config.worker_processes);
    } catch (e) {
      errors.push({ file: basename(confPath), key: 'worker_processes', message: (e as Error).message.replace(/^worker_processes: /, '') });
    }
    try {
      buildFrontendTls(config);
    } catch (e) {
      const msg = (e as Error).message;
      const m = /^(ssl_\w+): (.*)$/.exec(msg);
      errors.push({ file: basename(confPath), ...(m ? { key: m[1]!, message: m[2]! } : { key: 'ssl', message: msg }) });
    }
    checkPcp(config.pcp_listen_addresses.trim() !== '', config.pcp_file, checked, errors, warnings);
    checkPorts(config, errors);
  } else {
    // pgpool.conf is broken, so its settings are unknown: still check the other files at the
    // places a start would look for them, so one run shows every mistake.
    const dir = dirname(confPath);
    const hba = overrides.hbaFile !== undefined ? resolve(overrides.hbaFile) : resolve(dir, 'pool_hba.conf');
    if (existsSync(hba)) {
      try {
        checked.push(`${hba}: ${loadHba(hba).length} rule(s)`);
      } catch (e) {
        errors.push(...issuesOf(e, basename(hba)));
      }
    }
    const pcp = overrides.pcpFile !== undefined ? resolve(overrides.pcpFile) : resolve(dir, 'pcp.conf');
    if (existsSync(pcp)) checkPcp(true, pcp, checked, errors, warnings);
  }
  return { checked, errors: errors.map(formatIssue), warnings: warnings.map((w) => (w.file === '' ? w.message : formatIssue(w))) };
}

function checkPcp(enabled: boolean, file: string, checked: string[], errors: ConfigIssue[], warnings: ConfigIssue[]): void {
  if (!enabled) return;
  if (!existsSync(file)) {
    warnings.push({ file: basename(file), message: `${file} does not exist: every PCP login (pcp_* tools, pgmaitre node-info ...) will be refused` });
    return;
  }
  try {
    checked.push(`${file}: ${loadPcpConf(file).size} user(s)`);
  } catch (e) {
    errors.push(...issuesOf(e, basename(file)));
  }
}

/** Two of our listeners on one TCP port: the second bind would fail with EADDRINUSE. */
function checkPorts(config: Config, errors: ConfigIssue[]): void {
  const file = basename(config.config_file);
  const used: { key: string; port: number }[] = [{ key: 'port', port: config.port }];
  if (config.pcp_listen_addresses.trim() !== '') used.push({ key: 'pcp_port', port: config.pcp_port });
  if (config.http_port > 0) used.push({ key: 'http_port', port: config.http_port });
  for (let i = 1; i < used.length; i++) {
    const clash = used.slice(0, i).find((u) => u.port === used[i]!.port);
    if (clash !== undefined) errors.push({ file, key: used[i]!.key, message: `${used[i]!.port} is also ${clash.key}: two listeners cannot share a port` });
  }
}

/** One listener a start opens: a TCP address and port, or a Unix socket file. */
interface PlannedListener { readonly key: string; readonly host?: string; readonly port: number; readonly path?: string }

/** Every listener a start of `config` opens, with the keys that choose it. */
export function plannedListeners(config: Config): PlannedListener[] {
  const out: PlannedListener[] = [];
  const tcp = (key: string, addresses: string, port: number): void => {
    for (const host of bindHosts(addresses)) out.push({ key, host, port });
  };
  const unix = (key: string, dirs: readonly string[], port: number): void => {
    for (const d of dirs) if (d.trim() !== '') out.push({ key, port, path: join(d.trim(), `.s.PGSQL.${port}`) });
  };
  tcp('listen_addresses/port', config.listen_addresses, config.port);
  unix('unix_socket_directories', config.unix_socket_directories, config.port);
  for (const kind of ['write', 'read'] as const) {
    const port = config[`${kind}_port`];
    if (port <= 0) continue;
    const own = config[`${kind}_listen_addresses`];
    tcp(`${own === '' ? 'listen_addresses' : `${kind}_listen_addresses`}/${kind}_port`, own === '' ? config.listen_addresses : own, port);
    unix(`unix_socket_directories (${kind}_port)`, config.unix_socket_directories, port);
  }
  if (config.pcp_listen_addresses.trim() !== '') {
    tcp('pcp_listen_addresses/pcp_port', config.pcp_listen_addresses, config.pcp_port);
    unix('pcp_socket_dir', [config.pcp_socket_dir], config.pcp_port);
  }
  if (config.http_port > 0) tcp('http_listen_addresses/http_port', config.http_listen_addresses, config.http_port);
  return out;
}

/** Why `l` could not be opened now, or null when it could (tried for real, then closed at once). */
function tryListen(l: PlannedListener): Promise<string | null> {
  if (l.path !== undefined) {
    const file = l.path;
    const dir = dirname(file);
    if (!existsSync(dir)) return Promise.resolve(`directory ${dir} does not exist`);
    if (!existsSync(file)) return Promise.resolve(null);
    return new Promise((done) => {
      const c = net.connect({ path: file }, () => { c.destroy(); done('socket in use by another process (pgpool-II, another pgmaitre?)'); });
      c.on('error', () => done(null)); // a stale file: a start removes it
    });
  }
  return new Promise((done) => {
    const srv = net.createServer();
    srv.once('error', (e: NodeJS.ErrnoException) => done(listenReason(e)));
    srv.listen({ host: l.host, port: l.port, ipv6Only: l.host?.includes(':') ?? false }, () => srv.close(() => done(null)));
  });
}

/**
 * The listeners a start would fail to open right now (a port taken by pgpool-II running on the
 * same host, a missing socket directory), as CheckReport.notices.
 */
export async function checkListeners(config: Config): Promise<string[]> {
  const file = basename(config.config_file);
  const out: string[] = [];
  for (const l of plannedListeners(config)) {
    const why = await tryListen(l);
    if (why === null) continue;
    const where = l.path ?? `${l.host ?? '*'} port ${l.port}`;
    out.push(formatIssue({ file, key: l.key, message: `cannot listen on ${where} now: ${why}; a start would fail` }));
  }
  return out;
}

/** The report as printed: one line per problem, then a summary line. */
export function formatCheckReport(configFile: string, r: CheckReport, strict: boolean): string {
  const lines = [
    ...r.errors.map((e) => `ERROR: ${e}`),
    ...r.warnings.map((w) => `WARNING: ${w}`),
    ...(r.notices ?? []).map((n) => `NOTICE: ${n}`),
  ];
  const code = checkExitCode(r, strict);
  const file = resolve(configFile);
  if (code === 0) lines.push(`configuration is valid: ${file}`);
  else if (r.errors.length > 0) lines.push(`configuration has ${r.errors.length} error(s) and ${r.warnings.length} warning(s): ${file}`);
  else lines.push(`configuration is valid with ${r.warnings.length} warning(s)${strict ? ' (fatal with --strict)' : ''}: ${file}`);
  if (r.checked.length > 0) lines.push(...r.checked.map((c) => `  read ${c}`));
  return `${lines.join('\n')}\n`;
}
