#!/usr/bin/env node
// scripts/run-tests.js — what `npm test` runs after the build: check that the PostgreSQL server
// binaries the integration tests need are there (installing them only on CI as root), then run
// `node --test` over dist/test/unit (several files at once: they start no servers), then the
// integration files and the extra passes below (the client suites again with other settings) as
// one queue of (file, environment) jobs, up to two at a time on a machine with two cores or more:
// each integration file starts its own clusters on free ports, and keeps about one core busy on
// average (the rest is waiting: servers starting, health-check periods, timeouts). A second job
// starts beside a running one only while the CPU has room (IDLE_MIN idle): on a machine busy with
// other work the files run one at a time, as they always did. The longest jobs
// start first (durations of the last run, else the estimates in EXPECTED_SECONDS), so the run
// does not end with one long file alone. Each job's TAP output is printed whole when it ends
// (never interleaved), with its time; a summary of the failures and the per-pass times ends the run.
// PGMAITRE_TEST_JOBS=1 runs one integration file at a time (output streamed, as before).
// Extra arguments are passed to node --test; arguments that are not options replace the default
// test directories and run one file at a time (e.g. `npm test -- dist/test/integration/cluster.test.js`).
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

function checkPostgres() {
  const { ensurePostgres } = require(path.join(root, 'dist/src/demo/postgres-bin.js'));
  const install = typeof process.getuid === 'function' && process.getuid() === 0 && Boolean(process.env.CI);
  try {
    const pg = ensurePostgres({ install });
    console.log(`run-tests: PostgreSQL ${pg.major} server binaries in ${pg.binDir}`);
  } catch (err) {
    console.error(`run-tests: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}

const CORES = Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
/** How many unit test files run at once: the cores (at most 4), at least 1. */
const UNIT_CONCURRENCY = Math.min(4, CORES);
/** How many integration jobs run at once: PGMAITRE_TEST_JOBS, else 2 with two cores or more. */
const INTEGRATION_JOBS = (() => {
  const v = Number(process.env.PGMAITRE_TEST_JOBS);
  return Number.isInteger(v) && v >= 1 ? v : Math.min(2, CORES);
})();

/** Integration files run with no other job beside them (see runJobs). */
const ALONE = new Set(['chaos.test.js', 'hostile-input.test.js', 'workers.test.js']);

/** The share of the CPU that must have been idle (over IDLE_WINDOW_MS) to start a job beside a running one. */
const IDLE_MIN = 0.35;
const IDLE_WINDOW_MS = 5000;

/** () => share of CPU time idle over about the last IDLE_WINDOW_MS (all cores; os.cpus() times, sampled every 500 ms). */
function cpuIdleMeter() {
  const sample = () => {
    let idle = 0;
    let total = 0;
    for (const c of os.cpus()) {
      idle += c.times.idle;
      total += c.times.user + c.times.nice + c.times.sys + c.times.idle + c.times.irq;
    }
    return { at: Date.now(), idle, total };
  };
  const samples = [sample()];
  const timer = setInterval(() => {
    samples.push(sample());
    while (samples.length > 2 && samples[1].at <= Date.now() - IDLE_WINDOW_MS) samples.shift();
  }, 500);
  timer.unref();
  return () => {
    const a = samples[0];
    const b = sample();
    // too short a window says nothing yet: count it as busy
    if (b.at - a.at < IDLE_WINDOW_MS / 2 || b.total <= a.total) return 0;
    return (b.idle - a.idle) / (b.total - a.total);
  };
}

/** Client suites that run again with PGMAITRE_TEST_POOL_MODE=transaction (test/harness/in-process.ts). */
const TRANSACTION_POOLING_SUITES = [
  'clients-psql', 'clients-pgbench', 'clients-node-postgres', 'clients-psycopg2', 'clients-jdbc', 'core-protocol', 'pgpool-conformance',
];

/**
 * Client suites that run again with PGMAITRE_TEST_WORKERS=2 (worker_processes = 2, docs/workers.md):
 * the drivers that matter most; the others add little that these do not cover.
 */
const WORKER_SUITES = ['clients-psql', 'clients-pgbench', 'clients-node-postgres', 'core-protocol'];
/** Driver suites that run again with PGMAITRE_TEST_QUERY_CACHE=shmem (test/harness/in-process.ts). */
const QUERY_CACHE_SUITES = ['clients-node-postgres', 'clients-psycopg2', 'clients-jdbc'];

/** The passes after the unit tests: [label, environment, files (basenames), or null for all of dist/test/integration]. */
const PASSES = [
  ['integration', {}, null],
  ['pool_mode = transaction', { PGMAITRE_TEST_POOL_MODE: 'transaction' }, TRANSACTION_POOLING_SUITES],
  ['worker_processes = 2', { PGMAITRE_TEST_WORKERS: '2' }, WORKER_SUITES],
  ['memory_cache_enabled = on', { PGMAITRE_TEST_QUERY_CACHE: 'shmem' }, QUERY_CACHE_SUITES],
];

/**
 * Seconds a job took in CI (docs/testing.md), for the order of the first run on a machine; later
 * runs order by what they measured (DURATIONS_FILE). Files not listed count as 5 s.
 */
const EXPECTED_SECONDS = {
  'integration chaos': 110, 'integration online-recovery': 42, 'integration txpool-fuzz': 33, 'integration auth': 27,
  'integration status-charts': 25, 'integration transaction-pooling': 22, 'integration workers': 22, 'integration hostile-input': 22,
  'integration admin-http': 21, 'integration troubleshooting': 20, 'integration failover-e2e': 20, 'integration admin-pcp': 20,
  'integration routing-pgbench': 18, 'integration auth-md5-backend': 16, 'integration txpool-repros': 14,
  'integration query-cache-memcached': 13, 'integration direct-parity': 13, 'integration bounds': 13, 'integration ha-pair': 12,
  'integration pgpool-conformance': 12, 'pool_mode = transaction pgpool-conformance': 12,
};
const DEFAULT_SECONDS = 5;
/** Where the per-job durations of the last run are kept (outside the tree, like the cluster templates). */
const DURATIONS_FILE = path.join(os.tmpdir(), 'pgmaitre-test-durations.json');

function readDurations() {
  try {
    const d = JSON.parse(fs.readFileSync(DURATIONS_FILE, 'utf8'));
    return d && typeof d === 'object' ? d : {};
  } catch {
    return {};
  }
}

function writeDurations(measured) {
  try {
    fs.writeFileSync(DURATIONS_FILE, `${JSON.stringify({ ...readDurations(), ...measured }, null, 1)}\n`);
  } catch {
    // only an ordering hint
  }
}

/** `# pass N` etc. from the end of a node --test TAP stream. */
function tapCounts(text) {
  const n = (k) => Number(new RegExp(`^# ${k} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  return { tests: n('tests'), pass: n('pass'), fail: n('fail'), cancelled: n('cancelled'), skipped: n('skipped') };
}

const seconds = (ms) => (ms / 1000).toFixed(1);

function main() {
  checkPostgres();
  const extra = process.argv.slice(2);
  const options = extra.filter((a) => a.startsWith('-'));
  const targets = extra.filter((a) => !a.startsWith('-'));
  const running = new Set();
  let stopping = 0;
  for (const [sig, num] of [['SIGINT', 2], ['SIGTERM', 15]]) {
    // forward Ctrl-C / termination so the test files' exit hooks stop their clusters
    process.on(sig, () => {
      stopping = 128 + num;
      for (const child of running) child.kill(sig);
    });
  }
  const exitCode = (code, signal) => (signal ? 128 + (os.constants.signals[signal] ?? 0) : code ?? 1);

  /** `node --test` over files/directories, output inherited. */
  const run = (files, env, label, concurrency = 1) => new Promise((resolve) => {
    const args = ['--test', `--test-concurrency=${concurrency}`, ...options, ...files];
    console.log(`run-tests: ${label}node ${args.join(' ')}`);
    const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
    running.add(child);
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve(exitCode(code, signal));
    });
  });

  /**
   * The jobs [{ key, label, env, file }] up to `lanes` at a time, longest expected first. With one
   * lane the output streams through; with more, each job's output is printed whole when it ends.
   */
  const runJobs = async (jobs, lanes) => {
    const known = readDurations();
    const expected = (j) => known[j.key] ?? EXPECTED_SECONDS[j.key] ?? DEFAULT_SECONDS;
    const queue = lanes > 1 ? [...jobs].sort((a, b) => expected(b) - expected(a)) : [...jobs];
    const results = [];
    const measured = {};
    console.log(`run-tests: ${jobs.length} integration jobs, ${lanes > 1 ? `up to ${lanes} at a time (another beside a running one while ${IDLE_MIN * 100}% of the CPU is idle), longest first` : 'one at a time'} (PGMAITRE_TEST_JOBS=n to change)`);
    const one = (job) => new Promise((resolve) => {
      const args = ['--test', ...options, job.file];
      const env = { ...process.env, ...job.env };
      const envText = Object.entries(job.env).map(([k, v]) => `${k}=${v} `).join('');
      const started = Date.now();
      if (lanes === 1) console.log(`run-tests: [${job.label}] ${envText}node ${args.join(' ')}`);
      // one lane: the output streams through (and is kept for the counts); more: kept until the end
      const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', lanes === 1 ? 'inherit' : 'pipe'], env });
      running.add(child);
      const out = [];
      const err = [];
      child.stdout.on('data', (b) => {
        out.push(b);
        if (lanes === 1) process.stdout.write(b);
      });
      child.stderr?.on('data', (b) => err.push(b));
      child.on('close', (code, signal) => {
        running.delete(child);
        const ms = Date.now() - started;
        const text = Buffer.concat(out).toString();
        const status = exitCode(code, signal);
        if (lanes > 1) {
          console.log(`run-tests: [${job.label}] ${envText}node ${args.join(' ')} (${seconds(ms)} s${status ? `, exit ${status}` : ''})`);
          process.stdout.write(text);
          if (err.length) process.stderr.write(Buffer.concat(err));
        } else {
          console.log(`run-tests: [${job.label}] ${path.basename(job.file)}: ${seconds(ms)} s${status ? `, exit ${status}` : ''}`);
        }
        if (!stopping && (status === 0 || status === 1)) measured[job.key] = Math.round(ms / 100) / 10;
        results.push({ job, ms, status, counts: tapCounts(text) });
        resolve();
      });
    });
    // The first job starts at once; another one alongside only while the CPU has room (IDLE_MIN
    // of it idle over the last seconds): on a machine busy with other work the jobs run one at a
    // time, as the files were written for, instead of slowing each other into their timeouts.
    // Files that measure behaviour under a storm they make themselves (ALONE) run with nothing
    // beside them: a second file's load turned their fault timing into failures (chaos.test's
    // terminate storms killed every login attempt, 57P03/08001, in a two-lane run).
    const active = new Set();
    const idle = cpuIdleMeter();
    let deferred = 0;
    let aloneRunning = false;
    while (queue.length > 0 && !stopping) {
      const next = queue[0];
      const nextAlone = ALONE.has(path.basename(next.file));
      if (active.size === 0 || (!nextAlone && !aloneRunning && active.size < lanes && idle() >= IDLE_MIN)) {
        if (nextAlone) aloneRunning = true;
        const p = one(queue.shift()).then(() => {
          active.delete(p);
          if (nextAlone) aloneRunning = false;
        });
        active.add(p);
        continue;
      }
      if (active.size < lanes) deferred++;
      await Promise.race([...active, new Promise((r) => setTimeout(r, 1000))]);
    }
    await Promise.all(active);
    if (lanes > 1) console.log(`run-tests: a second job waited for idle CPU ${deferred} s in all`);
    writeDurations(measured);
    return results;
  };

  (async () => {
    if (targets.length > 0) {
      const code = await run(targets, {}, '');
      process.exit(stopping || code);
    }
    const unitDir = 'dist/test/unit';
    const integrationDir = 'dist/test/integration';
    if (!fs.existsSync(path.join(root, unitDir)) && !fs.existsSync(path.join(root, integrationDir))) {
      console.error('run-tests: no compiled tests found (dist/test/unit, dist/test/integration); run `npm run build`');
      process.exit(1);
    }
    const begun = Date.now();
    let code = 0;
    const phases = [];
    if (fs.existsSync(path.join(root, unitDir))) {
      // Unit test files start no server and share nothing (ports 0, mkdtemp): as many at once as there are cores.
      const t = Date.now();
      code = await run([unitDir], {}, 'unit tests: ', UNIT_CONCURRENCY);
      phases.push(`unit ${seconds(Date.now() - t)} s`);
    }
    if (code < 128 && !stopping && fs.existsSync(path.join(root, integrationDir))) {
      const all = fs.readdirSync(path.join(root, integrationDir)).filter((f) => f.endsWith('.test.js')).sort();
      const jobs = [];
      for (const [label, env, suites] of PASSES) {
        const files = suites === null ? all : suites.map((s) => `${s}.test.js`).filter((f) => all.includes(f));
        for (const f of files) jobs.push({ key: `${label} ${f.replace(/\.test\.js$/, '')}`, label, env, file: `${integrationDir}/${f}` });
      }
      const t = Date.now();
      const results = await runJobs(jobs, INTEGRATION_JOBS);
      const wall = Date.now() - t;
      for (const r of results) code = Math.max(code, r.status);
      // per pass: file time (the sum of its jobs' times) and counts
      for (const [label] of PASSES) {
        const rs = results.filter((r) => r.job.label === label);
        if (rs.length === 0) continue;
        const sum = (k) => rs.reduce((a, r) => a + r.counts[k], 0);
        console.log(`run-tests: ${label}: ${rs.length} files, ${sum('tests')} tests, ${sum('pass')} pass, ${sum('fail')} fail, `
          + `${sum('cancelled')} cancelled, ${sum('skipped')} skipped; ${seconds(rs.reduce((a, r) => a + r.ms, 0))} s of file time`);
      }
      const slow = [...results].sort((a, b) => b.ms - a.ms).slice(0, 8).map((r) => `${r.job.key} ${seconds(r.ms)} s`);
      console.log(`run-tests: longest jobs: ${slow.join(', ')}`);
      phases.push(`integration and passes ${seconds(wall)} s (${INTEGRATION_JOBS > 1 ? `up to ${INTEGRATION_JOBS}` : 'one'} at a time)`);
      const failed = results.filter((r) => r.status !== 0);
      if (failed.length > 0) console.log(`run-tests: FAILED: ${failed.map((r) => `[${r.job.label}] ${r.job.file} (exit ${r.status})`).join(', ')}`);
    }
    console.log(`run-tests: ${phases.join(', ')}; ${seconds(Date.now() - begun)} s in all`);
    process.exit(stopping || code);
  })();
}

main();
