// run.ts — `npm run bench`: end-to-end pgbench of pgmaitre vs a direct connection vs a bare Node
// TCP pipe, side by side in one run. A primary + 2 standbys cluster lives in /tmp/pgmaitre-bench
// (rebuilt each run, or reused with --reuse) with `pgbench -i -s 10`. For each mode (simple,
// extended) and client count (1, 16) every target runs `pgbench -n -S` back to back, so compared
// runs are adjacent in time. Proxies are charged CPU µs per query from /proc/<pid>/stat.
// Env: BENCH_DURATION (10 s), BENCH_MODES (simple,extended), BENCH_CLIENTS (1,16),
// BENCH_TARGETS (direct,pipe,pgmaitre), BENCH_WARMUP (2 s, 0 = none), BENCH_SCALE (10),
// BENCH_WEIGHTS (backend weights for pgmaitre, default 1,0,0).
// The machine has 2 shared cores: compare ratios within a run, not absolute tps across runs.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnServer, type ServerProcess } from '../../src/demo/child-server';
import { createCluster, destroyClusterDir, type Cluster } from '../../src/demo/cluster';
import { freePorts } from '../../src/demo/free-port';
import { runCommand } from '../../src/demo/pg-exec';
import { ensurePostgres } from '../../src/demo/postgres-bin';
import { parsePgbench, processCpuMicros, type PgbenchSummary } from './pgbench-output';

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const CLUSTER_DIR = path.join(os.tmpdir(), 'pgmaitre-bench');
const ALL_TARGETS = ['direct', 'pipe', 'pgmaitre'] as const;
type TargetName = (typeof ALL_TARGETS)[number];

/** One endpoint pgbench is pointed at. */
interface Target {
  readonly name: TargetName;
  readonly port: number;
  /** The proxy process to charge CPU to (none for direct). */
  readonly server?: ServerProcess;
}

/** One pgbench run and what it cost. */
export interface BenchResult extends PgbenchSummary {
  readonly target: TargetName;
  readonly mode: string;
  readonly clients: number;
  readonly exitCode: number;
  readonly ok: boolean;
  readonly cpuUsPerQuery: number | undefined;
  ratioToDirect?: number;
  addedLatencyUs?: number;
}

function list(env: string, def: string): string[] {
  return (process.env[env] ?? def).split(/[\s,]+/).filter(Boolean);
}

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

const config = {
  duration: Number(process.env['BENCH_DURATION'] ?? 10),
  warmup: Number(process.env['BENCH_WARMUP'] ?? 2),
  scale: Number(process.env['BENCH_SCALE'] ?? 10),
  modes: list('BENCH_MODES', 'simple,extended'),
  clients: list('BENCH_CLIENTS', '1,16').map(Number),
  targets: list('BENCH_TARGETS', ALL_TARGETS.join(',')) as TargetName[],
  reuse: process.argv.includes('--reuse'),
  // Default 1,0,0: every read on the primary, so pgmaitre is compared with the direct primary on
  // equal terms while still classifying and routing every query. 0,1,1 spreads reads on standbys.
  weights: list('BENCH_WEIGHTS', '1,0,0').map(Number),
};

async function setupCluster(): Promise<Cluster> {
  const settings = { shared_buffers: '256MB', max_connections: 200 };
  if (!config.reuse) await destroyClusterDir(CLUSTER_DIR);
  const t0 = Date.now();
  const c = await createCluster({ dir: CLUSTER_DIR, standbys: 2, settings, reuse: config.reuse });
  log(`cluster ${c.reused ? 'reused' : 'created'} in ${Date.now() - t0} ms: ${c.nodes.map((n) => `${n.id}:${n.port}`).join(' ')}`);
  try {
    const p = c.primary;
    const exists = await c.psql(p.id, "select to_regclass('pgbench_branches') is not null");
    const scale = exists === 't' ? Number(await c.psql(p.id, 'select count(*) from pgbench_branches')) : 0;
    if (scale !== config.scale) {
      log(`pgbench -i -s ${config.scale}`);
      const args = ['-i', '-q', '-s', String(config.scale), '-h', p.host, '-p', String(p.port), '-U', 'postgres', 'postgres'];
      await runCommand(c.pg.bin('pgbench'), args, { timeoutMs: 600_000 });
    }
    await c.psql(p.id, 'checkpoint');
    await c.waitForReplay(300_000);
    return c;
  } catch (err) {
    await c.stop();
    throw err;
  }
}

function pgmaitreConf(c: Cluster, port: number, pcpPort: number, dir: string): string {
  const lines = [
    '# written by bench/e2e/run.ts',
    "backend_clustering_mode = 'streaming_replication'",
    "listen_addresses = '127.0.0.1'",
    `port = ${port}`,
    `pcp_port = ${pcpPort}`,
    `unix_socket_directories = '${dir}'`,
    `pcp_socket_dir = '${dir}'`,
    "pid_file_name = 'pgmaitre.pid'",
    'enable_pool_hba = off',
    'load_balance_mode = on',
    'num_init_children = 64',
    "sr_check_user = 'postgres'",
    "health_check_user = 'postgres'",
    'log_min_messages = warning',
  ];
  c.nodes.forEach((n, i) => {
    lines.push(`backend_hostname${i} = '${n.host}'`, `backend_port${i} = ${n.port}`, `backend_weight${i} = ${config.weights[i] ?? 0}`);
    lines.push(`backend_flag${i} = 'ALLOW_TO_FAILOVER'`, `backend_application_name${i} = '${n.id}'`);
  });
  return `${lines.join('\n')}\n`;
}

async function startTargets(c: Cluster, notes: string[]): Promise<Target[]> {
  const targets: Target[] = [];
  const [pipePort = 0, proxyPort = 0, pcpPort = 0] = await freePorts(3);
  for (const name of config.targets) {
    if (name === 'direct') {
      targets.push({ name, port: c.primary.port });
    } else if (name === 'pipe') {
      const server = await spawnServer({
        name: 'node-pipe',
        cmd: process.execPath,
        args: [path.join(__dirname, 'node-pipe.js'), String(pipePort), String(c.primary.port)],
        port: pipePort,
      });
      targets.push({ name, port: pipePort, server });
    } else if (name === 'pgmaitre') {
      const dir = path.join(CLUSTER_DIR, 'pgmaitre');
      fs.mkdirSync(dir, { recursive: true });
      const conf = path.join(dir, 'pgpool.conf');
      fs.writeFileSync(conf, pgmaitreConf(c, proxyPort, pcpPort, dir));
      try {
        const server = await spawnServer({
          name: 'pgmaitre',
          cmd: process.execPath,
          args: [path.join(REPO_ROOT, 'bin', 'pgmaitre.js'), '-n', '-f', conf],
          port: proxyPort,
          cwd: dir,
        });
        targets.push({ name, port: proxyPort, server });
      } catch (err) {
        const first = (err instanceof Error ? err.message : String(err)).split('\n').slice(0, 4).join(' | ');
        notes.push(`pgmaitre skipped: ${first}`);
        log(`pgmaitre skipped: ${first}`);
      }
    } else {
      throw new Error(`unknown target '${String(name)}' in BENCH_TARGETS (known: ${ALL_TARGETS.join(', ')})`);
    }
  }
  return targets;
}

async function pgbench(c: Cluster, port: number, args: string[], seconds: number): Promise<{ out: string; code: number }> {
  const all = [...args, '-T', String(seconds), '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'postgres'];
  try {
    const r = await runCommand(c.pg.bin('pgbench'), all, { timeoutMs: (seconds + 60) * 1000 });
    return { out: r.stdout + r.stderr, code: 0 };
  } catch (err) {
    return { out: err instanceof Error ? err.message : String(err), code: 1 };
  }
}

async function runOne(c: Cluster, t: Target, mode: string, clients: number): Promise<BenchResult> {
  const args = ['-n', '-S', '-M', mode, '-c', String(clients), '-j', String(Math.min(clients, 2))];
  const cpu0 = t.server ? processCpuMicros(t.server.pid) : 0;
  const { out, code } = await pgbench(c, t.port, args, config.duration);
  const cpu1 = t.server?.alive() ? processCpuMicros(t.server.pid) : cpu0;
  const s = parsePgbench(out);
  const ok = code === 0 && s.tps !== undefined && s.failed === 0 && s.aborted === 0;
  const cpuUsPerQuery = t.server && s.transactions > 0 ? (cpu1 - cpu0) / s.transactions : undefined;
  return { ...s, error: ok ? undefined : (s.error ?? out.split('\n')[0]), target: t.name, mode, clients, exitCode: code, ok, cpuUsPerQuery };
}

function fmt(v: number | undefined, digits: number): string {
  return v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);
}

/** Fill ratio-to-direct and added latency (1-client rows) from the direct run of the same mode+clients. */
export function compareToDirect(results: BenchResult[]): void {
  for (const r of results) {
    const d = results.find((x) => x.target === 'direct' && x.mode === r.mode && x.clients === r.clients && x.ok);
    if (!d || !r.ok || d.tps === undefined || r.tps === undefined) continue;
    r.ratioToDirect = r.tps / d.tps;
    // one client runs one query at a time: 1/tps is its mean latency, with more digits than pgbench prints
    if (r.clients === 1) r.addedLatencyUs = 1e6 / r.tps - 1e6 / d.tps;
  }
}

function table(results: BenchResult[]): string {
  const head = ['target', 'mode', 'clients', 'tps', 'lat ms', 'ratio', '+lat µs', 'cpu µs/q', 'status'];
  const rows = results.map((r) => [
    r.target, r.mode, String(r.clients), fmt(r.tps, 0), fmt(r.latencyMs, 3), fmt(r.ratioToDirect, 3),
    fmt(r.addedLatencyUs, 1), fmt(r.cpuUsPerQuery, 1), r.ok ? 'OK' : `FAIL ${r.error ?? ''}`.slice(0, 60),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((cell, i) => (i < 3 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  const pg = ensurePostgres({ install: false });
  const notes: string[] = [];
  const cluster = await setupCluster();
  let targets: Target[] = [];
  const cleanup = (): void => {
    for (const t of targets) t.server?.killSync();
    cluster.stopSync();
  };
  process.once('SIGINT', () => (cleanup(), process.exit(130)));
  process.once('SIGTERM', () => (cleanup(), process.exit(143)));
  try {
    targets = await startTargets(cluster, notes);
    if (config.warmup > 0) {
      for (const t of targets) await pgbench(cluster, t.port, ['-n', '-S', '-c', '4', '-j', '2'], config.warmup);
    }
    const results: BenchResult[] = [];
    for (const mode of config.modes) {
      for (const clients of config.clients) {
        for (const t of targets) {
          const r = await runOne(cluster, t, mode, clients);
          log(`${t.name.padEnd(8)} ${mode.padEnd(8)} c=${String(clients).padEnd(3)} tps=${fmt(r.tps, 0)} lat=${fmt(r.latencyMs, 3)}ms${r.ok ? '' : ` FAIL ${r.error ?? ''}`}`);
          results.push(r);
        }
      }
    }
    compareToDirect(results);
    const report = {
      startedAt,
      host: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, postgres: pg.major, loadavg: os.loadavg() },
      config: { duration: config.duration, warmup: config.warmup, scale: config.scale, modes: config.modes, clients: config.clients, targets: targets.map((t) => t.name) },
      notes,
      results,
    };
    const outDir = path.join(REPO_ROOT, 'bench', 'results');
    fs.mkdirSync(outDir, { recursive: true });
    const outFile = path.join(outDir, `${report.startedAt.replace(/[:.]/g, '-')}.json`);
    fs.writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`\npgbench -n -S -T ${config.duration} (scale ${config.scale}), ${os.cpus().length} cores shared by pgbench, PostgreSQL and the proxy\n`);
    process.stdout.write(`${table(results)}\n`);
    for (const n of notes) process.stdout.write(`note: ${n}\n`);
    process.stdout.write(`ratio = tps / direct tps (same mode+clients); +lat µs = added latency per query vs direct (1-client rows, from 1/tps); cpu µs/q = proxy CPU (user+sys) per transaction\nresults: ${outFile}\n`);
  } finally {
    for (const t of targets) await t.server?.stop();
    await cluster.stop();
    log(`cluster stopped; data kept in ${CLUSTER_DIR} (npm run bench -- --reuse reuses it)`);
  }
}

void main().catch((err: unknown) => {
  process.stderr.write(`[bench] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
