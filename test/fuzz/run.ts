/**
 * Long fuzz run: `npm run fuzz -- --seconds 300 [--seed N] [--concurrency N]`. Creates a
 * throw-away cluster, starts pgmaitre in this process, fuzzes it beside a well-behaved client,
 * and exits non-zero on an uncaught exception, a failed query, or a leaked slot/connection.
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
