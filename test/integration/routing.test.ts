/**
 * Read/write routing against a real primary + 2 standbys. Every primary-only rule has a test that
 * fails if the statement reached a standby (there it would fail with 25006 or similar: no test
 * accepts that), and reads are shown to land on standbys (pg_is_in_recovery() = true).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess } from '../harness/in-process';

describe('read/write routing', { timeout: 300_000 }, () => {
  const fx = withCluster({ standbys: 2, settings: { max_prepared_transactions: 5 } });
  // pgpool-II's routing rules, without pgmaitre's read-your-writes (on by default; it sends the
  // reads that follow a write to the primary until a standby has replayed it: see direct-parity
  // and failover-e2e tests).
  const conf = (weights: number[], extra = ''): string =>
    `${backendLines(fx.cluster, weights)}\nsr_check_user = 'postgres'\nenable_pool_hba = off\nnum_init_children = 32\nread_your_writes = off\n${extra}\n`;

  async function client(px: InProcess, extra: Record<string, unknown> = {}): Promise<Client> {
    const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres', ...extra });
    c.on('error', () => {});
    await c.connect();
    return c;
  }
  async function inRecovery(c: Client): Promise<boolean> {
    return (await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r;
  }

  before(async () => {
    await fx.cluster.psql('primary', `
      CREATE TABLE IF NOT EXISTS rt (id serial PRIMARY KEY, v text);
      CREATE SEQUENCE IF NOT EXISTS rt_seq;
      CREATE OR REPLACE FUNCTION rt_write(x text) RETURNS int LANGUAGE sql AS $$ INSERT INTO rt(v) VALUES (x) RETURNING id $$;
      CREATE OR REPLACE FUNCTION rt_where() RETURNS boolean LANGUAGE sql STABLE AS $$ SELECT pg_is_in_recovery() $$;
      CREATE TABLE IF NOT EXISTS rt_merge (id int PRIMARY KEY, v text);`);
    await fx.cluster.waitForReplay();
  });

  describe('default rules (reads to standbys, transactions on the primary)', () => {
    let px: InProcess;
    before(async () => { px = await startInProcess(conf([0, 1, 1])); });
    after(async () => { await px.stop(); });

    test('a read outside a transaction runs on a standby; inside BEGIN..COMMIT on the primary', async () => {
      const c = await client(px);
      assert.equal(await inRecovery(c), true);
      await c.query('BEGIN');
      assert.equal(await inRecovery(c), false);
      await c.query('SELECT 1');
      assert.equal(await inRecovery(c), false);
      await c.query('COMMIT');
      assert.equal(await inRecovery(c), true);
      await c.query('START TRANSACTION READ ONLY');
      assert.equal(await inRecovery(c), false, 'even a read-only transaction stays on the primary by default');
      await c.query('ROLLBACK');
      await c.end();
    });

    const primaryOnly: [string, string][] = [
      ['INSERT', "INSERT INTO rt(v) VALUES ('i')"],
      ['UPDATE', "UPDATE rt SET v = 'u' WHERE id < 0"],
      ['DELETE', 'DELETE FROM rt WHERE id < 0'],
      ['MERGE', "MERGE INTO rt_merge t USING (SELECT 1 AS id) s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id, 'm')"],
      ['TRUNCATE', 'TRUNCATE rt_merge'],
      ['DDL', 'CREATE TABLE IF NOT EXISTS rt_ddl (i int); DROP TABLE rt_ddl'],
      ['COMMENT', "COMMENT ON TABLE rt IS 'routing test'"],
      ['GRANT', 'GRANT SELECT ON rt TO PUBLIC'],
      ['SELECT FOR UPDATE', 'SELECT * FROM rt FOR UPDATE'],
      ['SELECT FOR NO KEY UPDATE', 'SELECT * FROM rt FOR NO KEY UPDATE'],
      ['SELECT FOR SHARE', 'SELECT * FROM rt FOR SHARE'],
      ['SELECT FOR KEY SHARE', 'SELECT * FROM rt FOR KEY SHARE'],
      ['SELECT INTO', 'SELECT 1 AS x INTO TEMP rt_into'],
      ['writable CTE', "WITH w AS (INSERT INTO rt(v) VALUES ('cte') RETURNING id) SELECT id FROM w"],
      ['LOCK', 'BEGIN; LOCK TABLE rt IN SHARE ROW EXCLUSIVE MODE; COMMIT'],
      ['LISTEN/UNLISTEN/NOTIFY', "LISTEN rt_chan; NOTIFY rt_chan, 'x'; UNLISTEN rt_chan"],
      ['VACUUM', 'VACUUM rt_merge'],
      ['ANALYZE', 'ANALYZE rt_merge'],
      ['REINDEX', 'REINDEX TABLE rt_merge'],
      ['CLUSTER', 'CLUSTER rt USING rt_pkey'],
      ['nextval', "SELECT nextval('rt_seq')"],
      ['setval', "SELECT setval('rt_seq', 100)"],
      ['volatile function (pg_proc lookup)', "SELECT rt_write('vol')"],
      ['multi-statement with a write', "SELECT 1; INSERT INTO rt(v) VALUES ('multi')"],
      ['CALL / DO', "DO $$ BEGIN INSERT INTO rt(v) VALUES ('do'); END $$"],
      ['COPY FROM', "COPY rt_merge (id) FROM PROGRAM 'echo 42'"],
    ];
    for (const [name, sql] of primaryOnly) {
      test(`primary only: ${name}`, async () => {
        const c = await client(px);
        await c.query(sql); // on a standby this fails (25006 or "during recovery"): no error is accepted
        await c.end();
      });
    }

    test('two-phase commit goes to the primary', async () => {
      const c = await client(px);
      await c.query('BEGIN');
      await c.query("INSERT INTO rt(v) VALUES ('2pc')");
      await c.query("PREPARE TRANSACTION 'rt_gid'");
      await c.query("COMMIT PREPARED 'rt_gid'");
      await c.end();
    });

    test('cursors run on the primary (DECLARE/FETCH/MOVE/CLOSE)', async () => {
      const c = await client(px);
      await c.query('DECLARE rt_cur CURSOR WITH HOLD FOR SELECT pg_is_in_recovery() AS r FROM generate_series(1, 3)');
      const r = await c.query('FETCH 1 FROM rt_cur');
      assert.equal(r.rows[0].r, false);
      await c.query('MOVE 1 IN rt_cur');
      await c.query('CLOSE rt_cur');
      await c.end();
    });

    test('temporary tables and every statement touching them go to the primary', async () => {
      const c = await client(px);
      await c.query('CREATE TEMP TABLE rt_tmp (i int)');
      await c.query('INSERT INTO rt_tmp VALUES (1), (2)');
      assert.equal((await c.query('SELECT count(*)::int AS n FROM rt_tmp')).rows[0].n, 2);
      assert.equal(await inRecovery(c), true, 'other reads still go to a standby');
      await c.end();
    });

    test('stable functions are balanced, COPY TO / SHOW / EXPLAIN / VALUES too', async () => {
      const c = await client(px);
      assert.equal((await c.query('SELECT rt_where() AS w')).rows[0].w, true);
      assert.equal((await c.query("SELECT current_setting('server_version_num')::int >= 150000 AS v, pg_is_in_recovery() AS r")).rows[0].r, true);
      assert.equal((await c.query('SHOW server_version')).rows.length, 1);
      // What a standby reports differently from the primary is read on the primary, as directly.
      assert.equal((await c.query("SELECT current_setting('transaction_read_only') AS v")).rows[0].v, 'off');
      assert.equal((await c.query('SHOW transaction_read_only')).rows[0].transaction_read_only, 'off');
      assert.equal((await c.query('SHOW in_hot_standby')).rows[0].in_hot_standby, 'off');
      assert.equal((await c.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = pg_backend_pid()')).rows[0].n, 1);
      await c.query('EXPLAIN SELECT * FROM rt');
      await c.query('VALUES (1)');
      await c.end();
    });

    test('node-postgres named statements across read → write → read', async () => {
      const c = await client(px);
      const read = { name: 'rt_read', text: 'SELECT pg_is_in_recovery() AS r, count(*)::int AS n FROM rt WHERE v = $1' };
      const write = { name: 'rt_insert', text: 'INSERT INTO rt(v) VALUES ($1) RETURNING id' };
      assert.equal((await c.query({ ...read, values: ['named'] })).rows[0].r, true);
      await c.query({ ...write, values: ['named'] });
      assert.equal((await c.query({ ...read, values: ['named'] })).rows[0].r, true);
      // Inside a transaction the statement parsed on a standby is re-parsed on the primary.
      await c.query('BEGIN');
      const inTx = await c.query({ ...read, values: ['named'] });
      assert.equal(inTx.rows[0].r, false);
      assert.equal(inTx.rows[0].n, 1, 'the transaction sees its own committed write');
      await c.query({ ...write, values: ['named2'] });
      assert.equal((await c.query({ ...read, values: ['named2'] })).rows[0].n, 1);
      await c.query('COMMIT');
      await c.end();
    });

    test('SET reaches every node the session uses, before and after it joins', async () => {
      const c = await client(px);
      await c.query("SET application_name = 'rt-app'");
      assert.equal((await c.query('SHOW application_name')).rows[0].application_name, 'rt-app');
      await c.query('BEGIN');
      assert.equal((await c.query('SHOW application_name')).rows[0].application_name, 'rt-app');
      await c.query('COMMIT');
      await c.query("SET search_path = 'pg_catalog'");
      assert.equal((await c.query('SHOW search_path')).rows[0].search_path, 'pg_catalog');
      await c.end();
    });

    test('weight 0 nodes get no reads; reads spread by weight', async () => {
      const counts = new Map<number, number>();
      for (let i = 0; i < 40; i++) {
        const c = await client(px);
        const port = (await c.query<{ p: number }>('SELECT inet_server_port() AS p')).rows[0]!.p;
        counts.set(port, (counts.get(port) ?? 0) + 1);
        await c.end();
      }
      assert.equal(counts.get(fx.cluster.primary.port) ?? 0, 0);
      assert.ok((counts.get(fx.cluster.standbys[0]!.port) ?? 0) > 5);
      assert.ok((counts.get(fx.cluster.standbys[1]!.port) ?? 0) > 5);
    });
  });

  describe('weights', () => {
    let px: InProcess;
    before(async () => { px = await startInProcess(conf([0, 1, 3])); });
    after(async () => { await px.stop(); });

    test('400 sessions split 1:3 between the standbys (±8 points)', async () => {
      const counts = new Map<number, number>();
      const clients = 400;
      for (let i = 0; i < clients; i += 20) {
        await Promise.all(Array.from({ length: 20 }, async () => {
          const c = await client(px);
          const port = (await c.query<{ p: number }>('SELECT inet_server_port() AS p')).rows[0]!.p;
          counts.set(port, (counts.get(port) ?? 0) + 1);
          await c.end();
        }));
      }
      const s2 = (counts.get(fx.cluster.standbys[1]!.port) ?? 0) / clients;
      assert.equal(counts.get(fx.cluster.primary.port) ?? 0, 0);
      assert.ok(Math.abs(s2 - 0.75) < 0.08, `standby2 share ${s2}`);
    });
  });

  describe('load_balance_in_transaction = on (pgpool behaviour)', () => {
    const modes: [string, boolean[]][] = [
      // BEGIN; read; write; read; COMMIT; BEGIN; read; COMMIT; read  → on standby?
      ['transaction', [true, false, false, true, true]],
      ['trans_transaction', [true, false, false, false, true]],
      ['always', [true, false, false, false, false]],
      ['off', [true, false, true, true, true]],
    ];
    for (const [mode, expected] of modes) {
      test(`disable_load_balance_on_write = '${mode}'`, async () => {
        const px = await startInProcess(conf([0, 1, 1], `load_balance_in_transaction = on\ndisable_load_balance_on_write = '${mode}'`));
        try {
          const c = await client(px);
          const seen: boolean[] = [];
          await c.query('BEGIN');
          seen.push(await inRecovery(c));
          await c.query("INSERT INTO rt(v) VALUES ('lbtx')");
          seen.push(false); // the write itself (on the primary, or the INSERT would have failed)
          seen.push(await inRecovery(c));
          await c.query('COMMIT');
          await c.query('BEGIN');
          seen.push(await inRecovery(c));
          await c.query('COMMIT');
          seen.push(await inRecovery(c));
          assert.deepEqual(seen, expected);
          await c.end();
        } finally {
          await px.stop();
        }
      });
    }

    test('a standby read inside a transaction runs inside it, and the standby leaves it with the primary', async () => {
      const px = await startInProcess(conf([0, 1, 1], 'load_balance_in_transaction = on'));
      try {
        const c = await client(px);
        // now() is the transaction's start time: equal across two reads iff they share a transaction.
        const standbyNow = async (): Promise<string> => {
          const r = (await c.query<{ t: string; r: boolean }>('SELECT now()::text AS t, pg_is_in_recovery() AS r')).rows[0]!;
          assert.equal(r.r, true);
          await new Promise((res) => setTimeout(res, 20));
          return r.t;
        };
        await c.query('BEGIN'); // the standby is not held yet: it joins inside the transaction
        assert.equal(await standbyNow(), await standbyNow());
        await c.query('COMMIT; SELECT 1'); // the COMMIT reaches the primary only
        assert.notEqual(await standbyNow(), await standbyNow(), 'the standby left the transaction');
        await c.query('BEGIN; SELECT 1'); // the BEGIN reaches the primary only
        assert.equal(await standbyNow(), await standbyNow());
        await c.query('ROLLBACK');
        await c.end();
      } finally {
        await px.stop();
      }
    });

    test('SERIALIZABLE and READ WRITE transactions stay on the primary', async () => {
      const px = await startInProcess(conf([0, 1, 1], 'load_balance_in_transaction = on'));
      try {
        const c = await client(px);
        await c.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
        assert.equal(await inRecovery(c), false);
        await c.query('COMMIT');
        await c.query('BEGIN READ WRITE');
        assert.equal(await inRecovery(c), false);
        await c.query('COMMIT');
        await c.query('BEGIN');
        assert.equal(await inRecovery(c), true);
        await c.query('COMMIT');
        await c.end();
      } finally {
        await px.stop();
      }
    });

    test("dml_adaptive: reads of a table written in the transaction go to the primary", async () => {
      const px = await startInProcess(conf([0, 1, 1], "load_balance_in_transaction = on\ndisable_load_balance_on_write = 'dml_adaptive'"));
      try {
        const c = await client(px);
        await c.query('BEGIN');
        await c.query("INSERT INTO rt(v) VALUES ('dml')");
        assert.equal((await c.query('SELECT pg_is_in_recovery() AS r FROM rt LIMIT 1')).rows[0].r, false);
        assert.equal((await c.query('SELECT pg_is_in_recovery() AS r FROM rt_merge UNION ALL SELECT pg_is_in_recovery()')).rows[0].r, true);
        await c.query('COMMIT');
        await c.end();
      } finally {
        await px.stop();
      }
    });
  });

  describe('function lists, patterns, preferences, notices', () => {
    test('write_function_list and read_only_function_list', async () => {
      const px = await startInProcess(conf([0, 1, 1], "write_function_list = 'rt_where'"));
      try {
        const c = await client(px);
        assert.equal((await c.query('SELECT rt_where() AS w')).rows[0].w, false);
        await c.end();
      } finally {
        await px.stop();
      }
      const px2 = await startInProcess(conf([0, 1, 1], "read_only_function_list = 'rt_where'"));
      try {
        const c = await client(px2);
        assert.equal((await c.query('SELECT rt_where() AS w')).rows[0].w, true);
        await c.query("SELECT rt_write('not in the read-only list')");
        await c.end();
      } finally {
        await px2.stop();
      }
    });

    test('primary_routing_query_pattern_list', async () => {
      const px = await startInProcess(conf([0, 1, 1], "primary_routing_query_pattern_list = '.*rt_pattern.*'"));
      try {
        const c = await client(px);
        assert.equal((await c.query('SELECT pg_is_in_recovery() AS rt_pattern')).rows[0].rt_pattern, false);
        assert.equal(await inRecovery(c), true);
        await c.end();
      } finally {
        await px.stop();
      }
    });

    test('database and application-name redirect preferences', async () => {
      const port1 = fx.cluster.standbys[0]!.port;
      const port2 = fx.cluster.standbys[1]!.port;
      const px = await startInProcess(conf([0, 1, 1], "database_redirect_preference_list = 'postgres:1'\napp_name_redirect_preference_list = 'reporting:2,primaryapp:primary'"));
      try {
        for (let i = 0; i < 5; i++) {
          const c = await client(px);
          assert.equal((await c.query('SELECT inet_server_port() AS p')).rows[0].p, port1);
          await c.end();
          const r = await client(px, { application_name: 'reporting' });
          assert.equal((await r.query('SELECT inet_server_port() AS p')).rows[0].p, port2);
          await r.end();
          const p = await client(px, { application_name: 'primaryapp' });
          assert.equal(await inRecovery(p), false);
          await p.end();
        }
      } finally {
        await px.stop();
      }
    });

    test('statement_level_load_balance spreads one session over both standbys', async () => {
      const px = await startInProcess(conf([0, 1, 1], 'statement_level_load_balance = on'));
      try {
        const c = await client(px);
        const ports = new Set<number>();
        for (let i = 0; i < 30; i++) ports.add((await c.query<{ p: number }>('SELECT inet_server_port() AS p')).rows[0]!.p);
        assert.deepEqual([...ports].sort(), [fx.cluster.standbys[0]!.port, fx.cluster.standbys[1]!.port].sort());
        await c.end();
      } finally {
        await px.stop();
      }
    });

    test('PGPOOL SET notice_per_node_statement applies to that session only, PGPOOL RESET undoes it', async () => {
      const px = await startInProcess(conf([0, 0, 1]));
      try {
        const c = await client(px);
        const other = await client(px);
        const notices: string[] = [];
        const otherNotices: string[] = [];
        c.on('notice', (n) => notices.push(n.message ?? ''));
        other.on('notice', (n) => otherNotices.push(n.message ?? ''));
        await c.query('SELECT 1');
        assert.deepEqual(notices, []);
        await c.query('PGPOOL SET notice_per_node_statement = on');
        await c.query('SELECT 2');
        await other.query('SELECT 3');
        assert.equal(notices.length, 1);
        assert.match(notices[0]!, /^DB node id: 2 .*statement: SELECT 2$/);
        assert.deepEqual(otherNotices, []);
        await c.query('PGPOOL RESET notice_per_node_statement');
        await c.query('SELECT 4');
        assert.equal(notices.length, 1);
        await c.end();
        await other.end();
      } finally {
        await px.stop();
      }
    });

    test('notice_per_node_statement names the node of each statement', async () => {
      const px = await startInProcess(conf([0, 0, 1], 'notice_per_node_statement = on'));
      try {
        const c = await client(px);
        const notices: string[] = [];
        c.on('notice', (n) => notices.push(n.message ?? ''));
        await c.query('SELECT 1');
        await c.query("INSERT INTO rt(v) VALUES ('notice')");
        assert.match(notices[0] ?? '', /^DB node id: 2 .*statement: SELECT 1$/);
        assert.match(notices[1] ?? '', /^DB node id: 0 .*statement: INSERT/);
        await c.end();
      } finally {
        await px.stop();
      }
    });
  });
});
