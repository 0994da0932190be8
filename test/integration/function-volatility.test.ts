/**
 * Function volatility looked up in pg_proc (neither write_function_list nor
 * read_only_function_list set), against a real primary + 2 standbys through node-postgres:
 * a read calling a stable function is balanced to a standby and one calling a volatile
 * function goes to the primary; many distinct functions keep the cache within relcache_size;
 * every lookup uses one persistent side connection to the primary (pg_stat_activity by
 * application_name), replaced — with a warning naming the node — when it is terminated.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';
import { VOLATILITY_APPLICATION_NAME } from '../../src/backend/function-volatility';

const N = 30;
const RELCACHE_SIZE = 8;

describe('function volatility lookups', { timeout: 180_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: InProcess;
  let c: Client;

  /** Side connections pgmaitre holds on a node for volatility lookups. */
  const sideConnections = async (nodeId: string): Promise<number> =>
    Number(await fx.cluster.psql(nodeId, `SELECT count(*) FROM pg_stat_activity WHERE application_name = '${VOLATILITY_APPLICATION_NAME}'`));

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
      "sr_check_user = 'postgres'", 'enable_pool_hba = off', `relcache_size = ${RELCACHE_SIZE}`,
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
    const vol = px.app.ctx.routing.volatility;
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

  test('a terminated side connection is logged with its node and replaced by exactly one', async () => {
    await fx.cluster.psql(fx.cluster.primary.id,
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '${VOLATILITY_APPLICATION_NAME}'`);
    await eventually(() => /"event":"action_failed"[^\n]*"node_id":0[^\n]*pg_proc volatility side connection/.test(px.logs())
      || /pg_proc volatility side connection on node 0 failed/.test(px.logs()), 'the lost side connection is logged', 5000);
    const line = px.logs().split('\n').find((l) => l.includes('pg_proc volatility side connection'))!;
    assert.match(line, /"level":"warn"|"level":40/, 'at warning level');
    px.app.ctx.routing.volatility.clear();
    for (let i = 1; i <= 4; i++) assert.equal(await onStandby(`SELECT vol_s${i}() AS r`), true);
    assert.equal(await sideConnections(fx.cluster.primary.id), 1, 'one new side connection');
  });
});
