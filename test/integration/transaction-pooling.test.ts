/**
 * Transaction pooling (pool_mode = transaction | statement) against a real primary and two
 * standbys, with node-postgres, psql and pgbench: many clients share a few backend connections,
 * and none of them can tell — each keeps its own settings, prepared statements and notifications,
 * reads still go to the standbys, what cannot be shared pins a client to its connection, a client
 * waiting too long for a connection gets a clear error, and a cancel only ever hits its own query.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, type Notification } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess } from '../harness/in-process';
import { exec } from '../harness/exec';

describe('transaction pooling', { timeout: 600_000 }, () => {
  const fx = withCluster({ standbys: 2, pgbench: 1 });
  let px: InProcess;
  const conf = (extra = '', weights = [0, 1, 1]): string =>
    `${backendLines(fx.cluster, weights)}\nsr_check_user = 'postgres'\nenable_pool_hba = off\npool_mode = transaction\n`
    + `default_pool_size = 2\nmax_client_conn = 1200\nquery_wait_timeout = 30\nhealth_check_period = 5\nhealth_check_user = 'postgres'\n${extra}`;

  before(async () => {
    await fx.cluster.psql('primary', `
      CREATE SCHEMA IF NOT EXISTS a; CREATE SCHEMA IF NOT EXISTS b;
      CREATE TABLE a.t (v text); INSERT INTO a.t VALUES ('a');
      CREATE TABLE b.t (v text); INSERT INTO b.t VALUES ('b');`);
    await fx.cluster.waitForReplay();
    px = await startInProcess(conf());
  });
  after(async () => { await px?.stop(); });

  function client(port = px.port, extra: Record<string, unknown> = {}): Client {
    const c = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', ...extra });
    c.on('error', () => {});
    return c;
  }

  /** Backend connections pgmaitre holds to each node (in the pool: idle or leased). */
  function backendTotals(p: InProcess): number[] {
    return [...p.app.ctx.pools.values()].map((pool) => pool.counts().total);
  }

  test('two clients whose SET search_path differ never see each other\'s, on two shared connections', async () => {
    const ca = client();
    const cb = client();
    await Promise.all([ca.connect(), cb.connect()]);
    await ca.query('SET search_path = a');
    await cb.query('SET search_path = b');
    const runs: Promise<void>[] = [];
    for (const [c, want] of [[ca, 'a'], [cb, 'b']] as const) {
      runs.push((async () => {
        for (let i = 0; i < 30; i++) {
          const r = await c.query('SELECT v, current_setting(\'search_path\') AS p FROM t');
          assert.deepEqual(r.rows[0], { v: want, p: want });
        }
      })());
    }
    await Promise.all(runs);
    await cb.query('RESET search_path');
    assert.equal((await cb.query('SHOW search_path')).rows[0].search_path, '"$user", public');
    assert.equal((await ca.query('SHOW search_path')).rows[0].search_path, 'a');
    await Promise.all([ca.end(), cb.end()]);
    for (const t of backendTotals(px)) assert.ok(t <= 2, `at most default_pool_size connections per node (${t})`);
  });

  test('startup parameters are each client\'s own (application_name, DateStyle)', async () => {
    const c1 = client(px.port, { application_name: 'one' });
    const c2 = client(px.port, { application_name: 'two', options: '-c DateStyle=SQL,DMY' });
    await Promise.all([c1.connect(), c2.connect()]);
    for (let i = 0; i < 10; i++) {
      const [r1, r2] = await Promise.all([
        c1.query("SELECT current_setting('application_name') AS a, current_setting('DateStyle') AS d"),
        c2.query("SELECT current_setting('application_name') AS a, current_setting('DateStyle') AS d"),
      ]);
      assert.deepEqual(r1.rows[0], { a: 'one', d: 'ISO, MDY' });
      assert.deepEqual(r2.rows[0], { a: 'two', d: 'SQL, DMY' });
    }
    await Promise.all([c1.end(), c2.end()]);
  });

  test('named prepared statements of many clients work across leases (node-postgres name:)', async () => {
    const clients = Array.from({ length: 6 }, () => client());
    await Promise.all(clients.map((c) => c.connect()));
    await Promise.all(clients.map(async (c, i) => {
      for (let k = 0; k < 15; k++) {
        const r = await c.query({ name: 'add', text: `SELECT $1::int + ${i} AS v, pg_is_in_recovery() AS s`, values: [k] });
        assert.equal(r.rows[0].v, k + i);
        assert.equal(r.rows[0].s, true, 'prepared reads still go to the standbys');
        const w = await c.query({ name: 'db', text: 'SELECT current_database() AS db' });
        assert.equal(w.rows[0].db, 'postgres');
      }
    }));
    await Promise.all(clients.map((c) => c.end()));
    assert.ok(px.app.ctx.poolStats.cacheHits > 0, 'the shared statement cache was used');
  });

  test('SQL PREPARE / EXECUTE / DEALLOCATE of the same name by two clients stay apart', async () => {
    const c1 = client();
    const c2 = client();
    await Promise.all([c1.connect(), c2.connect()]);
    await c1.query('PREPARE p(int) AS SELECT $1 * 10 AS v');
    await c2.query('PREPARE p(int) AS SELECT $1 * 100 AS v');
    for (let i = 1; i < 10; i++) {
      const [r1, r2] = await Promise.all([c1.query(`EXECUTE p(${i})`), c2.query(`EXECUTE p(${i})`)]);
      assert.equal(r1.rows[0].v, i * 10);
      assert.equal(r2.rows[0].v, i * 100);
    }
    await c1.query('DEALLOCATE p');
    await assert.rejects(c1.query('EXECUTE p(1)'), (e: Error & { code?: string }) => e.code === '26000');
    assert.equal((await c2.query('EXECUTE p(2)')).rows[0].v, 200, 'the other client still has its own');
    await c2.query('DISCARD ALL');
    await assert.rejects(c2.query('EXECUTE p(1)'), (e: Error & { code?: string }) => e.code === '26000');
    await Promise.all([c1.end(), c2.end()]);
  });

  test('LISTEN pins a client to its connection: it gets its notifications; UNLISTEN * lets it go', async () => {
    const listener = client();
    const sender = client();
    await Promise.all([listener.connect(), sender.connect()]);
    const got = new Promise<Notification>((resolve) => listener.on('notification', resolve));
    await listener.query('LISTEN tp_chan');
    assert.equal(px.app.ctx.poolStats.pinnedNow, 1);
    for (let i = 0; i < 5; i++) await sender.query('SELECT 1');
    await sender.query("NOTIFY tp_chan, 'hello'");
    const n = await got;
    assert.equal(n.payload, 'hello');
    await listener.query('UNLISTEN *');
    await listener.query('SELECT 1');
    assert.equal(px.app.ctx.poolStats.pinnedNow, 0);
    await Promise.all([listener.end(), sender.end()]);
  });

  test('temporary tables and session advisory locks pin; the lock is really held', async () => {
    const c = client();
    const other = client();
    await Promise.all([c.connect(), other.connect()]);
    await c.query('CREATE TEMP TABLE tp_tmp (x int)');
    await c.query('INSERT INTO tp_tmp VALUES (1)');
    for (let i = 0; i < 5; i++) await other.query('SELECT 1');
    assert.equal((await c.query('SELECT count(*)::int AS n FROM tp_tmp')).rows[0].n, 1);
    await c.query('SELECT pg_advisory_lock(9090)');
    assert.equal((await other.query('SELECT pg_try_advisory_lock(9090) AS got')).rows[0].got, false);
    await c.query('SELECT pg_advisory_unlock_all()');
    await c.query('DISCARD TEMP');
    assert.equal((await other.query('SELECT pg_try_advisory_lock(9090) AS got')).rows[0].got, true);
    await other.query('SELECT pg_advisory_unlock_all()');
    await Promise.all([c.end(), other.end()]);
  });

  test('a client waiting longer than query_wait_timeout gets ERROR 53300 and its session goes on', async () => {
    const p = await startInProcess(conf('default_pool_size = 1\nquery_wait_timeout = 1\n', [1, 0, 0]));
    try {
      const holder = client(p.port);
      const waiter = client(p.port);
      await Promise.all([holder.connect(), waiter.connect()]);
      await holder.query('BEGIN');
      await holder.query('SELECT 1');
      const started = Date.now();
      await assert.rejects(waiter.query('SELECT 2'), (e: Error & { code?: string }) => e.code === '53300' && /query_wait_timeout/.test(e.message));
      assert.ok(Date.now() - started >= 900);
      await holder.query('COMMIT');
      assert.equal((await waiter.query('SELECT 3 AS v')).rows[0].v, 3);
      await Promise.all([holder.end(), waiter.end()]);
    } finally {
      await p.stop();
    }
  });

  test('a cancel hits only its own client\'s query on a shared connection', async () => {
    const p = await startInProcess(conf('default_pool_size = 1\n', [1, 0, 0]));
    try {
      const a = client(p.port);
      const b = client(p.port);
      await Promise.all([a.connect(), b.connect()]);
      const slow = a.query('SELECT pg_sleep(5)');
      await new Promise((r) => setTimeout(r, 300));
      const queued = b.query('SELECT pg_sleep(0.5) AS z');
      // A CancelRequest with a's key (what node-postgres' and libpq's cancel send).
      const { encodeCancelRequest } = await import('../../src/protocol/startup');
      const { RawClient } = await import('../harness/raw-client');
      const raw = await RawClient.open(p.port);
      raw.send(encodeCancelRequest((a as unknown as { processID: number }).processID, (a as unknown as { secretKey: number }).secretKey));
      await raw.waitClosed();
      await assert.rejects(slow, (e: Error & { code?: string }) => e.code === '57014');
      assert.equal((await queued).rows[0].z, '', 'the next client\'s query on that connection was not cancelled');
      await Promise.all([a.end(), b.end()]);
    } finally {
      await p.stop();
    }
  });

  test('a cancel for a query still waiting for the shared connection cancels it: 57014 at once, it never runs, the session goes on (simple, extended, inside BEGIN)', async () => {
    const p = await startInProcess(conf('default_pool_size = 1\n', [1, 0, 0]));
    try {
      await fx.cluster.psql('primary', 'CREATE TABLE IF NOT EXISTS tp_cancel_wait (v int)');
      const holder = client(p.port);
      const waiter = client(p.port);
      await Promise.all([holder.connect(), waiter.connect()]);
      const { encodeCancelRequest } = await import('../../src/protocol/startup');
      const { RawClient } = await import('../harness/raw-client');
      /** A CancelRequest with the waiter's BackendKeyData (what node-postgres' and libpq's cancel send). */
      const cancelWaiter = async (): Promise<void> => {
        const raw = await RawClient.open(p.port);
        raw.send(encodeCancelRequest((waiter as unknown as { processID: number }).processID, (waiter as unknown as { secretKey: number }).secretKey));
        await raw.waitClosed();
      };
      /** Resolves once `n` clients wait for a lease. */
      const waiting = async (n: number): Promise<void> => {
        for (let i = 0; i < 200 && [...p.app.ctx.pools.values()].reduce((k, pool) => k + pool.counts().waiting, 0) < n; i++) await new Promise((r) => setTimeout(r, 25));
      };
      const is57014 = (e: Error & { code?: string }): boolean => e.code === '57014' && /canceling statement due to user request/.test(e.message);
      /** The error a query ends with (null: none), its rejection handled at once (it comes while the test awaits the cancel). */
      const outcome = <T>(q: Promise<T>): Promise<Error & { code?: string } | null> => q.then(() => null, (e: Error) => e);
      const rejected = async (q: Promise<Error & { code?: string } | null>, want: (e: Error & { code?: string }) => boolean): Promise<void> => {
        const e = await q;
        assert.ok(e !== null && want(e), `expected the cancel's error, got ${e === null ? 'success' : `${e.code}: ${e.message}`}`);
      };
      await holder.query('BEGIN');
      await holder.query('SELECT 1');
      // Simple protocol.
      const simple = outcome(waiter.query('INSERT INTO tp_cancel_wait VALUES (1)'));
      await waiting(1);
      await cancelWaiter();
      await rejected(simple, is57014);
      // Extended protocol (Parse/Bind/Describe/Execute/Sync).
      const extended = outcome(waiter.query('INSERT INTO tp_cancel_wait VALUES ($1)', [2]));
      await waiting(1);
      await cancelWaiter();
      await rejected(extended, is57014);
      // Inside a transaction block: the transaction is aborted, COMMIT rolls back.
      await waiter.query('BEGIN');
      const inTx = outcome(waiter.query('INSERT INTO tp_cancel_wait VALUES (3)'));
      await waiting(1);
      await cancelWaiter();
      await rejected(inTx, is57014);
      const next = outcome(waiter.query('SELECT 1'));
      const commit = waiter.query('COMMIT');
      await holder.query('COMMIT');
      await rejected(next, (e) => e.code === '25P02');
      assert.equal((await commit).command, 'ROLLBACK');
      assert.equal((await waiter.query('SELECT 7 AS v')).rows[0].v, 7, 'the session goes on');
      const direct = await fx.cluster.psql('primary', 'SELECT count(*) FROM tp_cancel_wait');
      assert.equal(direct.trim(), '0', 'no cancelled statement ever ran');
      await Promise.all([holder.end(), waiter.end()]);
      // Nothing leaked: the one connection is idle again.
      const counts = [...p.app.ctx.pools.values()].map((pool) => pool.counts());
      assert.deepEqual(counts.map((c) => c.active + c.waiting), counts.map(() => 0));
    } finally {
      await p.stop();
    }
  });

  test('SHOW POOL_LEASES, SHOW POOL_PROCESSES and /metrics show leases, pinned clients and the statement cache', async () => {
    const c = client();
    const pinned = client();
    await Promise.all([c.connect(), pinned.connect()]);
    await pinned.query('LISTEN tp_show');
    for (let i = 0; i < 5; i++) await c.query({ name: 'show_q', text: 'SELECT $1::int AS v', values: [i] });
    const leases = await c.query('SHOW POOL_LEASES');
    assert.deepEqual(leases.fields.map((f) => f.name).slice(0, 6), ['node_id', 'pool_mode', 'default_pool_size', 'idle', 'leased', 'waiting']);
    const total = leases.rows.reduce((n, r) => n + Number(r.leases), 0);
    assert.ok(total > 0, 'leases counted');
    assert.equal(leases.rows[0].pool_mode, 'transaction');
    assert.equal(Number(leases.rows[0].pinned_clients), 1);
    const procs = await c.query('SHOW POOL_PROCESSES');
    assert.ok(procs.rows.some((r) => /transaction pooling, pinned/.test(String(r.status))), 'the pinned session is shown as such');
    const { createMetricsRegistry } = await import('../../src/http/metrics');
    const text = await createMetricsRegistry(px.app.admin!.adminCtx).metrics();
    for (const name of ['pgmaitre_pool_leases_total', 'pgmaitre_pool_waiting_clients', 'pgmaitre_pool_wait_seconds_bucket', 'pgmaitre_pinned_clients 1', 'pgmaitre_prepared_cache_total']) {
      assert.ok(text.includes(name), `${name} in /metrics`);
    }
    await pinned.query('UNLISTEN *');
    await Promise.all([c.end(), pinned.end()]);
  });

  test('statement pooling refuses transaction blocks with a clear error', async () => {
    const p = await startInProcess(conf('pool_mode = statement\n'));
    try {
      const c = client(p.port);
      await c.connect();
      await assert.rejects(c.query('BEGIN'), (e: Error & { code?: string }) => e.code === '0A000' && /statement pool mode/.test(e.message));
      assert.equal((await c.query('SELECT 1 AS v')).rows[0].v, 1);
      await c.end();
    } finally {
      await p.stop();
    }
  });

  test('pool_mode_database_list: a database in session pooling keeps its connection (its key is its backend pid)', async () => {
    const p = await startInProcess(conf("pool_mode_database_list = 'postgres:session'\n"));
    try {
      const c = client(p.port);
      await c.connect();
      const pid = (c as unknown as { processID: number }).processID;
      assert.equal((await c.query('SELECT pg_backend_pid() AS p')).rows[0].p, pid);
      await c.end();
    } finally {
      await p.stop();
    }
  });

  test('pgbench through transaction pooling: -S simple/extended/prepared and tpcb-like, 0 failures', async () => {
    const env = { ...process.env, PGPASSWORD: '' };
    for (const args of [['-S', '-M', 'simple'], ['-S', '-M', 'extended'], ['-S', '-M', 'prepared'], ['-M', 'prepared'], []]) {
      const r = await exec(fx.cluster.pg.bin('pgbench'), ['-n', ...args, '-c', '12', '-j', '2', '-T', '3', '-h', '127.0.0.1', '-p', String(px.port), '-U', 'postgres', 'postgres'], { env });
      assert.equal(r.code, 0, `${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /number of failed transactions: 0 /, args.join(' '));
    }
    for (const t of backendTotals(px)) assert.ok(t <= 2, `still at most default_pool_size connections per node (${t})`);
  });

  test('1000 clients on default_pool_size = 10: every one is served, the nodes see 10 connections each', async () => {
    const p = await startInProcess(conf('default_pool_size = 10\n'));
    try {
      const rss0 = process.memoryUsage().rss;
      const clients = Array.from({ length: 1000 }, () => client(p.port));
      for (let i = 0; i < clients.length; i += 100) await Promise.all(clients.slice(i, i + 100).map((c) => c.connect()));
      const idleRss = process.memoryUsage().rss - rss0;
      const before = Number(await fx.cluster.psql('standby1', "SELECT count(*) FROM pg_stat_activity WHERE usename = 'postgres' AND backend_type = 'client backend'"));
      const results = await Promise.all(clients.map((c, i) => c.query('SELECT $1::int AS v, pg_is_in_recovery() AS s', [i])));
      results.forEach((r, i) => assert.equal(r.rows[0].v, i));
      assert.ok(results.some((r) => r.rows[0].s === true));
      for (const t of backendTotals(p)) assert.ok(t <= 10, `at most 10 connections per node (${t})`);
      const onStandby = Number(await fx.cluster.psql('standby1', "SELECT count(*) FROM pg_stat_activity WHERE usename = 'postgres' AND backend_type = 'client backend'"));
      assert.ok(onStandby - before <= 10, `standby1 serves ${onStandby - before} more connections`);
      process.stdout.write(`# 1000 idle clients: +${(idleRss / 1048576).toFixed(1)} MB RSS in the process holding both ends\n`);
      await Promise.all(clients.map((c) => c.end()));
    } finally {
      await p.stop();
    }
  });
});
