import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findAdminCommand, runAdminCommand, ADMIN_COMMANDS } from '../../../src/admin/registry';
import type { AdminError, ResultSet } from '../../../src/admin/types';
import { addSession, makeContext, makeSession } from '../../fixtures/admin/context';
import { clipStatement } from '../../../src/admin/commands/show-pool-pools';

function rs(r: ResultSet | AdminError): ResultSet {
  if ('error' in r) assert.fail(`unexpected error: ${r.error.message}`);
  return r;
}
function err(r: ResultSet | AdminError): AdminError['error'] {
  if (!('error' in r)) assert.fail('expected an error');
  return r.error;
}
const TS = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/;

test('matching: case-insensitive, whitespace-tolerant, optional trailing semicolon', () => {
  for (const sql of ['SHOW POOL_NODES', 'show pool_nodes;', '  Show\n\tPool_Nodes  ;  ', '/* c */ SHOW POOL_NODES', '-- x\nshow pool_nodes']) {
    assert.equal(findAdminCommand(sql)?.command.name, 'SHOW POOL_NODES', sql);
  }
  for (const sql of ['SHOW pool_nodesx', 'SHOW search_path', 'SELECT 1', 'SHOW POOL_NODES extra', 'SHOW ALL']) {
    assert.equal(findAdminCommand(sql), null, sql);
  }
  assert.deepEqual(findAdminCommand('PGPOOL SET client_idle_limit = 5;')?.args, 'client_idle_limit = 5');
  assert.equal(ADMIN_COMMANDS.length, 13);
  assert.equal(findAdminCommand("PGPOOL SET CACHE DELETE 'SELECT 1'")?.command.name, 'PGPOOL SET CACHE DELETE');
  assert.equal(findAdminCommand('show pool_cache')?.command.name, 'SHOW POOL_CACHE');
});

test('SHOW POOL_NODES: pgpool 4.6 columns and formats', async () => {
  const t = makeContext();
  const r = rs(await runAdminCommand(t.ctx, makeSession(t.ctx, 1), 'SHOW POOL_NODES'));
  assert.deepEqual(r.columns, ['node_id', 'hostname', 'port', 'status', 'pg_status', 'lb_weight', 'role', 'pg_role', 'select_cnt',
    'load_balance_node', 'replication_delay', 'replication_state', 'replication_sync_state', 'last_status_change']);
  assert.equal(r.rows.length, 3);
  const [n0, n1, n2] = r.rows;
  assert.deepEqual(n0?.slice(0, 13), ['0', 'db0', '5432', 'up', 'up', '0.333333', 'primary', 'primary', '0', 'false', '0', '', '']);
  assert.deepEqual(n1?.slice(0, 13), ['1', 'db1', '5433', 'up', 'up', '0.333333', 'standby', 'standby', '0', 'true', '1024', 'streaming', 'async']);
  assert.deepEqual(n2?.slice(0, 9), ['2', 'db2', '5434', 'down', 'down', '0.333333', 'standby', 'unknown', '0']);
  for (const row of r.rows) assert.match(row[13] ?? '', TS);
  assert.ok(r.rows.every((row) => row.every((v) => typeof v === 'string')));
});

test('SHOW POOL_NODES: replication_delay in seconds with delay_threshold_by_time', async () => {
  const t = makeContext('delay_threshold_by_time = 1000\n');
  t.cluster.setReplication(1, { delaySeconds: 2.5 });
  t.cluster.setReplication(2, { delaySeconds: 0.25 });
  const r = rs(await runAdminCommand(t.ctx, makeSession(t.ctx), 'show pool_nodes'));
  assert.equal(r.rows[1]?.[10], '2.500000 seconds');
  assert.equal(r.rows[2]?.[10], '0.250000 second');
  assert.equal(r.rows[0]?.[10], '0');
});

test('SHOW POOL_NODES: raw mode prints main/replica', async () => {
  const t = makeContext("backend_clustering_mode = 'raw'\n");
  const r = rs(await runAdminCommand(t.ctx, makeSession(t.ctx), 'SHOW POOL_NODES'));
  assert.deepEqual(r.rows.map((x) => x[6]), ['main', 'replica', 'replica']);
});

test('SHOW POOL_PROCESSES: one row per slot; sessions and free slots', async () => {
  const t = makeContext();
  addSession(t);
  const r = rs(await runAdminCommand(t.ctx, makeSession(t.ctx), 'SHOW POOL_PROCESSES'));
  assert.deepEqual(r.columns, ['pool_pid', 'start_time', 'client_connection_count', 'database', 'username', 'backend_connection_time', 'pool_counter', 'status']);
  assert.equal(r.rows.length, 4);
  assert.deepEqual(r.rows[0], ['2000000000', '2024-01-02 03:04:05', '0', '', '', '', '', 'Wait for connection']);
  assert.deepEqual(r.rows[1], ['31337', '2024-01-02 03:05:00', '1', 'app', 'alice', '2024-01-02 03:05:01', '3', 'Idle']);
  assert.equal(r.rows[3]?.[0], '2000000003');
});

test('SHOW POOL_POOLS: slots × max_pool × nodes rows with the 4.7 columns', async () => {
  const t = makeContext();
  addSession(t);
  const r = rs(await runAdminCommand(t.ctx, makeSession(t.ctx), 'SHOW POOL_POOLS'));
  assert.deepEqual(r.columns, ['pool_pid', 'start_time', 'client_connection_count', 'pool_id', 'backend_id', 'database', 'username',
    'backend_connection_time', 'client_connection_time', 'client_disconnection_time', 'client_idle_duration', 'majorversion',
    'minorversion', 'pool_counter', 'pool_backendpid', 'pool_connected', 'status', 'load_balance_node',
    'client_host', 'client_port', 'statement']);
  assert.equal(r.rows.length, 4 * 2 * 3);
  const live = r.rows.filter((x) => x[0] === '31337');
  assert.equal(live.length, 6);
  assert.deepEqual(live[1], ['31337', '2024-01-02 03:05:00', '1', '0', '1', 'app', 'alice', '2024-01-02 03:05:02', '2024-01-02 03:05:00', '', '0', '3', '0', '2', '1001', '1', 'Idle', '1',
    '127.0.0.1', '50000', 'SELECT 1']);
  assert.deepEqual(live[0]?.slice(18), ['127.0.0.1', '50000', ''], 'no statement sent on node 0 yet');
  assert.deepEqual(live[2]?.slice(3, 16), ['0', '2', '', '', '', '', '', '0', '0', '0', '0', '0', '0']);
  assert.deepEqual(live[2]?.slice(18), ['127.0.0.1', '50000', '']);
  assert.equal(r.rows[0]?.[16], 'Wait for connection');
  assert.deepEqual(r.rows[0]?.slice(18), ['', '', '']);
});

test('SHOW POOL_POOLS: pgpool_compatibility = 4.6 keeps the 18 columns of 4.6', async () => {
  const t = makeContext("pgpool_compatibility = '4.6'\n");
  addSession(t);
  const r = rs(await runAdminCommand(t.ctx, makeSession(t.ctx), 'SHOW POOL_POOLS'));
  assert.equal(r.columns.length, 18);
  assert.equal(r.columns[17], 'load_balance_node');
  for (const row of r.rows) assert.equal(row.length, 18);
});

test('SHOW POOL_POOLS: the statement is clipped to 1023 bytes, never inside a UTF-8 character', async () => {
  const t = makeContext();
  const s = addSession(t);
  const long = `SELECT '${'é'.repeat(2000)}'`;
  (s.backends[1] as { statement?: string }).statement = long;
  const r = rs(await runAdminCommand(t.ctx, makeSession(t.ctx), 'SHOW POOL_POOLS'));
  const stmt = r.rows.filter((x) => x[0] === '31337')[1]![20]!;
  assert.ok(Buffer.byteLength(stmt) <= 1023 && Buffer.byteLength(stmt) >= 1021, String(Buffer.byteLength(stmt)));
  assert.ok(long.startsWith(stmt));
  assert.ok(!stmt.includes('\ufffd'));
  assert.equal(clipStatement('SELECT 1'), 'SELECT 1');
  assert.equal(Buffer.byteLength(clipStatement('x'.repeat(5000))), 1023);
});

test('SHOW POOL_VERSION, POOL_BACKEND_STATS, POOL_HEALTH_CHECK_STATS', async () => {
  const t = makeContext();
  const s = makeSession(t.ctx);
  assert.deepEqual(rs(await runAdminCommand(t.ctx, s, 'SHOW POOL_VERSION')), { columns: ['pool_version'], rows: [['4.7.0 (pgmaitre)']] });
  // The version follows pgpool_compatibility.
  const old = makeContext("pgpool_compatibility = '4.6'\n");
  assert.deepEqual(rs(await runAdminCommand(old.ctx, makeSession(old.ctx), 'SHOW POOL_VERSION')).rows, [['4.6.0 (pgmaitre)']]);
  const n0 = t.cluster.node(0)!;
  Object.assign(n0.counters, { select_cnt: 7, insert_cnt: 2, error_cnt: 1 });
  const b = rs(await runAdminCommand(t.ctx, s, 'SHOW POOL_BACKEND_STATS'));
  assert.equal(b.columns.length, 14);
  assert.deepEqual(b.rows[0], ['0', 'db0', '5432', 'up', 'primary', '7', '2', '0', '0', '0', '0', '0', '0', '1']);
  Object.assign(n0.health, { total_count: 10, success_count: 9, fail_count: 1, skip_count: 2, retry_count: 4, max_retry_count: 2,
    max_duration: 30, min_duration: 5, total_duration: 100, last_health_check: new Date(2024, 5, 6, 7, 8, 9) });
  const h = rs(await runAdminCommand(t.ctx, s, 'SHOW POOL_HEALTH_CHECK_STATS'));
  assert.equal(h.columns.length, 20);
  assert.deepEqual(h.rows[0]?.slice(6), ['10', '9', '1', '2', '4', '0.500000', '2', '30', '5', '12.500000', '2024-06-06 07:08:09', '', '', '']);
  assert.deepEqual(h.rows[1]?.slice(11, 16), ['0.000000', '0', '0', '0', '0.000000']);
});

test('SHOW POOL_STATUS: every parameter, secrets redacted, backend items', async () => {
  const t = makeContext();
  const r = rs(await runAdminCommand(t.ctx, makeSession(t.ctx), 'SHOW POOL_STATUS'));
  assert.deepEqual(r.columns, ['item', 'value', 'description']);
  const get = (k: string) => r.rows.find((x) => x[0] === k);
  assert.equal(get('sr_check_password')?.[1], '********');
  assert.equal(get('health_check_password')?.[1], '');
  assert.equal(get('port')?.[1], '9999');
  assert.equal(get('load_balance_mode')?.[1], 'on');
  assert.equal(get('reset_query_list')?.[1], 'ABORT;DISCARD ALL');
  assert.equal(get('backend_weight1')?.[1], '0.333333');
  assert.equal(get('backend_status2')?.[1], 'down');
  assert.ok(r.rows.length > 150);
});

test('PGPOOL SHOW: parameter, quoted name, groups, ALL, unknown', async () => {
  const t = makeContext();
  const s = makeSession(t.ctx);
  assert.deepEqual(rs(await runAdminCommand(t.ctx, s, 'PGPOOL SHOW port')), { columns: ['port'], rows: [['9999']] });
  assert.deepEqual(rs(await runAdminCommand(t.ctx, s, 'pgpool show "num_init_children";')), { columns: ['num_init_children'], rows: [['4']] });
  assert.deepEqual(rs(await runAdminCommand(t.ctx, s, 'PGPOOL SHOW backend_port1')), { columns: ['backend_port1'], rows: [['5433']] });
  const backend = rs(await runAdminCommand(t.ctx, s, 'PGPOOL SHOW backend'));
  assert.deepEqual(backend.rows.slice(0, 2).map((x) => [x[0], x[1]]), [['backend_hostname0', 'db0'], ['backend_port0', '5432']]);
  assert.equal(backend.rows.length, 18);
  const hc = rs(await runAdminCommand(t.ctx, s, 'PGPOOL SHOW health_check'));
  assert.ok(hc.rows.some((x) => x[0] === 'health_check_period1' && x[1] === '10'));
  assert.equal(rs(await runAdminCommand(t.ctx, s, 'PGPOOL SHOW watchdog')).rows.length, 0);
  const all = rs(await runAdminCommand(t.ctx, s, 'PGPOOL SHOW ALL'));
  assert.deepEqual(all.columns, ['item', 'value', 'description']);
  assert.ok(all.rows.some((x) => x[0] === 'sr_check_password' && x[1] === '********'));
  const e = err(await runAdminCommand(t.ctx, s, 'PGPOOL SHOW nonesuch'));
  assert.deepEqual(e, { code: 'XX000', message: 'unrecognized configuration parameter "nonesuch"' });
});

test('PGPOOL SET / RESET: session parameters only, pgpool messages', async () => {
  const t = makeContext();
  const s = makeSession(t.ctx);
  assert.deepEqual(rs(await runAdminCommand(t.ctx, s, 'PGPOOL SET client_idle_limit = 30')), { columns: [], rows: [], tag: 'SET' });
  assert.deepEqual(rs(await runAdminCommand(t.ctx, s, 'PGPOOL SHOW client_idle_limit')).rows, [['30']]);
  rs(await runAdminCommand(t.ctx, s, "pgpool set log_min_messages TO 'debug1';"));
  assert.equal(s.overrides.get('log_min_messages'), 'debug1');
  rs(await runAdminCommand(t.ctx, s, 'PGPOOL SET log_statement = on'));
  assert.equal(s.overrides.get('log_statement'), true);
  rs(await runAdminCommand(t.ctx, s, 'PGPOOL SET client_idle_limit TO DEFAULT'));
  assert.equal(s.overrides.has('client_idle_limit'), false);
  assert.deepEqual(err(await runAdminCommand(t.ctx, s, 'PGPOOL SET port = 1234')),
    { code: 'XX000', message: 'invalid Context, value for parameter "port" cannot be changed' });
  assert.deepEqual(err(await runAdminCommand(t.ctx, s, 'PGPOOL SET nope = 1')), { code: 'XX000', message: 'unrecognized configuration parameter "nope"' });
  const bad = err(await runAdminCommand(t.ctx, s, 'PGPOOL SET log_min_messages = loud'));
  assert.equal(bad.message, 'invalid value for parameter "log_min_messages": "loud"');
  assert.match(bad.hint ?? '', /^Available values: debug5, /);
  assert.deepEqual(rs(await runAdminCommand(t.ctx, s, 'PGPOOL RESET log_statement')), { columns: [], rows: [], tag: 'RESET' });
  assert.equal(s.overrides.has('log_statement'), false);
  rs(await runAdminCommand(t.ctx, s, 'PGPOOL RESET ALL'));
  assert.equal(s.overrides.size, 0);
  assert.equal(err(await runAdminCommand(t.ctx, s, 'PGPOOL RESET num_init_children')).message, 'invalid Context, value for parameter "num_init_children" cannot be changed');
});

test('event log names cluster changes', () => {
  const t = makeContext();
  t.cluster.setStatus(2, 'up', 'recovered');
  t.cluster.setStatus(1, 'down', 'health check failed');
  const kinds = t.events.list().map((e) => `${e.kind}:${e.nodeId}`);
  assert.ok(kinds.includes('node_down:2'));
  assert.deepEqual(kinds.slice(-2), ['failback:2', 'node_down:1']);
});
