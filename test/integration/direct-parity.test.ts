/**
 * A client must not be able to tell pgmaitre from a direct connection to the primary (issue 9).
 * Each scenario runs with real clients (node-postgres, a raw protocol client) against a primary and
 * two streaming standbys, with reads balanced to the standbys (weights 0,1,1), and where
 * PostgreSQL's own behaviour is the reference the same scenario runs against the primary directly
 * and both observations are compared.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, type Notification } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';
import { RawClient, types, type ServerMessage } from '../harness/raw-client';
import {
  encodeBind, encodeDescribe, encodeExecute, encodeFlush, encodeParse, encodeQuery, encodeSync, encodeTerminate,
} from '../../src/protocol/frontend';
import { decodeDataRow } from '../../src/protocol/backend';

const READS_ON_STANDBYS = [0, 1, 1];
const LOGIN = { user: 'postgres', database: 'postgres' };

describe('a client cannot tell pgmaitre from a direct connection', { timeout: 600_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: InProcess;
  let pxStatement: InProcess;
  let admin: Client;

  const conf = (extra = ''): string =>
    `${backendLines(fx.cluster, READS_ON_STANDBYS)}\nsr_check_user = 'postgres'\nenable_pool_hba = off\nnum_init_children = 16\nmax_pool = 2\n` +
    `health_check_period = 1\nhealth_check_user = 'postgres'\nsr_check_period = 1\n${extra}`;

  before(async () => {
    px = await startInProcess(conf());
    pxStatement = await startInProcess(conf('statement_level_load_balance = on\n'));
    admin = new Client({ host: fx.cluster.primary.host, port: fx.cluster.primary.port, user: 'postgres', database: 'postgres' });
    await admin.connect();
    await admin.query('CREATE TABLE parity_t (x int)');
    admin.on('error', () => {});
    await admin.query('CREATE TABLE parity_lock (x int)');
    await admin.query('CREATE TABLE parity_lock2 (x int)');
    await fx.cluster.waitForReplay();
  });
  after(async () => {
    await admin?.end();
    await px?.stop();
    await pxStatement?.stop();
  });

  function client(port: number, extra: Record<string, unknown> = {}): Client {
    return new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', ...extra });
  }
  const direct = (): number => fx.cluster.primary.port;

  async function code(p: Promise<unknown>): Promise<string> {
    try {
      await p;
      return 'ok';
    } catch (e) {
      return (e as { code?: string }).code ?? String(e);
    }
  }

  // ---- 1. SQL PREPARE / EXECUTE / DEALLOCATE -------------------------------------------------

  for (const [name, which] of [['session-level balancing', () => px], ['statement_level_load_balance', () => pxStatement]] as const) {
    test(`SQL PREPARE then EXECUTE in autocommit works, reads on standbys, writes on the primary (${name})`, async () => {
      const c = client(which().port);
      await c.connect();
      try {
        await c.query('PREPARE p(int) AS SELECT $1 * 2 AS v, pg_is_in_recovery() AS standby');
        for (let i = 0; i < 12; i++) {
          const r = await c.query('EXECUTE p(21)');
          assert.equal(r.rows[0].v, 42);
          assert.equal(r.rows[0].standby, true, 'a prepared read runs on a standby');
        }
        assert.equal(await code(c.query('PREPARE p(int) AS SELECT 1')), '42P05', 'a second PREPARE of the same name fails as it does directly');
        await c.query('PREPARE w(int) AS INSERT INTO parity_t VALUES ($1)');
        for (let i = 0; i < 3; i++) await c.query('EXECUTE w(7)');
        await c.query('DEALLOCATE p');
        for (let i = 0; i < 6; i++) assert.equal(await code(c.query('EXECUTE p(1)')), '26000', 'DEALLOCATE removes it everywhere');
        await c.query('PREPARE p(int) AS SELECT $1 + 1 AS v');
        assert.equal((await c.query('EXECUTE p(1)')).rows[0].v, 2);
        await c.query('DEALLOCATE ALL');
        assert.equal(await code(c.query('EXECUTE w(1)')), '26000');
        assert.equal(await code(c.query('EXECUTE p(1)')), '26000');
        await c.query('PREPARE p(int) AS SELECT $1 + 2 AS v');
        for (let i = 0; i < 6; i++) assert.equal((await c.query('EXECUTE p(1)')).rows[0].v, 3);
      } finally {
        await c.end();
      }
    });
  }

  test('SQL PREPARE inside a transaction is usable after it', async () => {
    const c = client(px.port);
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query('PREPARE q AS SELECT 5 AS v');
      await c.query('COMMIT');
      for (let i = 0; i < 6; i++) assert.equal((await c.query('EXECUTE q')).rows[0].v, 5);
    } finally {
      await c.end();
    }
  });

  // ---- 2. BackendKeyData carries the primary backend's pid ------------------------------------

  test('BackendKeyData pid = pg_backend_pid() = the NOTIFY pid = the primary backend of this client', async () => {
    const c = client(px.port, { application_name: 'parity-pid' });
    await c.connect();
    try {
      const pid = (c as unknown as { processID: number }).processID;
      for (let i = 0; i < 6; i++) {
        assert.equal((await c.query('SELECT pg_backend_pid() AS p')).rows[0].p, pid, 'pg_backend_pid() runs on the primary and matches the key');
      }
      const seen = await admin.query('SELECT application_name FROM pg_stat_activity WHERE pid = $1', [pid]);
      assert.equal(seen.rows[0]?.application_name, 'parity-pid', 'the pid is this client\'s own backend on the primary');
      const got = new Promise<Notification>((resolve) => c.on('notification', resolve));
      await c.query('LISTEN parity_chan');
      await c.query("NOTIFY parity_chan, 'self'");
      const n = await got;
      assert.equal(n.processId, pid, 'an application ignoring its own NOTIFY compares these');
    } finally {
      await c.end();
    }
  });

  test('a CancelRequest with the reported pid still cancels through pgmaitre', async () => {
    const c = client(px.port);
    await c.connect();
    try {
      const running = c.query('SELECT pg_sleep(10)');
      await new Promise((r) => setTimeout(r, 300));
      const pid = (c as unknown as { processID: number }).processID;
      const secret = (c as unknown as { secretKey: number }).secretKey;
      const cancel = await RawClient.open(px.port);
      const { encodeCancelRequest } = await import('../../src/protocol/startup');
      cancel.send(encodeCancelRequest(pid, secret));
      await cancel.waitClosed();
      assert.equal(await code(running), '57014');
    } finally {
      await c.end();
    }
  });

  // ---- 3. pg_terminate_backend of a client's own backend closes that client -----------------

  /** What a node-postgres client sees when its backend is terminated after `setup`. */
  async function terminateObservation(port: number, setup: (c: Client) => Promise<void>): Promise<{ event: string; next: string }> {
    const c = client(port);
    let event = 'none';
    c.on('error', (e: Error & { code?: string }) => { if (event === 'none') event = e.code ?? e.message; });
    await c.connect();
    await setup(c);
    const pid = port === direct() ? (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p as number
      : (c as unknown as { processID: number }).processID;
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    await new Promise((r) => setTimeout(r, 300));
    const next = await code(c.query('SELECT 1'));
    await c.end().catch(() => {});
    return { event, next: next === 'ok' ? 'ok' : 'failed' };
  }

  const scenarios: [string, (c: Client) => Promise<void>][] = [
    ['idle', async () => {}],
    ['in a transaction', async (c) => { await c.query('BEGIN'); await c.query('SELECT 1'); }],
    ['holding LISTEN', async (c) => { await c.query('LISTEN parity_term'); }],
    ['holding a temporary table', async (c) => { await c.query('CREATE TEMP TABLE parity_tmp (x int)'); }],
    ['holding a session advisory lock', async (c) => { await c.query('SELECT pg_advisory_lock(4242)'); }],
  ];
  for (const [what, setup] of scenarios) {
    test(`pg_terminate_backend of its own backend (${what}) closes the client as PostgreSQL does`, async () => {
      const want = await terminateObservation(direct(), setup);
      const got = await terminateObservation(px.port, setup);
      assert.deepEqual(got, want);
      assert.equal(want.event, '57P01');
    });
  }

  test('after its backend is terminated, its advisory lock is free and the client is gone', async () => {
    const c = client(px.port);
    c.on('error', () => {});
    await c.connect();
    await c.query('SELECT pg_advisory_lock(777)');
    await admin.query('SELECT pg_terminate_backend($1)', [(c as unknown as { processID: number }).processID]);
    await new Promise((r) => setTimeout(r, 300));
    assert.notEqual(await code(c.query('SELECT pg_advisory_lock(777)')), 'ok', 'the client must not believe it still holds the lock');
    await c.end().catch(() => {});
  });

  // ---- 6. exactly the backend's FATAL -----------------------------------------------------------

  test('a terminated backend: the client sees exactly the backend\'s FATAL, then the close', async () => {
    const observe = async (port: number): Promise<string[]> => {
      const c = await RawClient.connect(port, LOGIN);
      c.send(encodeQuery('SELECT pg_backend_pid()'));
      const rows = (await c.untilReady()).filter((m) => m.type === 'D');
      const pid = Number(decodeDataRow(rows[0]!.frame, 0, rows[0]!.frame.length)[0]);
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      const msgs = await c.waitClosed();
      return msgs.map((m) => `${m.type}${m.error ? ` ${m.error.severity} ${m.error.code}` : ''}`);
    };
    const want = await observe(direct());
    assert.deepEqual(want, ['E FATAL 57P01']);
    assert.deepEqual(await observe(px.port), want);
  });

  // ---- 4. serializable by default -------------------------------------------------------------

  for (const [set, reset] of [
    ["SET default_transaction_isolation TO 'serializable'", 'RESET default_transaction_isolation'],
    ['SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE', 'SET default_transaction_isolation TO DEFAULT'],
    ['SET default_transaction_isolation = serializable', 'RESET ALL'],
  ] as const) {
    test(`${set}: reads go to the primary until ${reset}`, async () => {
      const c = client(px.port);
      await c.connect();
      try {
        assert.equal((await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true);
        await c.query(set);
        for (let i = 0; i < 6; i++) {
          const r = await c.query('SELECT pg_is_in_recovery() AS r, current_setting(\'transaction_isolation\') AS iso');
          assert.deepEqual(r.rows[0], { r: false, iso: 'serializable' });
        }
        await c.query(reset);
        await eventually(async () => (await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r === true, 'reads back on a standby');
      } finally {
        await c.end();
      }
    });
  }

  test('SET transaction_read_only / default_transaction_read_only behave as on the primary', async () => {
    for (const port of [direct(), px.port, pxStatement.port]) {
      const c = client(port);
      await c.connect();
      try {
        await c.query('SELECT 1');
        await c.query('SET transaction_read_only = 0');
        await c.query('SET transaction_read_only TO off');
        await c.query('SET default_transaction_read_only = off');
        await c.query('SELECT 1');
        await c.query('BEGIN');
        await c.query('SET transaction_read_only = off');
        await c.query('INSERT INTO parity_t VALUES (3)');
        await c.query('COMMIT');
        await c.query('SET default_transaction_read_only = on');
        assert.equal(await code(c.query('INSERT INTO parity_t VALUES (4)')), '25006');
        await c.query('RESET default_transaction_read_only');
        await c.query('INSERT INTO parity_t VALUES (4)');
      } finally {
        await c.end();
      }
    }
  });

  // ---- 5. bytes before the startup packet ------------------------------------------------------

  test('a Terminate before the startup packet: closed without a word, as PostgreSQL does', async () => {
    for (const port of [direct(), px.port]) {
      const c = await RawClient.open(port);
      c.send(encodeTerminate());
      assert.deepEqual(types(await c.waitClosed()), '', `port ${port}`);
    }
  });

  test('node-postgres end() right after connect() raises no error', async () => {
    for (const port of [direct(), px.port]) {
      const errors: string[] = [];
      const c = client(port);
      c.on('error', (e) => errors.push(e.message));
      // (connect() never settles when end() comes first, directly too: it is not awaited)
      void c.connect().catch((e: Error) => errors.push(`connect: ${e.message}`));
      await c.end().catch((e: Error) => errors.push(`end: ${e.message}`));
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(errors, [], `port ${port}`);
    }
  });

  // ---- 7. a request ending in Flush keeps its answer ------------------------------------------

  /** Holds an ACCESS EXCLUSIVE lock on `table` (directly on the primary) for `ms`. */
  async function holdLock(table: string, ms: number): Promise<{ released: Promise<void> }> {
    const holder = client(direct());
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
    return { released: new Promise((r) => setTimeout(r, ms)).then(() => holder.query('COMMIT')).then(() => holder.end()) };
  }

  async function pipelineSyncThenFlush(port: number): Promise<string> {
    // The first answer is slow (a lock held 300 ms), the second slower (its Parse waits for
    // another lock until 600 ms): they reach pgmaitre in separate reads.
    const first = await holdLock('parity_lock', 300);
    const second = await holdLock('parity_lock2', 600);
    const c = await RawClient.connect(port, LOGIN);
    c.send(
      encodeParse('', 'INSERT INTO parity_lock VALUES (1)'), encodeBind('', ''), encodeExecute(''), encodeSync(),
      encodeParse('s2', 'INSERT INTO parity_lock2 VALUES ($1)', [23]), encodeDescribe('S', 's2'), encodeFlush(),
    );
    const seen: ServerMessage[] = [];
    for (let i = 0; i < 7; i++) seen.push(await c.next(5000));
    c.send(encodeBind('', 's2', ['2']), encodeExecute(''), encodeSync());
    seen.push(...await c.untilReady(5000));
    await Promise.all([first.released, second.released]);
    c.close();
    return types(seen);
  }

  test('Sync request + Flush request written together while the first answer is slow', async () => {
    const want = await pipelineSyncThenFlush(direct());
    assert.equal(want, '12CZ1tn2CZ');
    assert.equal(await pipelineSyncThenFlush(px.port), want);
  });

  /** A read-only statement that takes a few hundred ms (no volatile function: it may run on a standby). */
  const SLOW_READ = 'SELECT count(*) FROM generate_series(1, 3000000)';

  test('Sync request + Flush request on a standby (a read, then a slow read up to a Flush)', async () => {
    const run = async (port: number): Promise<string> => {
      const c = await RawClient.connect(port, LOGIN);
      c.send(
        encodeParse('', 'SELECT 1'), encodeBind('', ''), encodeExecute(''), encodeSync(),
        encodeParse('', SLOW_READ), encodeBind('', ''), encodeExecute(''), encodeFlush(),
      );
      const seen: ServerMessage[] = [];
      for (let i = 0; i < 9; i++) seen.push(await c.next(5000));
      c.send(encodeSync());
      seen.push(...await c.untilReady(5000));
      c.close();
      return types(seen);
    };
    const want = await run(direct());
    assert.equal(want, '12DCZ12DCZ');
    assert.equal(await run(px.port), want);
  });

  test('a statement re-parsed on another node before a Flush request keeps the Flush answer', async () => {
    const run = async (port: number): Promise<string> => {
      const c = await RawClient.connect(port, LOGIN);
      const seen: ServerMessage[] = [];
      // Parsed and used outside a transaction (a standby through pgmaitre)...
      c.send(encodeParse('rp', SLOW_READ), encodeSync());
      seen.push(...await c.untilReady());
      // ...then used inside a transaction (the primary), answered up to a Flush.
      c.send(encodeQuery('BEGIN'));
      seen.push(...await c.untilReady());
      c.send(encodeBind('', 'rp'), encodeDescribe('P', ''), encodeExecute(''), encodeFlush());
      for (let i = 0; i < 4; i++) seen.push(await c.next(5000));
      c.send(encodeSync());
      seen.push(...await c.untilReady());
      c.send(encodeQuery('COMMIT'));
      seen.push(...await c.untilReady());
      c.close();
      return types(seen);
    };
    const want = await run(direct());
    assert.equal(want, '1ZCZ2TDCZCZ');
    assert.equal(await run(px.port), want);
  });

  // ---- 9. pgmaitre's own messages never overtake an earlier answer ----------------------------

  test('notice_per_node_statement notices come after the answer to the previous request', async () => {
    const p = await startInProcess(conf('notice_per_node_statement = on\n'));
    try {
      const c = await RawClient.connect(p.port, LOGIN);
      c.send(encodeQuery('SELECT pg_sleep(0.2)'), encodeQuery('SELECT 1'), encodeQuery('SELECT 2'));
      const seen = [...await c.untilReady(), ...await c.untilReady(), ...await c.untilReady()];
      assert.equal(types(seen), 'NTDCZNTDCZNTDCZ');
      c.close();
    } finally {
      await p.stop();
    }
  });

  // ---- 8. read-your-writes is on by default ---------------------------------------------------

  test('an autocommit write is visible to the next read on the same connection (default settings)', async () => {
    const c = client(px.port);
    await c.connect();
    try {
      await c.query('CREATE TABLE IF NOT EXISTS parity_ryw (id int)');
      let stale = 0;
      let onStandby = 0;
      for (let i = 0; i < 200; i++) {
        await c.query('INSERT INTO parity_ryw VALUES ($1)', [i]);
        const r = await c.query('SELECT count(*)::int AS n, pg_is_in_recovery() AS s FROM parity_ryw WHERE id = $1', [i]);
        if (r.rows[0].n !== 1) stale++;
        if (r.rows[0].s) onStandby++;
      }
      assert.equal(stale, 0);
      process.stdout.write(`# read-your-writes by default: 0 stale of 200, ${onStandby} reads served by standbys\n`);
      // Once the standbys have replayed the session's writes, its reads go back to them.
      await eventually(async () => (await c.query('SELECT pg_is_in_recovery() AS s')).rows[0].s === true, 'reads back on a standby', 10_000);
    } finally {
      await c.end();
    }
  });
});
