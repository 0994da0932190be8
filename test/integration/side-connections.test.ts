/**
 * pgmaitre's side connections (never a client's backend connection), against a real primary +
 * 2 standbys with node-postgres clients:
 * - function volatility looked up in pg_proc (neither write_function_list nor
 *   read_only_function_list set): a read calling a stable function is balanced to a standby and
 *   one calling a volatile function goes to the primary; many distinct functions keep the cache
 *   within relcache_size; every lookup uses one persistent side connection to the primary
 *   (pg_stat_activity by application_name);
 * - a side connection that fails (terminated by the server) is logged at warning level with
 *   its node and what it was for — volatility lookups, read_your_writes' WAL positions,
 *   auth_query — and replaced.
 */
import type { FunctionVolatility } from '../../src/backend/function-volatility';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';
import { VOLATILITY_APPLICATION_NAME } from '../../src/backend/function-volatility';
import { pgLogin } from '../harness/login-clients';

const N = 30;
const RELCACHE_SIZE = 8;

describe('side connections', { timeout: 180_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: InProcess;
  let c: Client;

  /** Side connections pgmaitre holds on a node for volatility lookups (or another application_name). */
  const sideConnections = async (nodeId: string, app = VOLATILITY_APPLICATION_NAME): Promise<number> =>
    Number(await fx.cluster.psql(nodeId, `SELECT count(*) FROM pg_stat_activity WHERE application_name = '${app}'`));
  /** Terminates a node's side connections of one kind. */
  const terminate = (nodeId: string, app: string): Promise<string> =>
    fx.cluster.psql(nodeId, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '${app}'`);
  /** The JSON log lines of pgmaitre whose action matches. */
  const failures = (logs: string, action: RegExp): { level: string; node_id: number; msg: string }[] =>
    logs.split('\n').filter((l) => l.includes('"event":"action_failed"')).map((l) => JSON.parse(l) as { level: string; node_id: number; action: string; msg: string })
      .filter((l) => action.test(l.action));

  /** true when the statement ran on a standby. */
  const onStandby = async (sql: string): Promise<boolean> => (await c.query<{ r: boolean }>(sql)).rows[0]!.r;

  before(async () => {
    const defs: string[] = [];
    for (let i = 1; i <= N; i++) {
      defs.push(`CREATE FUNCTION vol_s${i}() RETURNS boolean STABLE LANGUAGE sql AS 'SELECT pg_is_in_recovery()'`);
      defs.push(`CREATE FUNCTION vol_v${i}() RETURNS boolean VOLATILE LANGUAGE sql AS 'SELECT pg_is_in_recovery()'`);
    }
    await fx.cluster.psql(fx.cluster.primary.id, defs.join(';\n'));
    await fx.cluster.waitForReplay();
    // Primary weight 0: a read that may be balanced always lands on a standby.
    px = await startInProcess([
      backendLines(fx.cluster, [0, 1, 1]),
      "sr_check_user = 'postgres'", 'enable_pool_hba = off', `relcache_size = ${RELCACHE_SIZE}`, 'read_your_writes = on',
    ].join('\n'));
    c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
    await c.connect();
  });
  after(async () => {
    await c?.end();
    await px?.stop();
  });

  test('many distinct functions: right routing, cache within relcache_size, one side connection', async () => {
    for (let i = 1; i <= N; i++) {
      assert.equal(await onStandby(`SELECT vol_s${i}() AS r`), true, `stable vol_s${i}() is balanced to a standby`);
      assert.equal(await onStandby(`SELECT vol_v${i}() AS r`), false, `volatile vol_v${i}() goes to the primary`);
    }
    const vol = px.app.ctx.routing.volatility as FunctionVolatility;
    assert.ok(vol.size <= RELCACHE_SIZE, `cache holds ${vol.size} entries, relcache_size is ${RELCACHE_SIZE}`);
    assert.equal(await sideConnections(fx.cluster.primary.id), 1, 'exactly one side connection to the primary');
    for (const s of fx.cluster.standbys) assert.equal(await sideConnections(s.id), 0, `none to ${s.id}`);
  });

  test('one statement calling more functions than relcache_size is routed, not looked up forever', async () => {
    const many = Array.from({ length: RELCACHE_SIZE + 6 }, (_, i) => `vol_s${i + 1}()`).join(', ');
    assert.equal(await onStandby(`SELECT pg_is_in_recovery() AS r, ${many}`), true, 'stable functions only: a standby');
    assert.equal(await onStandby(`SELECT pg_is_in_recovery() AS r, ${many}, vol_v${N}()`), false, 'one volatile function: the primary');
    assert.equal(await sideConnections(fx.cluster.primary.id), 1);
  });

  test('a terminated volatility side connection is logged with its node and replaced by exactly one', async () => {
    await terminate(fx.cluster.primary.id, VOLATILITY_APPLICATION_NAME);
    await eventually(() => failures(px.logs(), /^pg_proc volatility side connection$/).length > 0, 'the lost side connection is logged', 5000);
    const f = failures(px.logs(), /^pg_proc volatility side connection$/)[0]!;
    assert.equal(f.level, 'warn');
    assert.equal(f.node_id, 0);
    assert.match(f.msg, /pg_proc volatility side connection on node 0 failed: terminating connection/);
    px.app.ctx.routing.volatility.clear();
    for (let i = 1; i <= 4; i++) assert.equal(await onStandby(`SELECT vol_s${i}() AS r`), true);
    assert.equal(await sideConnections(fx.cluster.primary.id), 1, 'one new side connection');
  });

  test('read_your_writes: a terminated WAL-position side connection is logged with its node', async () => {
    await c.query('CREATE TABLE IF NOT EXISTS ryw_side (i int)');
    for (let i = 0; i < 5; i++) {
      await c.query('INSERT INTO ryw_side VALUES (1)');
      // Once the commit's WAL position is known, a read asks a standby how far it has replayed.
      await new Promise((r) => setTimeout(r, 100));
      for (let j = 0; j < 3; j++) await c.query('SELECT count(*) FROM ryw_side');
    }
    const standbys = fx.cluster.standbys;
    const held = await Promise.all(standbys.map((s) => sideConnections(s.id, 'pgmaitre lsn')));
    assert.ok(held.some((n) => n > 0), `a standby was asked for its replay position (${held.join(', ')})`);
    for (const s of standbys) await terminate(s.id, 'pgmaitre lsn');
    await eventually(() => failures(px.logs(), /^read_your_writes side connection$/).length > 0, 'the lost LSN side connection is logged', 5000);
    const f = failures(px.logs(), /^read_your_writes side connection$/)[0]!;
    assert.equal(f.level, 'warn');
    assert.ok(f.node_id === 1 || f.node_id === 2, `a standby's node id (${f.node_id})`);
    // Reads go on (on the primary until a standby has replayed the session's writes again).
    await c.query('INSERT INTO ryw_side VALUES (2)');
    assert.equal((await c.query<{ n: string }>('SELECT count(*) AS n FROM ryw_side')).rows[0]!.n, '6', 'the session reads its own writes');
  });

  describe('auth_query side connection', () => {
    let aq: InProcess;
    before(async () => {
      await fx.cluster.psql(fx.cluster.primary.id, [
        "set password_encryption = 'scram-sha-256'",
        "create role aq_side_admin login superuser password 'admin pw'",
        "create role aq_side_user login password 'user pw'",
      ].join('; '));
      aq = await startInProcess([
        backendLines(fx.cluster), "sr_check_user = 'postgres'", 'enable_pool_hba = on', 'auth_query_cache_ttl = 0',
        "auth_user = 'aq_side_admin'", "auth_query = 'SELECT usename, passwd FROM pg_shadow WHERE usename = $1'",
      ].join('\n'), {
        'pool_hba.conf': 'host all aq_side_user 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n',
        pool_passwd: 'aq_side_admin:TEXTadmin pw\n',
      });
    });
    after(async () => { await aq?.stop(); });

    test('a terminated auth_query connection is logged with its node; the next login opens a new one', async () => {
      const first = await pgLogin({ port: aq.port, user: 'aq_side_user', password: 'user pw' });
      assert.equal(first.ok, true, first.message);
      assert.equal(await sideConnections(fx.cluster.primary.id, 'pgmaitre auth_query'), 1);
      await terminate(fx.cluster.primary.id, 'pgmaitre auth_query');
      await eventually(() => failures(aq.logs(), /^auth_query side connection/).length > 0, 'the lost auth_query connection is logged', 5000);
      const f = failures(aq.logs(), /^auth_query side connection/)[0]!;
      assert.equal(f.level, 'warn');
      assert.equal(f.node_id, 0);
      const again = await pgLogin({ port: aq.port, user: 'aq_side_user', password: 'user pw' });
      assert.equal(again.ok, true, again.message);
      assert.equal(await sideConnections(fx.cluster.primary.id, 'pgmaitre auth_query'), 1);
    });
  });
});
