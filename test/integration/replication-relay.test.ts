/**
 * Replication connections through pgmaitre (ports/replication-relay.ts), against a real cluster
 * with wal_level = logical: IDENTIFY_SYSTEM over logical and physical replication connections
 * returns the primary's system id (plain and TLS, smart endpoint and write port); the primary
 * authenticates them itself (its pg_hba.conf asks `repl` for a SCRAM password); pg_basebackup
 * makes a backup pg_verifybackup accepts; pg_recvlogical creates a slot and receives a change made
 * on the primary while the relay shows in SHOW POOL_PROCESSES and holds a client slot; a
 * CancelRequest pgmaitre cannot place harms nothing; when the primary is detached the relay is
 * closed and new replication connections get 57P03. With enable_pool_hba = on pool_hba.conf
 * applies first (the `replication` keyword for physical connections); a backend given as a Unix
 * socket directory works; allow_replication_connections = off (after a reload) refuses with a
 * FATAL naming the key; the read port refuses, pointing to the right ports.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { withCluster } from '../harness/cluster';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';
import { makeTestCerts } from '../harness/certs';
import { exec } from '../harness/exec';
import { freePort } from '../../src/demo/free-port';
import { hbaText, writeDataFile } from '../../src/demo/cluster-files';
import { encodeCancelRequest } from '../../src/protocol/startup';

const HEALTH = "sr_check_user = 'postgres'\nhealth_check_user = 'postgres'\nhealth_check_period = 1\nhealth_check_timeout = 2\nsr_check_period = 1\nsearch_primary_node_timeout = 2\n";

describe('replication connections are relayed to the primary', { timeout: 240_000 }, () => {
  const fx = withCluster({ standbys: 1, settings: { wal_level: 'logical' }, users: [{ name: 'repl', password: 'replpw' }] });
  const certs = makeTestCerts();
  let px: InProcess;
  let wport = 0;
  let rport = 0;
  let systemId = '';
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-repl-'));

  before(async () => {
    const c = fx.cluster;
    // The primary asks `repl` for its SCRAM password on replication connections: the relay must
    // carry the primary's own authentication exchange.
    await c.psql(c.primary.id, 'ALTER ROLE repl REPLICATION');
    writeDataFile(c.primary.dataDir, 'pg_hba.conf', `host replication repl 127.0.0.1/32 scram-sha-256\n${hbaText('trust')}`);
    await c.psql(c.primary.id, 'SELECT pg_reload_conf()');
    systemId = (await c.psql(c.primary.id, 'SELECT system_identifier FROM pg_control_system()')).trim();
    wport = await freePort();
    rport = await freePort();
    px = await startInProcess(`${backendLines(c)}\n${HEALTH}write_port = ${wport}\nread_port = ${rport}\n`
      + `ssl = on\nssl_cert = '${certs.serverCert}'\nssl_key = '${certs.serverKey}'\nlog_connections = on\n`);
  });
  after(async () => {
    await px?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ ...process.env, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '10', ...extra });
  const psqlConn = (conninfo: string, sql: string, extra: NodeJS.ProcessEnv = {}) =>
    exec(fx.cluster.pg.bin('psql'), ['-X', '-At', '-d', conninfo, '-c', sql], { env: env(extra), timeoutMs: 30_000 });
  const identify = (port: number, replication: string, extra: NodeJS.ProcessEnv = {}, user = 'postgres') =>
    psqlConn(`dbname=postgres replication=${replication} host=127.0.0.1 port=${port} user=${user}`, 'IDENTIFY_SYSTEM', extra);
  const recvlogical = (port: number, args: string[]) =>
    exec(fx.cluster.pg.bin('pg_recvlogical'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', ...args], { env: env(), timeoutMs: 30_000 });

  test('IDENTIFY_SYSTEM (logical and physical, plain and TLS, smart endpoint and write port) returns the primary\'s system id', async () => {
    for (const [port, replication, sslmode] of [[px.port, 'database', 'disable'], [px.port, 'true', 'require'], [wport, 'database', 'require'], [wport, 'on', 'disable']] as const) {
      const r = await identify(port, replication, { PGSSLMODE: sslmode });
      assert.equal(r.code, 0, `${port} ${replication} ${sslmode}: ${r.stderr}`);
      assert.equal(r.stdout.split('|')[0], systemId, r.stdout);
      if (replication === 'database') assert.equal(r.stdout.trim().split('|')[3], 'postgres');
    }
    const read = await identify(rport, 'database');
    assert.notEqual(read.code, 0);
    assert.match(read.stderr, /not accepted on the read port/);
  });

  test('the primary authenticates the client itself (its pg_hba.conf asks repl for SCRAM)', async () => {
    const ok = await identify(px.port, 'true', { PGPASSWORD: 'replpw' }, 'repl');
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.split('|')[0], systemId);
    const bad = await identify(px.port, 'true', { PGPASSWORD: 'wrong' }, 'repl');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /password authentication failed for user "repl"/);
    const invalid = await identify(px.port, 'maybe');
    assert.match(invalid.stderr, /invalid value for parameter "replication": "maybe"/);
  });

  test('pg_basebackup through pgmaitre (TLS) makes a backup pg_verifybackup accepts', async () => {
    const dest = path.join(tmp, 'backup');
    const r = await exec(fx.cluster.pg.bin('pg_basebackup'), ['-h', '127.0.0.1', '-p', String(px.port), '-U', 'postgres', '-D', dest, '-X', 'fetch', '-c', 'fast'],
      { env: env({ PGSSLMODE: 'require' }), timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(fs.existsSync(path.join(dest, 'PG_VERSION')));
    const v = await exec(fx.cluster.pg.bin('pg_verifybackup'), [dest], { timeoutMs: 60_000 });
    assert.equal(v.code, 0, v.stderr + v.stdout);
    assert.match(v.stdout, /backup successfully verified/);
  });

  test('pg_recvlogical receives a change made on the primary; the relay holds a slot and shows in SHOW POOL_PROCESSES; failover closes it', async () => {
    const created = await recvlogical(px.port, ['--create-slot', '-S', 'pgm_slot', '-P', 'test_decoding']);
    assert.equal(created.code, 0, created.stderr);
    // The --create-slot run's slot comes back once its relay has seen both ends close.
    await eventually(() => px.app.ctx.slots.inUse === 0, 'no client slot in use', 5000);
    const busyBefore = 0;
    const child = spawn(fx.cluster.pg.bin('pg_recvlogical'),
      ['-h', '127.0.0.1', '-p', String(px.port), '-U', 'postgres', '-d', 'postgres', '--start', '-S', 'pgm_slot', '-f', '-', '-n', '-s', '1', '-F', '0'],
      { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      await eventually(() => px.app.ctx.slots.inUse === busyBefore + 1, 'the relay holds a client slot', 10_000);
      const w = await psqlConn(`host=127.0.0.1 port=${px.port} user=postgres dbname=postgres`, 'CREATE TABLE repl_t (x int); INSERT INTO repl_t VALUES (42)');
      assert.equal(w.code, 0, w.stderr);
      await eventually(() => /table public\.repl_t: INSERT: x\[integer\]:42/.test(out), `the change arrives (got: ${out} ${err})`, 15_000);

      const show = await psqlConn(`host=127.0.0.1 port=${px.port} user=postgres dbname=postgres`, 'SHOW POOL_PROCESSES');
      assert.match(show.stdout, /\|postgres\|postgres\|[^|]+\|1\|Replication \(relayed to node 0\)/, show.stdout);

      // A CancelRequest naming no session of pgmaitre's (the client holds the primary's key): harmless.
      await new Promise<void>((resolve) => {
        const s = net.connect(px.port, '127.0.0.1', () => s.end(encodeCancelRequest(0, 12345)));
        s.on('close', () => resolve());
        s.on('error', () => resolve());
      });
      const still = await psqlConn(`host=127.0.0.1 port=${px.port} user=postgres dbname=postgres`, 'INSERT INTO repl_t VALUES (43)');
      assert.equal(still.code, 0, still.stderr);
      await eventually(() => /x\[integer\]:43/.test(out), 'the stream goes on after the CancelRequest', 15_000);

      // The primary detached (it is still running): the relay to it is closed by pgmaitre.
      await px.app.health.detachNode(0);
      const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000))]);
      assert.notEqual(code, 'timeout', 'pg_recvlogical was not disconnected');
      assert.notEqual(code, 0);
      assert.match(px.logs(), /closing replication connection to node 0: it is no longer the primary/);
      await eventually(() => px.app.ctx.slots.inUse === busyBefore, 'the slot is given back', 5000);
      const refused = await identify(px.port, 'database');
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /no primary node is available/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await px.app.health.attachNode(0);
    }
    await eventually(() => px.app.ctx.cluster.primaryId() === 0, 'primary back', 15_000);
    const dropped = await recvlogical(px.port, ['--drop-slot', '-S', 'pgm_slot']);
    assert.equal(dropped.code, 0, dropped.stderr);
  });

  test('enable_pool_hba = on: pool_hba.conf applies first (the replication keyword for physical connections)', async () => {
    const hpx = await startInProcess(`${backendLines(fx.cluster)}\n${HEALTH}enable_pool_hba = on\n`, {
      'pool_hba.conf': 'host replication repl 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n',
      pool_passwd: 'repl:TEXTreplpw\n',
    });
    try {
      const ok = await identify(hpx.port, 'true', { PGPASSWORD: 'replpw' }, 'repl');
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout.split('|')[0], systemId);
      const bad = await identify(hpx.port, 'true', { PGPASSWORD: 'wrong' }, 'repl');
      assert.match(bad.stderr, /password authentication failed for user "repl"/);
      const none = await identify(hpx.port, 'true');
      assert.match(none.stderr, /no pool_hba\.conf entry for replication connection from host "127\.0\.0\.1", user "postgres", SSL off/);
      const logical = await identify(hpx.port, 'database');
      assert.equal(logical.code, 0, logical.stderr);
      assert.equal(logical.stdout.split('|')[0], systemId);
    } finally {
      await hpx.stop();
    }
  });

  test('a backend given as a Unix socket directory (pg_basebackup verified); allow_replication_connections = off (reloaded) names the key', async () => {
    const dir = fx.cluster.dir;
    const lines = backendLines(fx.cluster).replace(/backend_hostname(\d+) = '[^']*'/g, `backend_hostname$1 = '${dir}'`);
    const upx = await startInProcess(`${lines}\n${HEALTH}`);
    try {
      await eventually(() => upx.app.ctx.cluster.primaryId() === 0, 'primary found over the Unix socket', 15_000);
      const ok = await identify(upx.port, 'database');
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout.split('|')[0], systemId);
      // Without ssl the relay reads the backend into its own buffer (onread, zero copy): a whole
      // base backup through it, verified.
      const dest = path.join(tmp, 'backup-unix');
      const b = await exec(fx.cluster.pg.bin('pg_basebackup'), ['-h', '127.0.0.1', '-p', String(upx.port), '-U', 'postgres', '-D', dest, '-X', 'fetch', '-c', 'fast'],
        { env: env(), timeoutMs: 120_000 });
      assert.equal(b.code, 0, b.stderr);
      const v = await exec(fx.cluster.pg.bin('pg_verifybackup'), [dest], { timeoutMs: 60_000 });
      assert.equal(v.code, 0, v.stderr + v.stdout);
      fs.appendFileSync(path.join(upx.dir, 'pgpool.conf'), 'allow_replication_connections = off\n');
      await upx.app.reload();
      const off = await identify(upx.port, 'database');
      assert.notEqual(off.code, 0);
      assert.match(off.stderr, /FATAL: {2}replication connections are not allowed through pgmaitre \(allow_replication_connections = off\)/);
      const plain = await psqlConn(`host=127.0.0.1 port=${upx.port} user=postgres dbname=postgres`, 'SELECT 1');
      assert.equal(plain.stdout.trim(), '1', 'ordinary connections are unaffected');
    } finally {
      await upx.stop();
    }
  });
});
