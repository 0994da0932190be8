#!/usr/bin/env node
// scripts/run-tests.js — what `npm test` runs after the build: check that the PostgreSQL server
// binaries the integration tests need are there (installing them only on CI as root), then run
// `node --test` over dist/test/unit (several files at once: they start no servers) and then
// dist/test/integration (one file at a time), then the extra passes below.
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

function main() {
  checkPostgres();
  const extra = process.argv.slice(2);
  const options = extra.filter((a) => a.startsWith('-'));
  let targets = extra.filter((a) => !a.startsWith('-'));
  const explicit = targets.length;
  if (targets.length === 0) {
    targets = ['dist/test/unit', 'dist/test/integration'].filter((d) => fs.existsSync(path.join(root, d)));
  }
  if (targets.length === 0) {
    console.error('run-tests: no compiled tests found (dist/test/unit, dist/test/integration); run `npm run build`');
    process.exit(1);
  }
  const run = (files, env, label, concurrency = 1) => new Promise((resolve) => {
    const args = ['--test', `--test-concurrency=${concurrency}`, ...options, ...files];
    console.log(`run-tests: ${label}node ${args.join(' ')}`);
    const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
    // forward Ctrl-C / termination so the test files' exit hooks stop their clusters
    const forward = (sig) => child.kill(sig);
    for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, forward);
    child.on('exit', (code, signal) => {
      for (const sig of ['SIGINT', 'SIGTERM']) process.off(sig, forward);
      resolve(signal ? 128 + (os.constants.signals[signal] ?? 0) : code ?? 1);
    });
  });
  (async () => {
    let code;
    if (explicit === 0 && targets.length === 2) {
      // Unit test files start no server and share nothing (ports 0, mkdtemp): as many at once as
      // there are cores. Integration files start clusters and time failovers: one at a time.
      code = await run([targets[0]], {}, 'unit tests: ', UNIT_CONCURRENCY);
      if (code < 128) code = Math.max(code, await run([targets[1]], {}, 'integration tests: '));
    } else {
      code = await run(targets, {}, '');
    }
    // The whole client suite runs a second time with transaction pooling (the default run only).
    if (explicit === 0 && code < 128) {
      const pooled = TRANSACTION_POOLING_SUITES.map((f) => `dist/test/integration/${f}.test.js`).filter((f) => fs.existsSync(path.join(root, f)));
      const second = await run(pooled, { PGMAITRE_TEST_POOL_MODE: 'transaction' }, 'with pool_mode = transaction: ');
      code = Math.max(code, second);
      // And with two worker processes (test/harness/in-process.ts: the CLI in a child process).
      if (code < 128) {
        const multi = WORKER_SUITES.map((f) => `dist/test/integration/${f}.test.js`).filter((f) => fs.existsSync(path.join(root, f)));
        const third = await run(multi, { PGMAITRE_TEST_WORKERS: '2' }, 'with worker_processes = 2: ');
        code = Math.max(code, third);
      }
      // The driver suites once more with the query cache on (what they read back must not change).
      const cached = QUERY_CACHE_SUITES.map((f) => `dist/test/integration/${f}.test.js`).filter((f) => fs.existsSync(path.join(root, f)));
      if (code < 128) code = Math.max(code, await run(cached, { PGMAITRE_TEST_QUERY_CACHE: 'shmem' }, 'with memory_cache_enabled = on: '));
    }
    process.exit(code);
  })();
}

/** How many unit test files run at once: the cores (at most 4), at least 1. */
const UNIT_CONCURRENCY = Math.max(1, Math.min(4, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length));

/** Client suites that run again with PGMAITRE_TEST_POOL_MODE=transaction (test/harness/in-process.ts). */
const TRANSACTION_POOLING_SUITES = [
  'clients-psql', 'clients-pgbench', 'clients-node-postgres', 'clients-psycopg2', 'clients-jdbc', 'core-protocol', 'pgpool-conformance',
];

/**
 * Client suites that run again with PGMAITRE_TEST_WORKERS=2 (worker_processes = 2, docs/workers.md):
 * the drivers that matter most, about 4 minutes; the others add little that these do not cover.
 */
const WORKER_SUITES = ['clients-psql', 'clients-pgbench', 'clients-node-postgres', 'core-protocol'];
/** Driver suites that run again with PGMAITRE_TEST_QUERY_CACHE=shmem (test/harness/in-process.ts). */
const QUERY_CACHE_SUITES = ['clients-node-postgres', 'clients-psycopg2', 'clients-jdbc'];

main();
