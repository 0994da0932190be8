// demo.ts — `npm run demo`: bring up a local primary + 2 streaming standbys under <repo>/.demo/
// (created the first time, reused afterwards: the ports live in .demo/cluster.json), write
// .demo/pgpool.conf pointing at them, and run pgmaitre in-process on 127.0.0.1:9999.
// Ctrl-C / SIGTERM stops pgmaitre, then the PostgreSQL servers, and exits 0.

import fs from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { createCluster, type Cluster } from './cluster';
import { readManifest } from './cluster-files';
import { isPortFree } from './free-port';
import { chownToServerUser, runCommand } from './pg-exec';
import { ensurePostgres } from './postgres-bin';

/** Handle returned by the in-process middleware entry. */
interface Running {
  stop(): Promise<void>;
}

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const DEMO_DIR = path.join(REPO_ROOT, '.demo');
const PREFERRED_PORTS = [15432, 15433, 15434];
const PROXY_PORT = 9999;

function log(msg: string): void {
  process.stdout.write(`[demo] ${msg}\n`);
}

/** pgpool.conf text for pgmaitre in front of the given cluster. */
export function demoPgpoolConf(c: Cluster, port: number, confDir: string): string {
  const lines = [
    '# written by `npm run demo` (src/demo/demo.ts) — regenerated on every run',
    "backend_clustering_mode = 'streaming_replication'",
    "listen_addresses = '127.0.0.1'",
    `port = ${port}`,
    `unix_socket_directories = '${confDir}'`,
    `pcp_socket_dir = '${confDir}'`,
    "pid_file_name = 'pgmaitre.pid'",
    'enable_pool_hba = off',
    'load_balance_mode = on',
    "sr_check_user = 'postgres'",
    "health_check_user = 'postgres'",
    'health_check_period = 5',
    'log_min_messages = info',
    '# reads go to the standbys (primary weight 0), and a session reads its own writes',
    'read_your_writes = on',
    "pcp_listen_addresses = '127.0.0.1'",
    "http_listen_addresses = '127.0.0.1'",
    '',
  ];
  c.nodes.forEach((n, i) => {
    lines.push(
      `backend_hostname${i} = '${n.host}'`,
      `backend_port${i} = ${n.port}`,
      `backend_weight${i} = ${n.role === 'primary' ? 0 : 1}`,
      `backend_flag${i} = 'ALLOW_TO_FAILOVER'`,
      `backend_application_name${i} = '${n.id}'`,
      '',
    );
  });
  return lines.join('\n');
}

async function startCluster(): Promise<Cluster> {
  fs.mkdirSync(DEMO_DIR, { recursive: true });
  chownToServerUser(DEMO_DIR);
  if (readManifest(DEMO_DIR)) {
    log(`reusing the cluster in ${DEMO_DIR}`);
    return createCluster({ dir: DEMO_DIR, reuse: true });
  }
  const preferredFree = (await Promise.all(PREFERRED_PORTS.map(isPortFree))).every(Boolean);
  log(`creating a primary + 2 standbys in ${DEMO_DIR}${preferredFree ? ' on ports 15432-15434' : ' (15432-15434 busy: free ports)'}`);
  return createCluster({ dir: DEMO_DIR, standbys: 2, ...(preferredFree ? { basePort: PREFERRED_PORTS[0] } : {}) });
}

async function ensurePgbench(c: Cluster): Promise<void> {
  const p = c.primary;
  const has = await c.psql(p.id, "select to_regclass('public.pgbench_accounts') is not null");
  if (has === 't') return;
  log('pgbench -i -s 1 (first run only)');
  await runCommand(c.pg.bin('pgbench'), ['-i', '-q', '-s', '1', '-h', p.host, '-p', String(p.port), '-U', 'postgres', 'postgres']);
  await c.waitForReplay();
}

async function main(): Promise<void> {
  const pg = ensurePostgres({ install: true });
  log(`PostgreSQL ${pg.major} binaries in ${pg.binDir}`);
  const t0 = Date.now();
  const cluster = await startCluster();
  log(`cluster up in ${Date.now() - t0} ms: ${cluster.nodes.map((n) => `${n.id} ${n.host}:${n.port}`).join(', ')}`);
  let running: Running | undefined;
  let stopping = false;
  const shutdown = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log('stopping pgmaitre and the PostgreSQL servers...');
    await running?.stop().catch((e: unknown) => log(`pgmaitre stop failed: ${String(e)}`));
    await cluster.stop().catch((e: unknown) => log(`cluster stop failed: ${String(e)}`));
    log('stopped');
    process.exit(code);
  };
  process.once('SIGINT', () => void shutdown(0));
  process.once('SIGTERM', () => void shutdown(0));
  try {
    await ensurePgbench(cluster);
    const confPath = path.join(DEMO_DIR, 'pgpool.conf');
    fs.writeFileSync(confPath, demoPgpoolConf(cluster, PROXY_PORT, DEMO_DIR));
    // PCP user for the pcp_* tools and `pgmaitre node-info ...`: pgmaitre / pgmaitre.
    fs.writeFileSync(path.join(DEMO_DIR, 'pcp.conf'), `pgmaitre:${createHash('md5').update('pgmaitre').digest('hex')}\n`);
    fs.writeFileSync(path.join(DEMO_DIR, 'pcppass'), '*:*:pgmaitre:pgmaitre\n', { mode: 0o600 });
    // required lazily: main.ts is the process entry, and demo must not run it at import time
    const { runMain } = require('../main') as { runMain: (argv: string[]) => Promise<Running> };
    running = await runMain(['-n', '-f', confPath]);
  } catch (err) {
    log(`failed: ${err instanceof Error ? err.message : String(err)}`);
    await shutdown(1);
    return;
  }
  log(`pgmaitre listens on 127.0.0.1:${PROXY_PORT} (config ${path.join(DEMO_DIR, 'pgpool.conf')})`);
  log(`connect:   psql -h 127.0.0.1 -p ${PROXY_PORT} -U postgres`);
  log(`admin:     psql -h 127.0.0.1 -p ${PROXY_PORT} -U postgres -c 'show pool_nodes'`);
  log(`load test: pgbench -n -S -T 10 -c 4 -h 127.0.0.1 -p ${PROXY_PORT} -U postgres postgres`);
  log(`routing:   psql -h 127.0.0.1 -p ${PROXY_PORT} -U postgres -c 'SELECT pg_is_in_recovery()'   (t: a standby answered)`);
  log('status:    http://127.0.0.1:8404/   (metrics: /metrics)');
  log('pcp:       PCPPASSFILE=.demo/pcppass npx pgmaitre node-info 1 -h 127.0.0.1 -p 9898 -U pgmaitre -w   (pcp_node_info works the same)');
  log('Ctrl-C stops pgmaitre and the PostgreSQL servers (data is kept in .demo/; rm -rf .demo to start over)');
}

if (require.main === module) {
  void main().catch((err: unknown) => {
    process.stderr.write(`[demo] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
