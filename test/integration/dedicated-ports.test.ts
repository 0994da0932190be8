/**
 * Issue 12, dedicated ports: write_port reaches the primary and read_port a standby (psql reads
 * inet_server_port() and pg_is_in_recovery() through each), pgbench runs through both with 0
 * failures, pool_hba + pool_passwd and TLS apply, a CancelRequest reaches the relayed backend,
 * relays show in SHOW POOL_PROCESSES, and when the primary is detached the write port's
 * connections are closed and new ones refused with 57P03 until a primary is back. The
 * per-address connection-rate limit refuses the address over the limit with 53300 on every port
 * while another loopback address still connects.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';
import { makeTestCerts } from '../harness/certs';
import { exec } from '../harness/exec';
import { freePort } from '../../src/demo/free-port';
import { encodeStartupMessage } from '../../src/protocol/startup';

const HEALTH = "sr_check_user = 'postgres'\nhealth_check_user = 'postgres'\nhealth_check_period = 1\nhealth_check_timeout = 2\nsr_check_period = 1\nsearch_primary_node_timeout = 2\n";

describe('dedicated write and read ports', { timeout: 240_000 }, () => {
  const fx = withCluster({ standbys: 2, pgbench: 1, users: [{ name: 'app', password: 'apppw' }] });
  let px: InProcess;
  let wport = 0;
  let rport = 0;
  const certs = makeTestCerts();
  before(async () => {
    wport = await freePort();
    rport = await freePort();
    px = await startInProcess(`${backendLines(fx.cluster, [0, 1, 1])}\n${HEALTH}write_port = ${wport}\nread_port = ${rport}\n`
      + `load_balance_algorithm = 'round_robin'\nenable_pool_hba = on\n`
      + `client_connection_rate_limit = 40\nclient_connection_rate_window = 60\n`, {
      'pool_hba.conf': 'host all postgres 127.0.0.0/8 trust\nhost all app 127.0.0.0/8 md5\n',
      pool_passwd: 'app:TEXTapppw\n',
    });
  });
  after(async () => { await px?.stop(); });

  const psql = (port: number, sql: string, env: NodeJS.ProcessEnv = {}, user = 'postgres') =>
    exec(fx.cluster.pg.bin('psql'), ['-X', '-At', '-h', '127.0.0.1', '-p', String(port), '-U', user, '-d', 'postgres', '-c', sql],
      { env: { ...process.env, PGSSLMODE: 'disable', ...env } });

  test('psql: the write port reaches the primary, the read port the standbys in turn', async () => {
    const w = await psql(wport, 'SELECT inet_server_port(), pg_is_in_recovery()');
    assert.equal(w.code, 0, w.stderr);
    assert.equal(w.stdout.trim(), `${fx.cluster.primary.port}|f`);
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await psql(rport, 'SELECT inet_server_port(), pg_is_in_recovery()');
      assert.equal(r.code, 0, r.stderr);
      seen.push(r.stdout.trim());
    }
    const [s1, s2] = fx.cluster.standbys.map((s) => `${s.port}|t`);
    // round_robin with equal weights: strictly alternating.
    assert.ok(seen.join(',') === [s1, s2, s1, s2].join(',') || seen.join(',') === [s2, s1, s2, s1].join(','), seen.join(','));
  });

  test('pgbench through both ports: 0 failed transactions, writes on the primary', async () => {
    const bench = (port: number, args: string[]) => exec(fx.cluster.pg.bin('pgbench'), ['-n', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', ...args, 'postgres'],
      { env: { ...process.env, PGSSLMODE: 'disable' }, timeoutMs: 60_000 });
    const r = await bench(rport, ['-S', '-c', '4', '-j', '2', '-t', '200', '-M', 'prepared']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /number of transactions actually processed: 800\/800/);
    const w = await bench(wport, ['-c', '4', '-j', '2', '-t', '50']);
    assert.equal(w.code, 0, w.stderr);
    assert.match(w.stdout, /number of failed transactions: 0 /);
    assert.ok(px.app.dedicated!.served('read', 1) > 0 && px.app.dedicated!.served('read', 2) > 0);
    assert.equal(px.app.dedicated!.served('read', 0), 0, 'no read-port connection on the primary');
  });

  test('pool_hba + pool_passwd apply (md5 user), wrong password is 28P01', async () => {
    const ok = await psql(wport, 'SELECT current_user', { PGPASSWORD: 'apppw' }, 'app');
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.trim(), 'app');
    const bad = await psql(rport, 'SELECT 1', { PGPASSWORD: 'nope' }, 'app');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /password authentication failed for user "app"/);
  });

  test('TLS on the dedicated ports (ssl = on; the backends answer N and stay in clear)', async () => {
    const w2 = await freePort();
    const r2 = await freePort();
    const tpx = await startInProcess(`${backendLines(fx.cluster, [0, 1, 1])}\n${HEALTH}write_port = ${w2}\nread_port = ${r2}\n`
      + `ssl = on\nssl_cert = '${certs.serverCert}'\nssl_key = '${certs.serverKey}'\n`);
    try {
      for (const [port, want] of [[w2, 'f'], [r2, 't']] as const) {
        const r = await psql(port, 'SELECT pg_is_in_recovery()', { PGSSLMODE: 'require' });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim(), want);
      }
      const b = await exec(fx.cluster.pg.bin('pgbench'), ['-n', '-S', '-c', '2', '-t', '100', '-h', '127.0.0.1', '-p', String(r2), '-U', 'postgres', 'postgres'],
        { env: { ...process.env, PGSSLMODE: 'require' } });
      assert.match(b.stdout, /number of transactions actually processed: 200\/200/, b.stderr);
    } finally {
      await tpx.stop();
    }
  });

  test('a CancelRequest reaches the relayed backend; relays show in SHOW POOL_PROCESSES', async () => {
    const c = new Client({ host: '127.0.0.1', port: wport, user: 'postgres', database: 'postgres' });
    await c.connect();
    const key = c as unknown as { processID: number; secretKey: number };
    const running = c.query('SELECT pg_sleep(20)').then(() => 'finished', (e: { code?: string }) => e.code);
    await new Promise((r) => setTimeout(r, 300));
    const show = await psql(px.port, 'SHOW POOL_PROCESSES');
    assert.match(show.stdout, /Relay \(write port\)/);
    const cancel = Buffer.alloc(16);
    cancel.writeInt32BE(16, 0);
    cancel.writeInt32BE(80877102, 4);
    cancel.writeInt32BE(key.processID, 8);
    cancel.writeInt32BE(key.secretKey, 12);
    await new Promise<void>((resolve) => { const s = net.connect(rport, '127.0.0.1', () => s.end(cancel)); s.on('close', () => resolve()); s.on('error', () => resolve()); });
    assert.equal(await running, '57014');
    await c.end();
  });

  test('the primary detached: write-port connections closed, new ones get 57P03; back after attach', async () => {
    const c = new Client({ host: '127.0.0.1', port: wport, user: 'postgres', database: 'postgres' });
    c.on('error', () => {});
    await c.connect();
    await c.query('SELECT 1');
    await px.app.health.detachNode(0);
    await eventually(async () => c.query('SELECT 1').then(() => false, () => true), 'write-port connection closed', 5000);
    const refused = await psql(wport, 'SELECT 1');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /no primary node is available/);
    const read = await psql(rport, 'SELECT pg_is_in_recovery()');
    assert.equal(read.stdout.trim(), 't', 'the read port goes on');
    await px.app.health.attachNode(0);
    await eventually(() => px.app.ctx.cluster.primaryId() === 0, 'primary back', 10_000);
    const again = await psql(wport, 'SELECT pg_is_in_recovery()');
    assert.equal(again.stdout.trim(), 'f');
  });

  test('client_connection_rate_limit: the address over the limit gets 53300, another address still connects', async () => {
    // Use up the budget of 127.0.0.1 (40 per 60 s, some already spent by the tests above).
    let refusedMsg = '';
    for (let i = 0; i < 45 && refusedMsg === ''; i++) {
      const r = await psql(i % 2 === 0 ? rport : px.port, 'SELECT 1');
      if (r.code !== 0) refusedMsg = r.stderr;
    }
    assert.match(refusedMsg, /too many connections from host "127.0.0.1"/);
    const smart = await psql(px.port, 'SELECT 1');
    assert.match(smart.stderr, /too many connections/);
    // 127.0.0.2 is a different client address: unaffected.
    const other = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: wport, localAddress: '127.0.0.2' }, () => s.write(encodeStartupMessage({ user: 'postgres', database: 'postgres' })));
      let got = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        got = Buffer.concat([got, d]);
        if (got.includes(Buffer.from('Z\0\0\0\x05'))) { s.destroy(); resolve(String.fromCharCode(got[0]!)); }
        else if (got[0] === 0x45) { s.destroy(); resolve(got.toString('latin1')); }
      });
      s.on('error', reject);
    });
    assert.equal(other, 'R', `127.0.0.2 logs in (got ${other})`);
  });
});
