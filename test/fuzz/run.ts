/**
 * Long fuzz runs.
 *
 * `npm run fuzz -- --seconds 300 [--seed N] [--concurrency N]` (the default mode, frontend):
 * creates a throw-away cluster, starts pgmaitre in this process, fuzzes it beside a well-behaved
 * client, and exits non-zero on an uncaught exception, a failed query, or a leaked slot/connection.
 *
 * `npm run fuzz -- --mode txpool --seconds 600 [--seed N] [--clients 8] [--pool N] [--pipelines] [--exclude a,b] [--shrink [--shrink-match REGEX]] [--self-check] [--timeout S]`:
 * the differential transaction-pooling fuzzer (test/fuzz/txpool/) over seeds N, N+1, ... (a
 * random N by default); every failing round is printed with its seed, and with --shrink the first
 * one is also shrunk to a minimal scenario (up to --shrink-seconds, default 300) that still fails
 * (with a report matching REGEX when --shrink-match is given). --self-check plays both sides on
 * direct connections: a divergence then is the fuzzer's own nondeterminism. --pipelines also draws
 * what drivers' pipelines send (grammar.ts: 'pipeline', 'extended-tx', 'describe-first'), which
 * gives every seed other scripts.
 */
import { createTestCluster } from '../harness/cluster';
import { eventually } from '../harness/in-process';
import { fuzzFrontend } from './frontend-fuzz';
import { FUZZ_ROLES, FUZZ_USERS, startFuzzTarget, wellBehavedClient } from './setup';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

let finished = false;
const crashes: unknown[] = [];
process.on('exit', () => {
  if (!finished) {
    console.error('fuzz: the event loop emptied before the run finished');
    for (const c of crashes) console.error('fuzz: uncaught', c);
    process.exitCode = 1;
  }
});

async function main(): Promise<void> {
  if (process.argv.includes('--mode') && process.argv[process.argv.indexOf('--mode') + 1] === 'txpool') {
    await txpool();
    return;
  }
  const seconds = arg('seconds', 60);
  const seed = arg('seed', Date.now() % 1_000_000);
  const concurrency = arg('concurrency', 16);
  process.on('uncaughtException', (e) => crashes.push(e));
  process.on('unhandledRejection', (e) => crashes.push(e));
  console.log(`fuzz: seed ${seed}, ${seconds} s, ${concurrency} workers; creating a cluster...`);
  const cluster = await createTestCluster({ standbys: 1, auth: 'scram-sha-256', users: FUZZ_ROLES });
  let failed = false;
  try {
    const px = await startFuzzTarget(cluster);
    try {
      const good = wellBehavedClient(px.port);
      const stats = await fuzzFrontend({ port: px.port, seconds, seed, users: FUZZ_USERS, concurrency });
      const g = await good.stop();
      console.log(`fuzz: ${stats.cases} cases; well-behaved client: ${g.queries} queries, ${g.errors.length} errors`);
      for (const e of g.errors.slice(0, 10)) console.log(`  client error: ${e}`);
      await eventually(() => px.app.ctx.slots.inUse === 0, 'client slots released', 10_000);
      await eventually(() => [...px.app.ctx.pools.values()].every((p) => p.counts().active === 0), 'no pooled connection leased', 10_000);
      console.log(`fuzz: no leak; pools ${JSON.stringify([...px.app.ctx.pools.values()].map((p) => p.counts()))}`);
      failed = g.errors.length > 0 || g.queries === 0;
    } finally {
      await px.stop();
    }
  } catch (e) {
    console.error(`fuzz: ${(e as Error).message}`);
    failed = true;
  } finally {
    await cluster.destroy();
  }
  finished = true;
  for (const c of crashes) console.error('fuzz: uncaught', c);
  if (failed || crashes.length > 0) process.exit(1);
  console.log('fuzz: ok');
}

void main();

async function txpool(): Promise<void> {
  const { formatRound, formatScenario, parseClasses, runRound, shrinkScenario, failedRound } = await import('./txpool/differential');
  const { generateScenario } = await import('./txpool/grammar');
  const seconds = arg('seconds', 300);
  const seed0 = arg('seed', Date.now() % 1_000_000_000);
  const pool = arg('pool', 0);
  const opts = { clients: arg('clients', 8), generations: arg('generations', 3), steps: arg('steps', 12), ...(pool > 0 ? { poolSize: pool } : {}),
    pipelines: process.argv.includes('--pipelines') };
  const i = process.argv.indexOf('--exclude');
  const exclude = parseClasses(i >= 0 ? process.argv[i + 1] : undefined);
  console.log(`fuzz txpool: seeds from ${seed0}, ${seconds} s, ${opts.clients} clients; creating a cluster...`);
  const cluster = await createTestCluster({ standbys: 0 });
  let failures = 0;
  let rounds = 0;
  try {
    const started = Date.now();
    for (let seed = seed0; Date.now() - started < seconds * 1000; seed++) {
      const r = await runRound({ seed, cluster, ...opts, exclude, selfCheck: process.argv.includes('--self-check'), timeoutMs: arg('timeout', 60) * 1000 });
      rounds++;
      if (!failedRound(r)) { console.log(`fuzz txpool: seed ${seed} ok (${r.steps} steps, pool ${r.poolSize}, ${r.ms} ms)`); continue; }
      failures++;
      console.log(formatRound(r, 10));
      if (process.argv.includes('--shrink') && failures === 1) {
        const mi = process.argv.indexOf('--shrink-match');
        const match = mi >= 0 ? new RegExp(process.argv[mi + 1] ?? '') : null;
        const small = await shrinkScenario(generateScenario(seed, { ...opts, exclude }), { cluster, timeoutMs: arg('timeout', 60) * 1000 }, arg('shrink-seconds', 300) * 1000, (m) => console.log(`fuzz txpool: ${m}`), 2,
          match ? (x) => match.test(formatRound(x, 100)) : undefined);
        console.log(formatScenario(small));
        const again = await (await import('./txpool/differential')).runScenario(small, { cluster, timeoutMs: arg('timeout', 60) * 1000 });
        console.log(formatRound(again, 10));
      }
    }
  } finally {
    await cluster.destroy();
  }
  finished = true;
  console.log(`fuzz txpool: ${rounds} round(s), ${failures} failed`);
  if (failures > 0 || crashes.length > 0) process.exit(1);
}
