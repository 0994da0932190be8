/**
 * Runs pgmaitre inside the test process (same code path as the CLI: loadConfig + startApp), so
 * tests can read pool and slot counts directly. Logs go to a file in the config directory.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { loadConfig } from '../../src/config/load';
import { startApp, type App } from '../../src/app';
import { createLogger } from '../../src/log/logger';
import { freePort } from '../../src/demo/free-port';
import type { Cluster } from '../../src/demo/cluster';
import { startPgmaitre } from './cluster';

/** Settings every test instance starts from: no PCP/HTTP listener, no pid file (later lines win). */
export const TEST_DEFAULTS = "pcp_listen_addresses = ''\nhttp_port = 0\npid_file_name = ''\n";

/** A running in-process pgmaitre. */
export interface InProcess {
  readonly app: App;
  readonly port: number;
  readonly dir: string;
  logs(): string;
  stop(): Promise<void>;
  /**
   * PGMAITRE_TEST_WORKERS: the instance's pool figures (from its HTTP /api/status), since the
   * test cannot read `app`: backend connections leased, resetting or connecting; sessions; idle.
   */
  poolFigures?: () => Promise<{ busy: number; sessions: number; idle: number }>;
}

/** pgpool.conf lines for a test cluster's nodes (node 0 = primary). */
export function backendLines(c: Pick<Cluster, 'nodes'>, weights: readonly number[] = []): string {
  return c.nodes.map((n, i) => [
    `backend_hostname${i} = '${n.host}'`,
    `backend_port${i} = ${n.port}`,
    `backend_weight${i} = ${weights[i] ?? 1}`,
    `backend_flag${i} = 'ALLOW_TO_FAILOVER'`,
    `backend_application_name${i} = '${n.id}'`,
  ].join('\n')).join('\n');
}

/**
 * PGMAITRE_TEST_POOL_MODE=transaction (or statement) runs every in-process pgmaitre of a test
 * file with that pool_mode and a small default_pool_size, unless its config sets pool_mode itself:
 * the client suites run this way too (see their files).
 */
export function forcedPoolMode(config = ''): string {
  const mode = process.env['PGMAITRE_TEST_POOL_MODE'];
  const cache = forcedQueryCache(config);
  if (mode === undefined || mode === '' || /^\s*pool_mode\s*=/m.test(config)) return cache;
  return `pool_mode = ${mode}\ndefault_pool_size = ${process.env['PGMAITRE_TEST_POOL_SIZE'] ?? 3}\n${cache}`;
}

/**
 * PGMAITRE_TEST_QUERY_CACHE=shmem (or memcached:PORT) runs every in-process pgmaitre of a test
 * file with the query cache on, unless its config sets memory_cache_enabled itself: the client
 * suites run this way too (scripts/run-tests.js).
 */
export function forcedQueryCache(config = ''): string {
  const v = process.env['PGMAITRE_TEST_QUERY_CACHE'];
  if (v === undefined || v === '' || /^\s*memory_cache_enabled\s*=/m.test(config)) return '';
  const [method, port] = v.split(':');
  const side = /^\s*sr_check_user\s*=/m.test(config) ? '' : "sr_check_user = 'postgres'\n";
  return `memory_cache_enabled = on\nmemqcache_method = '${method}'\n${port ? `memqcache_memcached_host = '127.0.0.1'\nmemqcache_memcached_port = ${port}\n` : ''}${side}`;
}

/** The pool_mode PGMAITRE_TEST_POOL_MODE forces on this run ('session' when none). */
export function poolModeUnderTest(): string {
  return process.env['PGMAITRE_TEST_POOL_MODE'] || 'session';
}

/**
 * PGMAITRE_TEST_WORKERS=N (N > 1) runs every startInProcess pgmaitre of a test file as the CLI
 * runs it, in a child process with `worker_processes = N` (a supervisor and N workers: workers
 * need real processes); `app` is then not available (the client suites do not use it).
 */
export function workersUnderTest(): number {
  const n = Number(process.env['PGMAITRE_TEST_WORKERS'] ?? '1');
  return Number.isInteger(n) && n > 1 ? n : 1;
}

/** Writes pgpool.conf (+ files) to a temp dir and starts pgmaitre in this process. */
export async function startInProcess(config: string, files: Record<string, string> = {}, args: { keyFile?: string } = {}): Promise<InProcess> {
  if (workersUnderTest() > 1) return startWorkers(config, files, args);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-inproc-'));
  const port = await freePort();
  const conf = path.join(dir, 'pgpool.conf');
  // PCP, HTTP and the pid file are off unless a test turns them on (later lines win).
  fs.writeFileSync(conf, `listen_addresses = '127.0.0.1'\nport = ${port}\nunix_socket_directories = ''\n${TEST_DEFAULTS}${config}\n${forcedPoolMode(config)}`);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text, { mode: 0o600 });
  const logFile = path.join(dir, 'pgmaitre.log');
  const loaded = loadConfig(conf, { keyFile: args.keyFile });
  const log = createLogger(loaded.config, pino.destination({ dest: logFile, sync: true }));
  const app = await startApp(loaded, { log, overrides: { keyFile: args.keyFile } });
  return {
    app, port, dir,
    logs: () => fs.readFileSync(logFile, 'utf8'),
    stop: async () => {
      await app.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Waits until `cond()` holds (polling), or fails with `what`. */
export async function eventually(cond: () => boolean | Promise<boolean>, what: string | (() => string), timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for: ${typeof what === 'function' ? what() : what}`);
}

/** startInProcess under PGMAITRE_TEST_WORKERS: the CLI in a child process, worker_processes = N. */
async function startWorkers(config: string, files: Record<string, string>, args: { keyFile?: string }): Promise<InProcess> {
  const port = await freePort();
  // The HTTP status page gives the instance's pool figures (poolFigures), unless the test uses HTTP itself.
  const httpPort = /^\s*http_port\s*=/m.test(config) ? 0 : await freePort();
  const http = httpPort === 0 ? '' : `http_port = ${httpPort}\nhttp_listen_addresses = '127.0.0.1'\n`;
  const px = await startPgmaitre({
    config: `listen_addresses = '127.0.0.1'\nport = ${port}\nunix_socket_directories = ''\n${TEST_DEFAULTS}${config}\n${forcedPoolMode(config)}${http}worker_processes = ${workersUnderTest()}\n`,
    files, args: args.keyFile !== undefined ? ['-k', args.keyFile] : [], timeoutMs: 60_000,
  });
  // The port accepts once the first worker listens; wait for all of them.
  await px.waitForLog(/"event":"workers_ready"/, 60_000);
  return {
    get app(): App {
      throw new Error('PGMAITRE_TEST_WORKERS: pgmaitre runs in child processes; the test cannot read its App');
    },
    port, dir: px.dir,
    logs: () => px.logs(),
    stop: async () => {
      await px.stop();
    },
    ...(httpPort === 0 ? {} : {
      poolFigures: async () => {
        const r = await fetch(`http://127.0.0.1:${httpPort}/api/status`);
        const s = await r.json() as { nodes: { pool: { active: number; resetting: number; connecting: number; idle: number } | null }[]; sessions: unknown[] };
        let busy = 0;
        let idle = 0;
        for (const n of s.nodes) {
          if (n.pool === null) continue;
          busy += n.pool.active + n.pool.resetting + n.pool.connecting;
          idle += n.pool.idle;
        }
        return { busy, sessions: s.sessions.length, idle };
      },
    }),
  };
}
