/**
 * SQL admin commands (SHOW POOL_*, PGPOOL SHOW/SET/RESET) answered by a real pgmaitre in front of
 * a real primary + 2 standbys: psql output parsed column by column, counters checked against
 * known traffic, wire details (type OID 0, `SELECT n` tags, pgpool's errors) checked with
 * node-postgres and a raw protocol client.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';
import { describeResult, exec } from '../harness/exec';
import { RawClient } from '../harness/raw-client';
import { encodeQuery } from '../../src/protocol/frontend';

const NODES_COLUMNS = ['node_id', 'hostname', 'port', 'status', 'pg_status', 'lb_weight', 'role', 'pg_role', 'select_cnt',
  'load_balance_node', 'replication_delay', 'replication_state', 'replication_sync_state', 'last_status_change'];
const PROCESSES_COLUMNS = ['pool_pid', 'start_time', 'client_connection_count', 'database', 'username', 'backend_connection_time', 'pool_counter', 'status'];
const POOLS_COLUMNS = ['pool_pid', 'start_time', 'client_connection_count', 'pool_id', 'backend_id', 'database', 'username',
  'backend_connection_time', 'client_connection_time', 'client_disconnection_time', 'client_idle_duration', 'majorversion',
  'minorversion', 'pool_counter', 'pool_backendpid', 'pool_connected', 'status', 'load_balance_node',
  'client_host', 'client_port', 'statement'];
const HC_COLUMNS = ['node_id', 'hostname', 'port', 'status', 'role', 'last_status_change', 'total_count', 'success_count', 'fail_count',
  'skip_count', 'retry_count', 'average_retry_count', 'max_retry_count', 'max_duration', 'min_duration', 'average_duration',
  'last_health_check', 'last_successful_health_check', 'last_skip_health_check', 'last_failed_health_check'];
const BACKEND_STATS_COLUMNS = ['node_id', 'hostname', 'port', 'status', 'role', 'select_cnt', 'insert_cnt', 'update_cnt', 'delete_cnt',
  'ddl_cnt', 'other_cnt', 'panic_cnt', 'fatal_cnt', 'error_cnt'];
const TIMESTAMP = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/;
const NUM_INIT_CHILDREN = 4;
const MAX_POOL = 2;

/** psql -A -F '|' output: header, rows, and the "(n rows)" footer, checked for consistency. */
interface Table { columns: string[]; rows: Record<string, string>[] }

function parsePsql(out: string): Table {
  const lines = out.split('\n');
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  assert.ok(lines.length >= 2, `psql output too short:\n${out}`);
  const footer = /^\((\d+) rows?\)$/.exec(lines.pop()!);
  assert.ok(footer !== null, `no row-count footer:\n${out}`);
  const columns = lines.shift()!.split('|');
  assert.equal(lines.length, Number(footer[1]), 'footer row count = rows printed');
  const rows = lines.map((l) => {
    const cells = l.split('|');
    assert.equal(cells.length, columns.length, `row has ${cells.length} cells, header ${columns.length}: ${l}`);
    return Object.fromEntries(columns.map((c, i) => [c, cells[i]!]));
  });
  return { columns, rows };
}

describe('SQL admin commands against a real pgmaitre and cluster', { timeout: 120_000 }, () => {
  const fx = withCluster({ standbys: 2 });
  let px: InProcess;
  let tmp: string;

  before(async () => {
    await fx.cluster.psql('primary', 'CREATE ROLE alice LOGIN');
    await fx.cluster.psql('primary', 'CREATE DATABASE appdb OWNER alice');
    await fx.cluster.waitForReplay();
    px = await startInProcess(`${backendLines(fx.cluster, [0, 1, 1])}
sr_check_user = 'postgres'
sr_check_period = 1
enable_pool_hba = off
health_check_period = 1
health_check_user = 'postgres'
num_init_children = ${NUM_INIT_CHILDREN}
max_pool = ${MAX_POOL}
`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-admin-sql-'));
    await eventually(() => px.app.ctx.cluster.nodes.every((n) => n.status === 'up' && n.pgStatus === 'up'), 'every node up', 15_000);
  });
  after(async () => {
    await px?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function psql(sql: string, user = 'postgres', db = 'postgres'): Promise<Table> {
    const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], HOME: tmp, PGCONNECT_TIMEOUT: '10', LC_ALL: 'C' };
    const r = await exec(fx.cluster.pg.bin('psql'), ['-X', '-A', '-F', '|', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(px.port), '-U', user, '-d', db, '-c', sql], { env });
    assert.equal(r.code, 0, describeResult(r));
    return parsePsql(r.stdout);
  }

  function client(user = 'postgres', database = 'postgres'): pg.Client {
    return new pg.Client({ host: '127.0.0.1', port: px.port, user, database });
  }

  const byNode = (t: Table): Map<string, Record<string, string>> => new Map(t.rows.map((r) => [r['node_id']!, r]));

  test('SHOW POOL_NODES: pgpool 4.6 columns, the real roles, normalised weights', async () => {
    const t = await psql('SHOW POOL_NODES');
    assert.deepEqual(t.columns, NODES_COLUMNS);
    assert.equal(t.rows.length, 3);
    const weights = ['0.000000', '0.500000', '0.500000'];
    for (const [i, r] of t.rows.entries()) {
      const n = fx.cluster.nodes[i]!;
      assert.equal(r['node_id'], String(i));
      assert.equal(r['hostname'], n.host);
      assert.equal(r['port'], String(n.port));
      assert.equal(r['status'], 'up');
      assert.equal(r['pg_status'], 'up');
      assert.equal(r['lb_weight'], weights[i]);
      assert.equal(r['role'], i === 0 ? 'primary' : 'standby');
      assert.equal(r['pg_role'], i === 0 ? 'primary' : 'standby');
      assert.match(r['select_cnt']!, /^\d+$/);
      assert.ok(r['load_balance_node'] === 'true' || r['load_balance_node'] === 'false');
      assert.match(r['replication_delay']!, /^\d+$/);
      assert.match(r['last_status_change']!, TIMESTAMP);
    }
    // The asking session's reads go to exactly one standby (weight 0 for the primary).
    const lb = t.rows.filter((r) => r['load_balance_node'] === 'true').map((r) => r['node_id']);
    assert.equal(lb.length, 1);
    assert.notEqual(lb[0], '0');
    // The streaming state from pg_stat_replication on the primary (backend_application_name is set).
    await eventually(async () => {
      const rows = (await psql('SHOW POOL_NODES')).rows;
      return rows[1]!['replication_state'] === 'streaming' && rows[2]!['replication_state'] === 'streaming'
        && rows[1]!['replication_sync_state'] === 'async';
    }, 'replication_state streaming / async on the standbys', 10_000);
  });

  test('select_cnt grows by N on the standbys in total and not on the primary', async () => {
    const before = byNode(await psql('SHOW POOL_NODES'));
    const N = 25;
    for (const c of [client(), client()]) {
      await c.connect();
      try {
        for (let i = 0; i < N; i++) await c.query(`SELECT ${i}`);
      } finally {
        await c.end();
      }
    }
    const after = byNode(await psql('SHOW POOL_NODES'));
    const grown = (id: string): number => Number(after.get(id)!['select_cnt']) - Number(before.get(id)!['select_cnt']);
    assert.equal(grown('0'), 0, 'no reads on the primary (weight 0)');
    assert.equal(grown('1') + grown('2'), 2 * N, `standbys served ${grown('1')} + ${grown('2')}`);
    // SHOW POOL_BACKEND_STATS shows the same select counts.
    const stats = byNode(await psql('SHOW POOL_BACKEND_STATS'));
    for (const id of ['0', '1', '2']) assert.equal(stats.get(id)!['select_cnt'], after.get(id)!['select_cnt']);
  });

  test('writes grow SHOW POOL_BACKEND_STATS insert/update/delete/ddl counters on node 0 only', async () => {
    const t0 = await psql('SHOW POOL_BACKEND_STATS');
    assert.deepEqual(t0.columns, BACKEND_STATS_COLUMNS);
    const before = byNode(t0);
    const c = client();
    await c.connect();
    try {
      await c.query('CREATE TABLE admin_counts (id int primary key, v text)');
      for (let i = 0; i < 3; i++) await c.query(`INSERT INTO admin_counts VALUES (${i}, 'x')`);
      for (let i = 0; i < 2; i++) await c.query(`UPDATE admin_counts SET v = 'y' WHERE id = ${i}`);
      await c.query('DELETE FROM admin_counts WHERE id = 2');
      await c.query('DROP TABLE admin_counts');
    } finally {
      await c.end();
    }
    const after = byNode(await psql('SHOW POOL_BACKEND_STATS'));
    const grown = (id: string, col: string): number => Number(after.get(id)![col]) - Number(before.get(id)![col]);
    assert.deepEqual(['insert_cnt', 'update_cnt', 'delete_cnt', 'ddl_cnt'].map((k) => grown('0', k)), [3, 2, 1, 2]);
    for (const id of ['1', '2']) {
      assert.deepEqual(['insert_cnt', 'update_cnt', 'delete_cnt', 'ddl_cnt'].map((k) => grown(id, k)), [0, 0, 0, 0], `node ${id}`);
    }
    for (const [id, r] of after) {
      assert.equal(r['status'], 'up');
      assert.equal(r['role'], id === '0' ? 'primary' : 'standby');
    }
  });

  test('SHOW POOL_PROCESSES and SHOW POOL_POOLS show live sessions with their database and user', async () => {
    const alice = client('alice', 'appdb');
    await alice.connect();
    try {
      await alice.query('SELECT 1');
      // The last statement on her connection: an extended-protocol one (node-postgres's Parse).
      await alice.query('SELECT $1::int AS alice_last', [7]);
      const pid = String((alice as unknown as { processID: number }).processID);
      const alicePort = String((alice as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort);
      const procs = await psql('SHOW POOL_PROCESSES');
      assert.deepEqual(procs.columns, PROCESSES_COLUMNS);
      assert.equal(procs.rows.length, NUM_INIT_CHILDREN, 'one row per client slot');
      const mine = procs.rows.find((r) => r['pool_pid'] === pid);
      assert.ok(mine, `a row for alice's session (pid ${pid}) in\n${JSON.stringify(procs.rows, null, 1)}`);
      assert.equal(mine['database'], 'appdb');
      assert.equal(mine['username'], 'alice');
      assert.match(mine['start_time']!, TIMESTAMP);
      assert.match(mine['status']!, /^Idle/);
      // The psql asking is a live session too, executing this command.
      const self = procs.rows.find((r) => r['pool_pid'] !== pid && r['username'] === 'postgres');
      assert.ok(self, 'a row for the psql session');
      assert.equal(self['database'], 'postgres');
      assert.equal(self['status'], 'Execute command');
      for (const r of procs.rows.filter((x) => x['database'] === '')) assert.equal(r['status'], 'Wait for connection');

      const pools = await psql('SHOW POOL_POOLS');
      assert.deepEqual(pools.columns, POOLS_COLUMNS);
      assert.equal(pools.rows.length, NUM_INIT_CHILDREN * MAX_POOL * 3, 'num_init_children × max_pool × nodes rows');
      const alicePools = pools.rows.filter((r) => r['pool_pid'] === pid && r['pool_id'] === '0');
      assert.deepEqual(alicePools.map((r) => r['backend_id']), ['0', '1', '2']);
      // Rows of backends she holds a connection to name her database and user (pgpool leaves unconnected ones blank).
      for (const r of alicePools) {
        const connected = r['pool_connected'] === '1';
        assert.equal(r['database'], connected ? 'appdb' : '', `backend ${r['backend_id']}`);
        assert.equal(r['username'], connected ? 'alice' : '', `backend ${r['backend_id']}`);
      }
      // Alice's SELECT went to her load-balance node: that row holds a live backend connection.
      const lb = alicePools.filter((r) => r['load_balance_node'] === '1');
      assert.equal(lb.length, 1);
      assert.notEqual(lb[0]!['backend_id'], '0');
      assert.equal(lb[0]!['pool_connected'], '1');
      assert.match(lb[0]!['pool_backendpid']!, /^[1-9]\d*$/);
      assert.equal(lb[0]!['majorversion'], '3');
      // pgpool 4.7's columns: who the client is, and the last statement on that backend connection.
      assert.equal(lb[0]!['client_host'], '127.0.0.1');
      assert.equal(lb[0]!['client_port'], alicePort);
      assert.equal(lb[0]!['statement'], 'SELECT $1::int AS alice_last');
      for (const r of alicePools.filter((x) => x['pool_connected'] !== '1')) assert.equal(r['statement'], '');
      const realPid = await fx.cluster.psql(fx.cluster.nodes[Number(lb[0]!['backend_id'])]!.id,
        "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE usename = 'alice' AND datname = 'appdb'");
      assert.ok(realPid.trim().split(',').includes(lb[0]!['pool_backendpid']!), `pool_backendpid ${lb[0]!['pool_backendpid']} is alice's backend (${realPid.trim()})`);
    } finally {
      await alice.end();
    }
    // Once alice has left, her slot is free again.
    await eventually(async () => !(await psql('SHOW POOL_PROCESSES')).rows.some((r) => r['username'] === 'alice'), 'alice gone from POOL_PROCESSES');
  });

  test('SHOW POOL_VERSION, SHOW POOL_STATUS', async () => {
    const v = await psql('SHOW POOL_VERSION');
    assert.deepEqual(v.columns, ['pool_version']);
    assert.equal(v.rows.length, 1);
    assert.match(v.rows[0]!['pool_version']!, /^4\.7\.\d+ \(pgmaitre\)$/, 'pgpool_compatibility defaults to 4.7');

    const s = await psql('SHOW POOL_STATUS');
    assert.deepEqual(s.columns, ['item', 'value', 'description']);
    const items = new Map(s.rows.map((r) => [r['item']!, r['value']!]));
    assert.equal(items.get('port'), String(px.port));
    assert.equal(items.get('num_init_children'), String(NUM_INIT_CHILDREN));
    assert.equal(items.get('health_check_period'), '1');
    assert.equal(items.get('backend_hostname0'), fx.cluster.nodes[0]!.host);
    assert.equal(items.get('backend_port2'), String(fx.cluster.nodes[2]!.port));
    assert.equal(items.get('backend_weight1'), '0.500000');
  });

  test('SHOW POOL_HEALTH_CHECK_STATS: counts grow with health_check_period = 1', async () => {
    const first = await psql('SHOW POOL_HEALTH_CHECK_STATS');
    assert.deepEqual(first.columns, HC_COLUMNS);
    assert.equal(first.rows.length, 3);
    await new Promise((r) => setTimeout(r, 2500));
    const second = byNode(await psql('SHOW POOL_HEALTH_CHECK_STATS'));
    for (const r0 of first.rows) {
      const r1 = second.get(r0['node_id']!)!;
      assert.equal(r1['status'], 'up');
      assert.equal(r1['role'], r0['node_id'] === '0' ? 'primary' : 'standby');
      assert.ok(Number(r1['total_count']) >= Number(r0['total_count']) + 2, `node ${r0['node_id']}: total_count ${r0['total_count']} -> ${r1['total_count']}`);
      assert.ok(Number(r1['success_count']) >= Number(r0['success_count']) + 2);
      assert.equal(r1['fail_count'], '0');
      assert.match(r1['last_health_check']!, TIMESTAMP);
      assert.match(r1['last_successful_health_check']!, TIMESTAMP);
      assert.match(r1['average_duration']!, /^\d+\.\d{6}$/);
    }
  });

  test('PGPOOL SHOW/SET/RESET: a session parameter changes and resets; others are refused as pgpool refuses them', async () => {
    const c = client();
    await c.connect();
    try {
      const show = async (): Promise<string> => {
        const r = await c.query('PGPOOL SHOW client_min_messages');
        assert.deepEqual(r.fields.map((f) => f.name), ['client_min_messages']);
        return r.rows[0].client_min_messages as string;
      };
      assert.equal(await show(), 'notice');
      const set = await c.query("PGPOOL SET client_min_messages TO 'warning'");
      assert.equal(set.command, 'SET');
      assert.equal(await show(), 'warning');
      // Another session still sees the configured value.
      assert.equal((await psql('PGPOOL SHOW client_min_messages')).rows[0]!['client_min_messages'], 'notice');
      const reset = await c.query('PGPOOL RESET client_min_messages');
      assert.equal(reset.command, 'RESET');
      assert.equal(await show(), 'notice');
      await c.query('PGPOOL SET client_min_messages = error');
      await c.query('PGPOOL RESET ALL');
      assert.equal(await show(), 'notice');

      await assert.rejects(c.query('PGPOOL SET port = 1234'), (e: pg.DatabaseError) => {
        assert.equal(e.message, 'invalid Context, value for parameter "port" cannot be changed');
        assert.equal(e.code, 'XX000');
        assert.equal(e.severity, 'ERROR');
        return true;
      });
      await assert.rejects(c.query('PGPOOL SET no_such_thing = 1'), { message: 'unrecognized configuration parameter "no_such_thing"', code: 'XX000' });
      await assert.rejects(c.query("PGPOOL SET client_min_messages = 'loud'"), { message: 'invalid value for parameter "client_min_messages": "loud"', code: 'XX000' });
      // The session lives on.
      assert.equal((await c.query('SELECT 42 AS x')).rows[0].x, 42);
      const group = await c.query('PGPOOL SHOW health_check');
      assert.deepEqual(group.fields.map((f) => f.name), ['item', 'value', 'description']);
      assert.ok(group.rows.some((r: { item: string; value: string }) => r.item === 'health_check_period' && r.value === '1'));
    } finally {
      await c.end();
    }
  });

  test('any other SHOW goes to PostgreSQL', async () => {
    const c = client();
    await c.connect();
    try {
      assert.equal((await c.query('SHOW search_path')).rows[0].search_path, '"$user", public');
      await c.query('SET search_path TO admin_elsewhere, public');
      assert.equal((await c.query('SHOW search_path')).rows[0].search_path, 'admin_elsewhere, public');
      const real = (await fx.cluster.psql('primary', 'SHOW server_version')).trim();
      assert.equal((await c.query('SHOW server_version')).rows[0].server_version, real);
      // A real PostgreSQL SHOW is typed text (OID 25), unlike pgmaitre's (OID 0).
      assert.equal((await c.query('SHOW work_mem')).fields[0]!.dataTypeID, 25);
      await assert.rejects(c.query('SHOW pool_nonsense'), { code: '42704' });
    } finally {
      await c.end();
    }
  });

  test('every admin result: all columns type OID 0, tag SELECT n (node-postgres and raw protocol)', async () => {
    const commands = ['SHOW POOL_NODES', 'SHOW POOL_PROCESSES', 'SHOW POOL_POOLS', 'SHOW POOL_VERSION', 'SHOW POOL_HEALTH_CHECK_STATS',
      'SHOW POOL_BACKEND_STATS', 'SHOW POOL_STATUS', 'PGPOOL SHOW port', 'PGPOOL SHOW backend', 'PGPOOL SHOW ALL', 'show  pool_nodes ;'];
    const c = client();
    await c.connect();
    try {
      for (const sql of commands) {
        const r = await c.query(sql);
        assert.ok(r.fields.length > 0, sql);
        for (const f of r.fields) assert.equal(f.dataTypeID, 0, `${sql}: column ${f.name} has type ${f.dataTypeID}`);
        assert.equal(r.command, 'SELECT', sql);
        assert.equal(r.rowCount, r.rows.length, sql);
        assert.ok(r.rows.length > 0, sql);
      }
    } finally {
      await c.end();
    }
    const raw = await RawClient.connect(px.port, { user: 'postgres', database: 'postgres' });
    try {
      for (const sql of commands) {
        raw.send(encodeQuery(sql));
        const msgs = await raw.untilReady();
        const types = msgs.map((m) => m.type).join('');
        assert.match(types, /^TD+CZ$/, `${sql}: ${types}`);
        const rows = msgs.filter((m) => m.type === 'D').length;
        const tagFrame = msgs.find((m) => m.type === 'C')!.frame;
        assert.equal(tagFrame.subarray(5, tagFrame.length - 1).toString(), `SELECT ${rows}`, sql);
        const desc = msgs[0]!.frame;
        const ncols = desc.readInt16BE(5);
        let pos = 7;
        for (let i = 0; i < ncols; i++) {
          pos = desc.indexOf(0, pos) + 1;
          assert.equal(desc.readInt32BE(pos + 6), 0, `${sql}: column ${i} type OID`);
          assert.equal(desc.readInt16BE(pos + 16), 0, `${sql}: column ${i} text format`);
          pos += 18;
        }
      }
    } finally {
      raw.close();
    }
  });
});
