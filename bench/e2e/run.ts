// run.ts — `npm run bench`: end-to-end pgbench of pgmaitre vs a direct connection vs a bare Node
// TCP pipe, side by side in one run, compared with the saved baseline (bench/baseline.json).
// A primary + 2 standbys cluster lives in BENCH_DIR (rebuilt each run, or reused with
// --reuse) with `pgbench -i -s 10`. For each mode and client count, BENCH_ROUNDS rounds each run
// every target back to back with `pgbench -n -S`, so the runs compared are adjacent in time; each
// round's proxy runs are paired with that round's direct run (ratio, added latency) and every
// figure reported is the median over the rounds. Proxies are charged CPU µs per query from
// /proc/<pid>/stat. Then the flooding client (flood.ts) writes 1 MB queries for
// BENCH_FLOOD_SECONDS into a fresh pgmaitre (and a fresh pipe) per round: RSS growth in MB.
// Results go to bench/results/latest.json (gitignored) and are compared line by line with
// bench/baseline.json (compare.ts; noise bands there).
// Flags: --reuse (keep the cluster), --save-baseline (or BENCH_SAVE_BASELINE=1: overwrite the
// baseline with this run), --fail-on-regression (or BENCH_FAIL_ON_REGRESSION=1: exit 1 on one).
// Env: BENCH_DURATION (10 s), BENCH_ROUNDS (3), BENCH_MODES (simple,extended,prepared),
// BENCH_CLIENTS (1,16,64), BENCH_TARGETS (direct,pipe,pgmaitre), BENCH_WARMUP (2 s, 0 = none),
// BENCH_SCALE (10), BENCH_WEIGHTS (backend weights for pgmaitre, default 1,0,0),
// BENCH_FLOOD_SECONDS (5, 0 = no flood), BENCH_BASELINE (bench/baseline.json),
// BENCH_DIR (/tmp/pgmaitre-bench: the cluster; another directory lets two benches run at once).
// The machine has 2 shared cores: compare ratios within a run, not absolute tps across runs.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnServer, type ServerProcess } from '../../src/demo/child-server';
import { createCluster, destroyClusterDir, postmasterPid, type Cluster } from '../../src/demo/cluster';
import { freePorts } from '../../src/demo/free-port';
import { runCommand } from '../../src/demo/pg-exec';
import { ensurePostgres } from '../../src/demo/postgres-bin';
import { printComparison } from './compare';
import { runFlood, type FloodSample } from './flood';
import { parsePgbench, processCpuMicros } from './pgbench-output';
import {
  ALL_TARGETS, REPORT_SCHEMA, pairWithinRounds, summarise, summariseFlood,
  type BenchReport, type BenchRow, type FloodRow, type RoundSample, type TargetName,
} from './results';

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const CLUSTER_DIR = path.resolve(process.env['BENCH_DIR'] ?? path.join(os.tmpdir(), 'pgmaitre-bench'));
const RESULTS_DIR = path.join(REPO_ROOT, 'bench', 'results');

/** One endpoint pgbench is pointed at. */
interface Target {
  readonly name: TargetName;
  readonly port: number;
  /** The proxy process to charge CPU to (none for direct). */
  readonly server?: ServerProcess;
}

function list(env: string, def: string): string[] {
  return (process.env[env] ?? def).split(/[\s,]+/).filter(Boolean);
}

function flag(arg: string, env: string): boolean {
  return process.argv.includes(arg) || process.env[env] === '1';
}

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

const config = {
  duration: Number(process.env['BENCH_DURATION'] ?? 10),
  warmup: Number(process.env['BENCH_WARMUP'] ?? 2),
  scale: Number(process.env['BENCH_SCALE'] ?? 10),
  rounds: Math.max(1, Number(process.env['BENCH_ROUNDS'] ?? 3)),
  modes: list('BENCH_MODES', 'simple,extended,prepared'),
  clients: list('BENCH_CLIENTS', '1,16,64').map(Number),
  targets: list('BENCH_TARGETS', ALL_TARGETS.join(',')) as TargetName[],
  reuse: process.argv.includes('--reuse'),
  // Default 1,0,0: every read on the primary, so pgmaitre is compared with the direct primary on
  // equal terms while still classifying and routing every query. 0,1,1 spreads reads on standbys.
  weights: list('BENCH_WEIGHTS', '1,0,0').map(Number),
  floodSeconds: Number(process.env['BENCH_FLOOD_SECONDS'] ?? 5),
  baseline: path.resolve(process.env['BENCH_BASELINE'] ?? path.join(REPO_ROOT, 'bench', 'baseline.json')),
  saveBaseline: flag('--save-baseline', 'BENCH_SAVE_BASELINE'),
  failOnRegression: flag('--fail-on-regression', 'BENCH_FAIL_ON_REGRESSION'),
};

/** Every server child alive now, so a signal can kill them all (by pid, through their handles). */
const live = new Set<ServerProcess>();

async function track(p: Promise<ServerProcess>): Promise<ServerProcess> {
  const s = await p;
  live.add(s);
  return s;
}

async function stopServer(s: ServerProcess | undefined): Promise<void> {
  if (!s) return;
  await s.stop();
  live.delete(s);
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

/** Which pgmaitre is measured: the last commit that changed its code, and whether the tree differs from it. */
function commitInfo(): BenchReport['commit'] {
  const measuredPaths = ['src', 'bin', 'package-lock.json'];
  const measured = git(['log', '-1', '--format=%H', '--', ...measuredPaths]);
  return {
    head: git(['rev-parse', 'HEAD']),
    measured,
    subject: git(['log', '-1', '--format=%s', measured]),
    dirty: git(['status', '--porcelain', '--', ...measuredPaths]) !== '',
  };
}

async function setupCluster(): Promise<Cluster> {
  const settings = { shared_buffers: '256MB', max_connections: 200 };
  // never stop a cluster another bench (another worktree) is running in the same directory
  const running = fs.existsSync(CLUSTER_DIR) ? fs.readdirSync(CLUSTER_DIR).map((d) => postmasterPid(path.join(CLUSTER_DIR, d))).filter((p) => p !== undefined) : [];
  if (running.length > 0) {
    throw new Error(`PostgreSQL is running in ${CLUSTER_DIR} (pid ${running.join(', ')}): another bench is using it; wait, or set BENCH_DIR to another directory`);
  }
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
    `num_init_children = ${Math.max(64, ...config.clients) + 8}`,
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

/** Start pgmaitre over the cluster in its own directory (config, pid file, sockets) on fresh ports. */
async function startPgmaitre(c: Cluster, dirName: string): Promise<ServerProcess> {
  const [port = 0, pcpPort = 0] = await freePorts(2);
  const dir = path.join(CLUSTER_DIR, dirName);
  fs.mkdirSync(dir, { recursive: true });
  const conf = path.join(dir, 'pgpool.conf');
  fs.writeFileSync(conf, pgmaitreConf(c, port, pcpPort, dir));
  return track(spawnServer({
    name: 'pgmaitre',
    cmd: process.execPath,
    args: [path.join(REPO_ROOT, 'bin', 'pgmaitre.js'), '-n', '-f', conf],
    port,
    cwd: dir,
  }));
}

/** Start the bare Node pipe to the primary on a fresh port. */
async function startPipe(c: Cluster): Promise<ServerProcess> {
  const [port = 0] = await freePorts(1);
  return track(spawnServer({
    name: 'node-pipe',
    cmd: process.execPath,
    args: [path.join(__dirname, 'node-pipe.js'), String(port), String(c.primary.port)],
    port,
  }));
}

function firstLines(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n').slice(0, 4).join(' | ');
}

async function startTargets(c: Cluster, notes: string[]): Promise<Target[]> {
  const targets: Target[] = [];
  for (const name of config.targets) {
    if (name === 'direct') {
      targets.push({ name, port: c.primary.port });
    } else if (name === 'pipe') {
      const server = await startPipe(c);
      targets.push({ name, port: server.port, server });
    } else if (name === 'pgmaitre') {
      try {
        const server = await startPgmaitre(c, 'pgmaitre');
        targets.push({ name, port: server.port, server });
      } catch (err) {
        notes.push(`pgmaitre skipped: ${firstLines(err)}`);
        log(`pgmaitre skipped: ${firstLines(err)}`);
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

async function runOne(c: Cluster, t: Target, mode: string, clients: number, round: number): Promise<RoundSample> {
  const args = ['-n', '-S', '-M', mode, '-c', String(clients), '-j', String(Math.min(clients, 2))];
  const cpu0 = t.server ? processCpuMicros(t.server.pid) : 0;
  const { out, code } = await pgbench(c, t.port, args, config.duration);
  const cpu1 = t.server?.alive() ? processCpuMicros(t.server.pid) : cpu0;
  const s = parsePgbench(out);
  const ok = code === 0 && s.tps !== undefined && s.failed === 0 && s.aborted === 0;
  const cpuUsPerQuery = t.server && s.transactions > 0 ? (cpu1 - cpu0) / s.transactions : undefined;
  return { ...s, error: ok ? undefined : (s.error ?? out.split('\n')[0]), target: t.name, mode, clients, round, exitCode: code, ok, cpuUsPerQuery };
}

/** Flood a fresh proxy of each kind once per round; each round gets a new process so growth starts from the same state. */
async function floodAll(c: Cluster, notes: string[]): Promise<FloodRow[]> {
  const rows: FloodRow[] = [];
  if (config.floodSeconds <= 0) return rows;
  for (const target of config.targets.filter((t): t is 'pipe' | 'pgmaitre' => t === 'pipe' || t === 'pgmaitre')) {
    const samples: FloodSample[] = [];
    let error: string | undefined;
    for (let round = 1; round <= config.rounds && error === undefined; round++) {
      let server: ServerProcess | undefined;
      try {
        server = target === 'pipe' ? await startPipe(c) : await startPgmaitre(c, 'pgmaitre-flood');
        const s = await runFlood({ port: server.port, pid: server.pid, seconds: config.floodSeconds, user: 'postgres', database: 'postgres' });
        samples.push(s);
        log(`flood    ${target.padEnd(8)} r=${round} RSS ${s.beforeMb.toFixed(1)} → ${s.peakMb.toFixed(1)} MB (+${s.growthMb.toFixed(1)}), ${s.sent} × 1 MB sent, ${s.answered} answered${s.closedEarly ? `, ended early: ${s.closedEarly}` : ''}`);
        if (s.closedEarly) notes.push(`flood ${target} round ${round} ended early: ${s.closedEarly}`);
        if (server && !server.alive()) error = `${target} died under the flood`;
      } catch (err) {
        error = firstLines(err);
        log(`flood    ${target.padEnd(8)} r=${round} FAIL ${error}`);
      } finally {
        await stopServer(server);
      }
    }
    rows.push(summariseFlood(target, config.floodSeconds, samples, error));
  }
  return rows;
}

function fmt(v: number | undefined, digits: number): string {
  return v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);
}

function spreadPct(r: BenchRow): string {
  if (!r.tpsRange || !r.tps) return '-';
  return `±${(((r.tpsRange[1] - r.tpsRange[0]) / 2 / r.tps) * 100).toFixed(0)}%`;
}

function table(head: string[], rows: string[][], leftCols: number): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((cell, i) => (i < leftCols ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function resultsTable(results: readonly BenchRow[]): string {
  const head = ['target', 'mode', 'clients', 'tps', 'spread', 'lat ms', 'ratio', '+lat µs', 'cpu µs/q', 'cpu/pipe', 'status'];
  const rows = results.map((r) => [
    r.target, r.mode, String(r.clients), fmt(r.tps, 0), spreadPct(r), fmt(r.latencyMs, 3), fmt(r.ratioToDirect, 3),
    fmt(r.addedLatencyUs, 1), fmt(r.cpuUsPerQuery, 1), fmt(r.cpuVsPipe, 2), r.ok ? 'OK' : `FAIL ${r.error ?? ''}`.slice(0, 60),
  ]);
  return table(head, rows, 3);
}

function floodTable(flood: readonly FloodRow[]): string {
  const head = ['target', 'RSS before MB', 'peak MB', 'growth MB', 'per round', 'status'];
  const rows = flood.map((f) => [
    f.target, fmt(f.beforeMb, 1), fmt(f.peakMb, 1), fmt(f.growthMb, 1), f.samples.map((s) => s.growthMb.toFixed(1)).join(' '), f.ok ? 'OK' : `FAIL ${f.error ?? ''}`.slice(0, 60),
  ]);
  return table(head, rows, 1);
}

function writeJson(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

async function main(): Promise<number> {
  const startedAt = new Date().toISOString();
  const loadavgStart = os.loadavg();
  const pg = ensurePostgres({ install: false });
  const commit = commitInfo();
  const notes: string[] = [];
  if (commit.dirty) notes.push('uncommitted changes under src/, bin/ or package-lock.json were measured');
  const cluster = await setupCluster();
  const cleanup = (): void => {
    for (const s of live) s.killSync();
    cluster.stopSync();
  };
  process.once('SIGINT', () => (cleanup(), process.exit(130)));
  process.once('SIGTERM', () => (cleanup(), process.exit(143)));
  let report: BenchReport;
  try {
    const targets = await startTargets(cluster, notes);
    if (config.warmup > 0) {
      for (const t of targets) await pgbench(cluster, t.port, ['-n', '-S', '-c', '4', '-j', '2'], config.warmup);
    }
    const samples: RoundSample[] = [];
    for (const mode of config.modes) {
      for (const clients of config.clients) {
        for (let round = 1; round <= config.rounds; round++) {
          for (const t of targets) {
            const r = await runOne(cluster, t, mode, clients, round);
            log(`${t.name.padEnd(8)} ${mode.padEnd(8)} c=${String(clients).padEnd(3)} r=${round} tps=${fmt(r.tps, 0)} lat=${fmt(r.latencyMs, 3)}ms cpu=${fmt(r.cpuUsPerQuery, 1)}µs/q${r.ok ? '' : ` FAIL ${r.error ?? ''}`}`);
            samples.push(r);
          }
        }
      }
    }
    for (const t of targets) await stopServer(t.server);
    pairWithinRounds(samples);
    const flood = await floodAll(cluster, notes);
    report = {
      schema: REPORT_SCHEMA,
      startedAt,
      commit,
      host: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, postgres: pg.major, loadavgStart, loadavgEnd: os.loadavg() },
      config: {
        duration: config.duration, warmup: config.warmup, scale: config.scale, rounds: config.rounds, modes: config.modes,
        clients: config.clients, targets: targets.map((t) => t.name), weights: config.weights, floodSeconds: config.floodSeconds,
      },
      notes,
      results: summarise(samples),
      flood,
      samples,
    };
  } finally {
    for (const s of [...live]) await stopServer(s);
    await cluster.stop();
    log(`cluster stopped; data kept in ${CLUSTER_DIR} (npm run bench -- --reuse reuses it)`);
  }

  const stamped = path.join(RESULTS_DIR, `${startedAt.replace(/[:.]/g, '-')}.json`);
  const latest = path.join(RESULTS_DIR, 'latest.json');
  writeJson(stamped, report);
  writeJson(latest, report);
  const out = (s: string): void => void process.stdout.write(s);
  out(`\npgbench -n -S -T ${config.duration} (scale ${config.scale}), median of ${config.rounds} round(s), ${os.cpus().length} cores shared by pgbench, PostgreSQL and the proxy\n`);
  out(`pgmaitre ${commit.measured.slice(0, 10)} (${commit.subject})${commit.dirty ? ' + uncommitted changes' : ''}, backend weights ${config.weights.join(',')}\n`);
  out(`${resultsTable(report.results)}\n`);
  out('ratio = tps / direct tps (same mode, clients and round); +lat µs = added latency per query vs direct (1-client rows, from 1/tps); cpu µs/q = proxy CPU (user+sys) per transaction; cpu/pipe = that divided by the bare pipe cpu µs/q of the same round; spread = half the tps range over the rounds\n');
  if (report.flood.length > 0) {
    out(`\nflooding client: one connection pipelining 1 MB queries for ${config.floodSeconds} s into a fresh proxy, each round\n${floodTable(report.flood)}\n`);
  }
  for (const n of notes) out(`note: ${n}\n`);
  out(`results: ${path.relative(process.cwd(), latest)} (also ${path.relative(process.cwd(), stamped)})\n`);

  let regressed = false;
  const baselineLabel = path.relative(process.cwd(), config.baseline) || config.baseline;
  if (fs.existsSync(config.baseline)) {
    const baseline = JSON.parse(fs.readFileSync(config.baseline, 'utf8')) as BenchReport;
    regressed = printComparison(baseline, report, baselineLabel, out);
  } else {
    out(`\nno baseline at ${baselineLabel}: \`npm run bench -- --save-baseline\` saves this kind of run as one\n`);
  }
  if (config.saveBaseline) {
    writeJson(config.baseline, report);
    out(`baseline saved: ${baselineLabel} (pgmaitre ${commit.measured.slice(0, 10)})\n`);
  }
  return regressed && config.failOnRegression ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`[bench] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
