// test/harness/cluster.ts — node:test helpers over src/demo/cluster.ts: a throw-away cluster per
// test file (withCluster registers before/after hooks), pgmaitre started as a child process
// (startPgmaitre), and a safety net that stops every server and child we started when the test
// process exits or is signalled, so a test run never leaves orphan postgres processes behind.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { createCluster, type Cluster, type ClusterOptions } from '../../src/demo/cluster';
import { spawnServer, type ServerProcess } from '../../src/demo/child-server';
import { freePort } from '../../src/demo/free-port';
import { chownToServerUser, runCommand } from '../../src/demo/pg-exec';

export { freePort } from '../../src/demo/free-port';
export type { Cluster, ClusterNode } from '../../src/demo/cluster';

/** Options of createTestCluster/withCluster: createCluster's, minus `dir`, plus pgbench init. */
export interface TestClusterOptions extends Omit<ClusterOptions, 'dir' | 'reuse'> {
  /** Run `pgbench -i -s <scale>` in database postgres (true = scale 1), then wait for replay. */
  readonly pgbench?: boolean | number;
}

/** Repository root (this file is compiled to dist/test/harness/). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

const liveClusters = new Set<Cluster>();
const liveServers = new Set<ServerProcess>();
let exitHooksInstalled = false;

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  const cleanup = (): void => {
    for (const server of liveServers) server.killSync();
    liveServers.clear();
    for (const c of liveClusters) {
      c.stopSync();
      if (!process.env['PGMAITRE_KEEP_CLUSTERS']) fs.rmSync(c.dir, { recursive: true, force: true });
    }
    liveClusters.clear();
  };
  process.on('exit', cleanup);
  for (const [sig, num] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]] as const) {
    process.once(sig, () => {
      cleanup();
      process.exit(128 + num);
    });
  }
}

/** Create a cluster in a fresh temp dir (owned by postgres when root), stopped and removed at exit at the latest. */
export async function createTestCluster(opts: TestClusterOptions = {}): Promise<Cluster> {
  installExitHooks();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-test-'));
  chownToServerUser(dir);
  const { pgbench, ...clusterOpts } = opts;
  const cluster = await createCluster({ ...clusterOpts, dir });
  liveClusters.add(cluster);
  const destroy = cluster.destroy.bind(cluster);
  (cluster as { destroy: () => Promise<void> }).destroy = async () => {
    await destroy();
    liveClusters.delete(cluster);
  };
  if (pgbench) {
    const scale = typeof pgbench === 'number' ? pgbench : 1;
    const env = { ...process.env, PGPASSWORD: cluster.auth === 'trust' ? '' : 'postgres' };
    const p = cluster.primary;
    await runCommand(cluster.pg.bin('pgbench'), ['-i', '-q', '-s', String(scale), '-h', p.host, '-p', String(p.port), '-U', 'postgres', 'postgres'], { env });
    await cluster.waitForReplay();
  }
  return cluster;
}

/** Handle returned by withCluster: `cluster` is available from the first test on. */
export interface ClusterFixture {
  readonly cluster: Cluster;
}

/** Register node:test before/after hooks that create a cluster and destroy it when the suite ends. */
export function withCluster(opts: TestClusterOptions = {}): ClusterFixture {
  let cluster: Cluster | undefined;
  before(async () => {
    cluster = await createTestCluster(opts);
  }, { timeout: 180_000 });
  after(async () => {
    await cluster?.destroy();
  });
  return {
    get cluster(): Cluster {
      if (!cluster) throw new Error('withCluster: the cluster is not created yet (use it inside tests or hooks)');
      return cluster;
    },
  };
}

/** Options of startPgmaitre. */
export interface PgmaitreOptions {
  /** pgpool.conf text; when it sets no `port`, a free one is appended. */
  readonly config: string;
  /** Extra files written next to pgpool.conf (pool_hba.conf, pool_passwd, pcp.conf, ...). */
  readonly files?: Record<string, string>;
  readonly args?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** How long to wait for the port to accept connections (default 15 s). */
  readonly timeoutMs?: number;
}

/** A running pgmaitre child process (see ServerProcess), plus the directory of its config files. */
export interface PgmaitreProcess extends ServerProcess {
  /** Directory holding pgpool.conf and the extra files (removed by stop()). */
  readonly dir: string;
}

/** The `port` a pgpool.conf text sets, if any. */
export function configPort(config: string): number | undefined {
  const m = /^\s*port\s*=\s*'?(\d+)'?/m.exec(config);
  return m?.[1] ? Number(m[1]) : undefined;
}

/** Spawn `node bin/pgmaitre.js -n -f <dir>/pgpool.conf ...args` and resolve once its port accepts connections. */
export async function startPgmaitre(opts: PgmaitreOptions): Promise<PgmaitreProcess> {
  installExitHooks();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-proxy-'));
  // PCP, HTTP and the pid file are off unless the test's config turns them on (later lines win).
  let config = `pcp_listen_addresses = ''\nhttp_port = 0\npid_file_name = ''\n${opts.config}`;
  let port = configPort(config);
  if (port === undefined) {
    port = await freePort();
    config += `\nport = ${port}\n`;
  }
  const confPath = path.join(dir, 'pgpool.conf');
  fs.writeFileSync(confPath, config);
  for (const [name, text] of Object.entries(opts.files ?? {})) fs.writeFileSync(path.join(dir, name), text, { mode: 0o600 });
  let server: ServerProcess;
  try {
    server = await spawnServer({
      name: 'pgmaitre',
      cmd: process.execPath,
      args: [path.join(REPO_ROOT, 'bin', 'pgmaitre.js'), '-n', '-f', confPath, ...(opts.args ?? [])],
      port,
      cwd: dir,
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    });
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  liveServers.add(server);
  return {
    ...server,
    dir,
    async stop() {
      const status = await server.stop();
      liveServers.delete(server);
      fs.rmSync(dir, { recursive: true, force: true });
      return status;
    },
  };
}
