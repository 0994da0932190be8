/**
 * Transaction pooling that is never wrong (issue 17), against a real primary: two or more real
 * clients share ONE backend connection (default_pool_size = 1), and none of them sees what
 * another left there, and no client can end the process. Each test is a scenario of the review
 * of 2026-12-07 (H1-H4, M4, M6, L1) or an item of the issue; the unit tests beside the core
 * (test/unit/core/pooled-sharing.test.ts) cover the same rules byte by byte.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess } from '../harness/in-process';
import { exec } from '../harness/exec';
import { Planner } from '../../src/core/planner';

describe('transaction pooling: clients sharing one connection', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 0 });
  let px: InProcess;

  before(async () => {
    px = await startInProcess(`${backendLines(fx.cluster, [1])}\nenable_pool_hba = off\npool_mode = transaction\n`
      + "default_pool_size = 1\nreserve_pool_size = 0\nquery_wait_timeout = 20\nsr_check_user = 'postgres'\nhealth_check_period = 5\nhealth_check_user = 'postgres'\n");
  });
  after(async () => { await px?.stop(); });

  function client(): Client {
    const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
    c.on('error', () => {});
    return c;
  }

  async function connected(n: number): Promise<Client[]> {
    const cs = Array.from({ length: n }, () => client());
    await Promise.all(cs.map((c) => c.connect()));
    return cs;
  }

  /** Backend connections pgmaitre holds to the primary (one, shared). */
  const backends = (): number => px.app.ctx.pools.get(0)!.counts().total;

  test('H1: psql -c "/* app */ PREPARE p AS SELECT 1" -c "EXECUTE p" works, and nobody else is dropped', async () => {
    const [other] = await connected(1);
    const r = await exec(fx.cluster.pg.bin('psql'), ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(px.port), '-U', 'postgres', '-d', 'postgres',
      '-c', '/* app */ PREPARE p AS SELECT 1', '-c', 'EXECUTE p'], { env: { ...process.env, PGCONNECT_TIMEOUT: '10' } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^1$/m);
    // Another client's own "p" is another statement on the same connection.
    await other!.query('-- mine\nPREPARE p AS SELECT 2');
    assert.equal((await other!.query('EXECUTE p')).rows[0]['?column?'], 2);
    await other!.end();
  });

  test('item 1: an exception inside one session ends it with FATAL XX000; the other clients and the process go on', async () => {
    const [victim, bystander] = await connected(2);
    const make = Planner.prototype.make;
    Planner.prototype.make = function (this: Planner, ...args: Parameters<typeof make>) {
      if (args[1].queries.some((q) => q.includes('pgm_injected_fault'))) throw new TypeError('injected fault');
      return make.apply(this, args);
    };
    try {
      await victim!.query('BEGIN');
      await assert.rejects(victim!.query("SELECT 'pgm_injected_fault'"), (e: Error & { code?: string; severity?: string }) => e.code === 'XX000' && e.severity === 'FATAL');
    } finally {
      Planner.prototype.make = make;
    }
    // The victim's connection (in a transaction) was closed, not handed on: the bystander gets a clean one.
    assert.equal((await bystander!.query('SELECT 1 AS v')).rows[0].v, 1);
    assert.equal((await bystander!.query("SELECT current_setting('transaction_isolation') AS t, now() = statement_timestamp() AS fresh")).rows[0].fresh, true);
    assert.match(px.logs(), /session_crash[^\n]*injected fault/);
    assert.equal((px.logs().match(/injected fault/g) ?? []).length >= 1, true);
    await bystander!.end();
  });

  for (const [what, take, check] of [
    ['a session advisory lock', 'SELECT pg_advisory_lock(4242)', "SELECT pg_try_advisory_lock(4242) AS ok"],
    ['LISTEN', 'LISTEN tp_left', "SELECT count(*) = 0 AS ok FROM pg_listening_channels()"],
    ['a temporary table', 'CREATE TEMP TABLE person (id int)', 'CREATE TEMP TABLE person (id int); SELECT true AS ok'],
  ] as const) {
    test(`H4: ${what} does not survive its client's disconnect (the next client on that connection starts clean)`, async () => {
      const [a] = await connected(1);
      await a!.query(take);
      await a!.end();
      await new Promise((r) => setTimeout(r, 200));
      const [b] = await connected(1);
      const r = await b!.query(check);
      const rows = Array.isArray(r) ? r.at(-1)!.rows : r.rows;
      assert.equal(rows[0].ok, true);
      assert.equal(backends(), 1, 'one connection, reset and shared');
      await b!.query('SELECT pg_advisory_unlock_all(); DISCARD TEMP; UNLISTEN *');
      await b!.end();
    });
  }

  test('H4: no advisory lock held by an idle pooled connection once its client left (pg_locks)', async () => {
    const [a] = await connected(1);
    await a!.query('SELECT pg_advisory_lock(7171)');
    await a!.end();
    await new Promise((r) => setTimeout(r, 200));
    const held = await fx.cluster.psql('primary', "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 7171");
    assert.equal(held.trim(), '0');
  });

  test('M4: pg_advisory_lock(1), pg_advisory_lock(2), then pg_advisory_unlock(1) keeps the client pinned (lock 2 is held)', async () => {
    const [a, b] = await connected(2);
    await a!.query('SELECT pg_advisory_lock(81), pg_advisory_lock(82)');
    await a!.query('SELECT pg_advisory_unlock(81)');
    assert.equal(px.app.ctx.poolStats.pinnedNow, 1);
    await a!.query('SELECT pg_advisory_unlock_all()');
    assert.equal(px.app.ctx.poolStats.pinnedNow, 0);
    assert.equal((await b!.query('SELECT pg_try_advisory_lock(82) AS ok')).rows[0].ok, true);
    await b!.query('SELECT pg_advisory_unlock_all()');
    await Promise.all([a!.end(), b!.end()]);
  });

  test('M6: a temporary-table pin lifts once no temporary relation is left, and the connection is shared again', async () => {
    const [a, b] = await connected(2);
    await a!.query('CREATE TEMP TABLE scratch (x int)');
    assert.equal(px.app.ctx.poolStats.pinnedNow, 1);
    await a!.query('DROP TABLE scratch');
    await a!.query('SELECT 1');
    assert.equal(px.app.ctx.poolStats.pinnedNow, 0);
    // default_pool_size = 1: b is served at once, on the connection a gave back.
    assert.equal((await b!.query('SELECT 2 AS v')).rows[0].v, 2);
    await a!.query('BEGIN; CREATE TEMP TABLE etl (x int) ON COMMIT DROP; COMMIT');
    await a!.query('SELECT 1');
    assert.equal(px.app.ctx.poolStats.pinnedNow, 0, 'ON COMMIT DROP left nothing');
    await Promise.all([a!.end(), b!.end()]);
  });

  test('H2: a named statement whose Parse failed is parsed again by the next client (no 26000)', async () => {
    const [a, b] = await connected(2);
    await fx.cluster.psql('primary', 'DROP TABLE IF EXISTS tp_later');
    await assert.rejects(a!.query({ name: 'later', text: 'SELECT count(*)::int AS n FROM tp_later' }), (e: Error & { code?: string }) => e.code === '42P01');
    await fx.cluster.psql('primary', 'CREATE TABLE tp_later (x int)');
    assert.equal((await b!.query({ name: 'later_b', text: 'SELECT count(*)::int AS n FROM tp_later' })).rows[0].n, 0);
    await Promise.all([a!.end(), b!.end()]);
  });

  test('L1: set_config(..., false) pins the client (its setting never reaches another client)', async () => {
    const [a, b] = await connected(2);
    await a!.query("SELECT set_config('app.tenant', 'a', false)");
    assert.equal(px.app.ctx.poolStats.pinnedNow, 1);
    await a!.end();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await b!.query("SELECT current_setting('app.tenant', true) AS t")).rows[0].t ?? '', '');
    await b!.end();
  });

  test('max_prepared_statements: many distinct statements on one connection stay bounded and keep working', async () => {
    const p = await startInProcess(`${backendLines(fx.cluster, [1])}\nenable_pool_hba = off\npool_mode = transaction\ndefault_pool_size = 1\nmax_prepared_statements = 5\nsr_check_user = 'postgres'\nhealth_check_period = 5\nhealth_check_user = 'postgres'\n`);
    try {
      const cs = await Promise.all([0, 1].map(async () => {
        const c = new Client({ host: '127.0.0.1', port: p.port, user: 'postgres', database: 'postgres' });
        await c.connect();
        return c;
      }));
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < 12; i++) {
          const r = await cs[i % 2]!.query({ name: `s${i}`, text: `SELECT ${i}::int AS v, $1::int AS w`, values: [round] });
          assert.deepEqual(r.rows[0], { v: i, w: round });
        }
      }
      const n = await cs[0]!.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'pgm_%'");
      assert.ok(n.rows[0].n <= 5, `at most 5 on the connection, saw ${n.rows[0].n}`);
      await Promise.all(cs.map((c) => c.end()));
    } finally {
      await p.stop();
    }
  });
});
