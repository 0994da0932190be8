/**
 * README "Troubleshooting": each case produced for real, with the line pgmaitre logs (or the
 * error the client gets) that the README shows, and the fix the README gives applied and seen
 * to work. A real pgmaitre (child process, default log_min_messages) in front of a real
 * primary + standby:
 *   1. connection refused: pgmaitre listens on another address; or its port is taken;
 *   2. health check user missing in the nodes' pg_hba.conf;
 *   3. writes failing on a standby: ALWAYS_PRIMARY names a standby (25006);
 *   4. every node down (57P03 at login, /health 503), then attach-node after the restart;
 *   5. writes failing with no primary (57P03), then a standby promoted: writes work again.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import { freePort, REPO_ROOT, startPgmaitre, withCluster, type PgmaitreProcess } from '../harness/cluster';
import { backendLines } from '../harness/in-process';
import { exec } from '../harness/exec';
import { pcpHash } from '../../src/config/pcp-conf';
import { writeDataFile } from '../../src/demo/cluster-files';

const BIN = path.join(REPO_ROOT, 'bin', 'pgmaitre.js');
const HEALTH = "sr_check_user = 'postgres'\nhealth_check_user = 'postgres'\nhealth_check_period = 1\nhealth_check_timeout = 2\nhealth_check_max_retries = 0\nsr_check_period = 1\nsearch_primary_node_timeout = 2\n";

describe('README troubleshooting cases', { timeout: 240_000 }, () => {
  const fx = withCluster({ standbys: 1, users: [{ name: 'pgmaitre_check', password: 'check' }] });
  const running: PgmaitreProcess[] = [];
  after(async () => { for (const p of running) await p.stop(); });

  /** A pgmaitre in front of the cluster; PCP (admin/pw) and HTTP on free ports. */
  async function start(extra: string): Promise<PgmaitreProcess & { pcp: string[]; env: NodeJS.ProcessEnv; http: number }> {
    const pcpPort = await freePort();
    const http = await freePort();
    const px = await startPgmaitre({
      config: `listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n${backendLines(fx.cluster)}\n${HEALTH}` +
        `pcp_listen_addresses = '127.0.0.1'\npcp_port = ${pcpPort}\npcp_socket_dir = ''\nhttp_port = ${http}\nhttp_listen_addresses = '127.0.0.1'\n${extra}`,
      files: { 'pcp.conf': `admin:${pcpHash('pw')}\n`, pcppass: `*:*:admin:pw\n` },
    });
    running.push(px);
    return Object.assign(px, { pcp: ['-h', '127.0.0.1', '-p', String(pcpPort), '-U', 'admin', '-w'], env: { ...process.env, PCPPASSFILE: path.join(px.dir, 'pcppass') }, http });
  }
  async function stop(px: PgmaitreProcess): Promise<void> {
    await px.stop();
    running.splice(running.indexOf(px as PgmaitreProcess), 1);
  }
  const psql = (port: number, sql: string, host = '127.0.0.1') =>
    exec(fx.cluster.pg.bin('psql'), ['-X', '-h', host, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', sql], { env: { ...process.env, PGCONNECT_TIMEOUT: '5' } });
  const waitFor = async (cond: () => Promise<boolean> | boolean, what: string, ms = 10_000): Promise<void> => {
    const until = Date.now() + ms;
    while (!(await cond())) {
      if (Date.now() > until) throw new Error(`timed out: ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const nodeStatus = async (px: { pcp: string[]; env: NodeJS.ProcessEnv }, id: number): Promise<string> =>
    (await exec(process.execPath, [BIN, 'node-info', ...px.pcp, '-n', String(id)], { env: px.env })).stdout.split(' ')[2] ?? '';

  test('1. connection refused: pgmaitre listens on another address; its port is taken', async () => {
    const px = await start('');
    // The client uses an address pgmaitre does not listen on (127.0.0.2 stands for the host's LAN address).
    const refused = await psql(px.port, 'SELECT 1', '127.0.0.2');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, new RegExp(`connection to server at "127\\.0\\.0\\.2", port ${px.port} failed: Connection refused`));
    assert.match(px.logs(), new RegExp(`"level":"log".*"msg":"pgmaitre listening on 127\\.0\\.0\\.1:${px.port}"`));
    // A second pgmaitre on the same port cannot start, and says why in one line.
    const conf = path.join(px.dir, 'pgpool.conf');
    const taken = await exec(process.execPath, [BIN, '-n', '-f', conf], { timeoutMs: 20_000 });
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, new RegExp(`^pgmaitre: could not start: cannot listen on 127\\.0\\.0\\.1 port ${px.port} \\(listen_addresses/port\\): address already in use .*\\[EADDRINUSE\\]$`, 'm'));
    assert.doesNotMatch(taken.stderr, /\n\s+at /, 'no stack trace');
    // Fix: listen where clients connect ('*' in real life), then restart.
    const text = fs.readFileSync(conf, 'utf8');
    const pcpConf = fs.readFileSync(path.join(px.dir, 'pcp.conf'), 'utf8');
    await stop(px);
    fs.mkdirSync(path.dirname(conf), { recursive: true });
    fs.writeFileSync(path.join(px.dir, 'pcp.conf'), pcpConf);
    fs.writeFileSync(conf, text.replace("listen_addresses = '127.0.0.1'", "listen_addresses = '127.0.0.1,127.0.0.2'"));
    const check = await exec(process.execPath, [BIN, 'check', '-f', conf]);
    assert.equal(check.code, 0, check.stdout);
    const again = await startPgmaitre({ config: fs.readFileSync(conf, 'utf8'), files: { 'pcp.conf': pcpConf } });
    running.push(again);
    fs.rmSync(path.dirname(conf), { recursive: true, force: true });
    const ok = await psql(again.port, 'SELECT 1', '127.0.0.2');
    assert.equal(ok.code, 0, ok.stderr);
    await stop(again);
  });

  test('2. health check user missing in pg_hba.conf: nodes detached, the PostgreSQL error in the log; fixed by a pg_hba line, reload, attach-node', async () => {
    const hbaOf = (n: { dataDir: string }) => fs.readFileSync(path.join(n.dataDir, 'pg_hba.conf'), 'utf8');
    const saved = fx.cluster.nodes.map(hbaOf);
    // pg_hba.conf that lets only postgres in over TCP: pgmaitre_check has no line.
    for (const [i, n] of fx.cluster.nodes.entries()) {
      writeDataFile(n.dataDir, 'pg_hba.conf', saved[i]!.replace(/^host\s+all\s+all\s+127\.0\.0\.1\/32\s+(\S+)$/m, 'host all postgres 127.0.0.1/32 $1'));
      await fx.cluster.psql(n.id, 'SELECT pg_reload_conf()');
    }
    try {
      const px = await start("health_check_user = 'pgmaitre_check'\nhealth_check_password = 'check'\n");
      await px.waitForLog(/"event":"node_down","node_id":1.*"msg":"node 1 detached \(health_check_failed: no pg_hba\.conf entry for host \\"127\.0\.0\.1\\", user \\"pgmaitre_check\\", database \\"postgres\\", no encryption \(28000\)\)"/);
      await px.waitForLog(/"level":"error".*"msg":"health check of node 0 failed after 1 attempt\(s\): no pg_hba\.conf entry for host \\"127\.0\.0\.1\\", user \\"pgmaitre_check\\"/);
      // Fix: a pg_hba.conf line for the health check user on every node, reload, attach.
      for (const [i, n] of fx.cluster.nodes.entries()) {
        writeDataFile(n.dataDir, 'pg_hba.conf', `${hbaOf(n)}host postgres pgmaitre_check 127.0.0.1/32 trust\n`);
        await fx.cluster.psql(n.id, 'SELECT pg_reload_conf()');
        const r = await exec(process.execPath, [BIN, 'attach-node', ...px.pcp, '-n', String(i)], { env: px.env });
        assert.match(r.stdout, /pcp_attach_node -- Command Successful/, r.stderr);
      }
      await waitFor(async () => (await nodeStatus(px, 0)) === '2' && (await nodeStatus(px, 1)) === '2', 'both nodes up after attach-node', 10_000);
      assert.equal((await psql(px.port, 'SELECT 1')).code, 0);
      await stop(px);
    } finally {
      for (const [i, n] of fx.cluster.nodes.entries()) {
        writeDataFile(n.dataDir, 'pg_hba.conf', saved[i]!);
        await fx.cluster.psql(n.id, 'SELECT pg_reload_conf()');
      }
    }
  });

  test('3. writes failing on a standby: ALWAYS_PRIMARY names a standby', async () => {
    const px = await start("health_check_user = 'postgres'\nbackend_flag1 = 'ALWAYS_PRIMARY'\n");
    const r = await psql(px.port, 'CREATE TABLE IF NOT EXISTS ts_t (i int)');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ERROR: {2}cannot execute CREATE TABLE in a read-only transaction/);
    assert.match(px.logs(), /"level":"error".*"event":"always_primary_in_recovery","node_id":1.*node 1 is flagged ALWAYS_PRIMARY but is in recovery \(a standby\)/);
    await stop(px);
    // Fix: no ALWAYS_PRIMARY (pgmaitre finds the primary itself), restart.
    const fixed = await start("health_check_user = 'postgres'\n");
    const w = await psql(fixed.port, 'CREATE TABLE IF NOT EXISTS ts_t (i int); INSERT INTO ts_t VALUES (1)');
    assert.equal(w.code, 0, w.stderr);
    await stop(fixed);
  });

  test('4. every node down: logins get 57P03, /health 503; after PostgreSQL is back, attach-node', async () => {
    const px = await start("health_check_user = 'postgres'\n");
    await fx.cluster.stopNode(fx.cluster.standbys[0]!.id, 'fast');
    await fx.cluster.stopNode(fx.cluster.primary.id, 'fast');
    await px.waitForLog(/"msg":"node 0 detached \(health_check_failed: connect ECONNREFUSED 127\.0\.0\.1:\d+\)"/);
    await px.waitForLog(/"msg":"node 1 detached \(health_check_failed: connect ECONNREFUSED 127\.0\.0\.1:\d+\)"/);
    const r = await psql(px.port, 'SELECT 1');
    assert.match(r.stderr, /FATAL: {2}no primary node is available\nHINT: {2}check SHOW POOL_NODES; pgmaitre is waiting for a primary to be found or promoted/);
    const health = await fetch(`http://127.0.0.1:${px.http}/health`);
    assert.equal(health.status, 503);
    assert.deepEqual(await health.json(), { state: 'no backend up', nodes_up: 0, primary_id: -1 });
    const info = await exec(process.execPath, [BIN, 'node-info', ...px.pcp, '-a'], { env: px.env });
    assert.match(info.stdout, /^127\.0\.0\.1 \d+ 3 /m, 'pcp node-info works while logins do not (status 3 = down)');
    // Fix: start PostgreSQL, then attach the nodes (or set auto_failback = on).
    await fx.cluster.startNode(fx.cluster.primary.id);
    await fx.cluster.startNode(fx.cluster.standbys[0]!.id);
    for (const id of [0, 1]) await exec(process.execPath, [BIN, 'attach-node', ...px.pcp, '-n', String(id)], { env: px.env });
    await waitFor(async () => (await psql(px.port, 'SELECT 1')).code === 0, 'logins work again', 15_000);
    assert.equal((await fetch(`http://127.0.0.1:${px.http}/health`)).status, 200);
    await stop(px);
  });

  test('5. writes failing with no primary: 57P03 in the session, reads go on; a standby promoted, writes work again', async () => {
    const px = await start("health_check_user = 'postgres'\nbackend_weight0 = 0\n");
    await fx.cluster.waitForStreaming();
    const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', database: 'postgres' });
    c.on('error', () => {});
    await c.connect();
    await c.query('CREATE TABLE IF NOT EXISTS ts_w (i int)');
    await fx.cluster.stopNode(fx.cluster.primary.id, 'fast');
    await px.waitForLog(/"msg":"node 0 detached/);
    const failed = await c.query('INSERT INTO ts_w VALUES (1)').then(() => null, (e: { code?: string; message: string; hint?: string }) => e);
    assert.equal(failed?.code, '57P03', String(failed?.message));
    assert.equal(failed?.message, 'no primary node is available');
    assert.equal(failed?.hint, 'reads still work; writes will again once a primary is up (see SHOW POOL_NODES)');
    assert.equal((await c.query('SELECT pg_is_in_recovery() AS r')).rows[0]?.r, true, 'reads go on, on the standby');
    await px.waitForLog(/"event":"primary_search_timeout".*writes fail until a node is promoted/);
    // Fix: promote the standby (pg_ctl promote, SELECT pg_promote(), or your HA tool): pgmaitre finds it.
    await fx.cluster.psql(fx.cluster.standbys[0]!.id, 'SELECT pg_promote()');
    await waitFor(async () => (await c.query('INSERT INTO ts_w VALUES (2)').then(() => true, () => false)), 'writes work again in the same session', 15_000);
    assert.match(px.logs(), /"level":"log".*"msg":"primary node is 1 /);
    await c.end();
    await stop(px);
  });
});
