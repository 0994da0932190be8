// test/harness/cluster.ts — node:test helpers over src/demo/cluster.ts: a throw-away cluster per
// test file (withCluster registers before/after hooks), pgmaitre started as a child process
// (startPgmaitre), and a safety net that stops every server and child we started when the test
// process exits or is signalled, so a test run never leaves orphan postgres processes behind.
// Clusters live in memory (/dev/shm) when it has room, and `pgbench: true` copies a cached data
// directory already initialised by pgbench -i (see docs/testing.md).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { createCluster, postmasterPid, processAlive, type Cluster, type ClusterOptions } from '../../src/demo/cluster';
import { spawnServer, type ServerProcess } from '../../src/demo/child-server';
import { freePort } from '../../src/demo/free-port';
import { chownToServerUser, runCommand } from '../../src/demo/pg-exec';
import { cachedDataDir, initdbTemplate } from '../../src/demo/cluster-files';
import { ensurePostgres, type PostgresBin } from '../../src/demo/postgres-bin';

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
/** Directories of clusters being created (not yet in liveClusters): an interrupted run removes them too. */
const pendingDirs = new Set<string>();
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
    for (const dir of pendingDirs) {
      // A node already started gets the immediate-shutdown signal (and a few seconds to exit); the
      // directory goes either way, retried while a copy of the template may still be writing to it.
      try {
        const pids: number[] = [];
        for (const node of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
          const pid = postmasterPid(path.join(dir, node));
          if (pid === undefined) continue;
          pids.push(pid);
          process.kill(pid, 'SIGQUIT');
        }
        const until = Date.now() + 5000;
        while (pids.some(processAlive) && Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        if (!process.env['PGMAITRE_KEEP_CLUSTERS']) fs.rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
      } catch {
        // best effort at exit
      }
    }
    pendingDirs.clear();
  };
  process.on('exit', cleanup);
  for (const [sig, num] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]] as const) {
    process.once(sig, () => {
      cleanup();
      process.exit(128 + num);
    });
  }
}

/** Free bytes a file system must have for the clusters to be put on it (several GB of WAL at worst). */
const MEMORY_DIR_MIN_FREE = 4 * 1024 ** 3;

/**
 * Where the test clusters' directories go: $PGMAITRE_TEST_TMPDIR when set, else /dev/shm when it is a
 * writable directory with 4 GB free (data files in memory: no disk I/O, several seconds less per
 * cluster on a busy machine), else the OS temp directory.
 */
export function clusterBaseDir(): string {
  const forced = process.env['PGMAITRE_TEST_TMPDIR'];
  if (forced) return forced;
  try {
    const shm = '/dev/shm';
    fs.accessSync(shm, fs.constants.W_OK | fs.constants.X_OK);
    const st = fs.statfsSync(shm);
    if (st.bavail * st.bsize >= MEMORY_DIR_MIN_FREE) return shm;
  } catch {
    // no /dev/shm here
  }
  return os.tmpdir();
}

/**
 * A cleanly stopped data directory initialised by `pgbench -i -s <scale>` (copied from the initdb
 * template, started once on a free port and stopped), cached next to the initdb template like it:
 * clusters made from it have the pgbench tables on every node from the start (pgbench -i plus the
 * standbys' replay cost several seconds per cluster).
 */
export async function pgbenchTemplate(pg: PostgresBin, scale: number): Promise<string> {
  const base = await initdbTemplate(pg);
  return cachedDataDir(path.join(os.tmpdir(), `pgmaitre-pgbench-template-${pg.major}-s${scale}`), 'pgmaitre-pgbench-', async (data, work) => {
    const log = path.join(work, 'server.log');
    await runCommand('cp', ['-a', base, data]);
    const port = await freePort();
    // settings on the command line only: nothing of this run stays in the template's files
    // wal_recycle = off: the checkpoints remove the WAL pgbench -i filled instead of keeping it for reuse
    const serverOpts = `-p ${port} -h 127.0.0.1 -k ${work} -F -c autovacuum=off -c wal_recycle=off`;
    await runCommand(pg.bin('pg_ctl'), ['start', '-w', '-t', '60', '-s', '-D', data, '-l', log, '-o', serverOpts], { asPostgres: true });
    try {
      await runCommand(pg.bin('pgbench'), ['-i', '-q', '-s', String(scale), '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'postgres'], {
        env: { ...process.env, PGPASSWORD: '' },
      });
    } finally {
      // a fast stop ends with a shutdown checkpoint: copies of it start consistent, as primary or standby
      await runCommand(pg.bin('pg_ctl'), ['stop', '-w', '-t', '60', '-s', '-m', 'fast', '-D', data], { asPostgres: true });
    }
  });
}

/** Create a cluster in a fresh temp dir (owned by postgres when root), stopped and removed at exit at the latest. */
export async function createTestCluster(opts: TestClusterOptions = {}): Promise<Cluster> {
  installExitHooks();
  const { pgbench, ...clusterOpts } = opts;
  const template = pgbench ? await pgbenchTemplate(ensurePostgres({ install: false }), typeof pgbench === 'number' ? pgbench : 1) : undefined;
  const dir = fs.mkdtempSync(path.join(clusterBaseDir(), 'pgm-test-'));
  chownToServerUser(dir);
  let cluster: Cluster;
  pendingDirs.add(dir);
  try {
    cluster = await createCluster({ ...clusterOpts, dir, ...(template ? { template } : {}) });
  } catch (err) {
    // the error carries the tail of the failing node's log
    if (!process.env['PGMAITRE_KEEP_CLUSTERS']) fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  } finally {
    pendingDirs.delete(dir);
  }
  liveClusters.add(cluster);
  const destroy = cluster.destroy.bind(cluster);
  (cluster as { destroy: () => Promise<void> }).destroy = async () => {
    await destroy();
    liveClusters.delete(cluster);
  };
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
