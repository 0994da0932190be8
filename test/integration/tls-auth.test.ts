/**
 * TLS on both sides and the rest of client authentication, against a real primary + standby
 * whose PostgreSQL has ssl = on (certificates made by the test) and pg_hba.conf `md5` (which
 * accepts md5- and SCRAM-stored passwords alike).
 *
 * Client side: psql (sslmode=require, verify-full + sslrootcert), node-postgres (ssl: {ca,
 * servername}) and psycopg2 (sslmode) through pgmaitre with ssl = on; hostssl/hostnossl lines;
 * clients that insist on TLS against a pgmaitre without it. Backend side: pg_stat_ssl on the
 * backend says pgmaitre's connection is encrypted. auth_query with SCRAM pass-through and md5,
 * +group via role membership, samehost, sameuser, reject, allow_clear_text_frontend_auth, the
 * failure delay (same for unknown users) and the per-address failure limit, failing auth_query.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { withCluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess } from '../harness/in-process';
import { pgLogin, type LoginResult } from '../harness/login-clients';
import { makeTestCerts } from '../harness/certs';
import { RawClient } from '../harness/raw-client';
import { encodeSSLRequest, encodeStartupMessage } from '../../src/protocol/startup';
import { Client } from 'pg';
import { assertFailed, assertNoLeaks, loginClients } from './auth-suites';

const PW = (u: string): string => `${u} pw!`;

describe('TLS and client authentication without pool_passwd', { timeout: 600_000 }, () => {
  const certs = makeTestCerts();
  const fx = withCluster({
    standbys: 1,
    auth: 'md5',
    settings: { ssl: 'on', ssl_cert_file: certs.serverCert, ssl_key_file: certs.serverKey },
  });
  const clients = loginClients();
  const verifyFull = { mode: 'verify-full' as const, rootCert: certs.caCert };
  const require = { mode: 'require' as const };

  let px: InProcess;
  const common = (): string => [
    backendLines(fx.cluster),
    "sr_check_user = 'postgres'", "sr_check_password = 'postgres'",
    "health_check_user = 'postgres'", "health_check_password = 'postgres'",
    'num_init_children = 16', 'max_pool = 4', 'connect_timeout = 10000', 'authentication_timeout = 30',
    'enable_pool_hba = on',
  ].join('\n');

  before(async () => {
    const roles = ['aq_admin', 'aq_scram', 'ssl_only', 'nossl_only', 'rejected', 'sh_user', 'su_user', 'member', 'outsider', 'ct_user'];
    // One session: SET password_encryption applies to the roles created after it.
    await fx.cluster.psql(fx.cluster.primary.id, [
      "set password_encryption = 'scram-sha-256'",
      ...roles.map((u) => `create role ${u} login password '${PW(u)}'`),
      "set password_encryption = 'md5'",
      `create role aq_md5 login password '${PW('aq_md5')}'`,
      'create role staff nologin', 'create role inner_staff nologin', 'grant staff to inner_staff', 'grant inner_staff to member',
      // auth_user needs pg_shadow: superuser here (PgBouncer's docs suggest a SECURITY DEFINER function).
      'alter role aq_admin superuser',
    ].join('; '));
    await fx.cluster.psql(fx.cluster.primary.id, 'create database su_user');
    await fx.cluster.waitForReplay();
    const hba = [
      'hostssl   all      ssl_only    127.0.0.1/32  scram-sha-256',
      'hostnossl all      nossl_only  127.0.0.1/32  trust',
      'host      all      rejected    127.0.0.1/32  reject',
      'host      all      sh_user     samehost      trust',
      'host      sameuser su_user     127.0.0.1/32  trust',
      'host      all      +staff      127.0.0.1/32  trust',
      'host      all      aq_md5      127.0.0.1/32  md5',
      'host      all      ghost       127.0.0.1/32  md5',
      'host      all      aq_scram,aq_admin,postgres 127.0.0.1/32 scram-sha-256',
      '',
    ].join('\n');
    // Trust users still need a secret for the backends (md5 there): TEXT entries.
    const passwd = `${['aq_admin', 'ssl_only', 'nossl_only', 'sh_user', 'su_user', 'member', 'outsider'].map((u) => `${u}:TEXT${PW(u)}`).join('\n')}\npostgres:TEXTpostgres\n`;
    px = await startInProcess([
      common(),
      'ssl = on', "ssl_cert = 'server.crt'", "ssl_key = 'server.key'", "ssl_ca_cert = 'ca.crt'",
      "ssl_min_protocol_version = 'TLSv1.2'",
      "auth_user = 'aq_admin'", "auth_query = 'SELECT usename, passwd FROM pg_shadow WHERE usename = $1'",
      'auth_failure_delay = 400', 'auth_failure_limit = 0',
    ].join('\n'), {
      'pool_hba.conf': hba, pool_passwd: passwd,
      'server.crt': fs.readFileSync(certs.serverCert, 'utf8'), 'server.key': fs.readFileSync(certs.serverKey, 'utf8'),
      'ca.crt': fs.readFileSync(certs.caCert, 'utf8'),
    });
  });
  after(async () => {
    await px?.stop();
    fs.rmSync(certs.dir, { recursive: true, force: true });
  });

  const okAs = (r: LoginResult, user: string, what: string, tls?: boolean): void => {
    assert.equal(r.ok, true, `${what}: ${r.message}`);
    assert.equal(r.user, user, what);
    if (tls !== undefined) assert.equal(r.tls, tls, `${what}: client connection encrypted`);
  };

  test('TLS clients: psql/pg/psycopg2 with sslmode=require and verify-full log in over TLS; hostssl admits them', async () => {
    for (const c of clients) {
      for (const ssl of [require, verifyFull]) {
        okAs(await c.login({ port: px.port, user: 'ssl_only', password: PW('ssl_only'), ssl }), 'ssl_only', `${c.name} ${ssl.mode}`, true);
      }
    }
  });

  test('hostssl refuses a non-TLS client, hostnossl a TLS client: 28000 with the SSL state in the message', async () => {
    for (const c of clients) {
      const plain = await c.login({ port: px.port, user: 'ssl_only', password: PW('ssl_only') });
      assertFailed(plain, c, '28000', /no pool_hba\.conf entry for host "127\.0\.0\.1", user "ssl_only", database "postgres", SSL off/, `${c.name} plain`);
      const tls = await c.login({ port: px.port, user: 'nossl_only', ssl: require });
      assertFailed(tls, c, '28000', /no pool_hba\.conf entry .*user "nossl_only".*SSL on/, `${c.name} tls`);
      okAs(await c.login({ port: px.port, user: 'nossl_only' }), 'nossl_only', `${c.name} nossl_only in clear`, false);
    }
  });

  test('backend side: pgmaitre reaches PostgreSQL over TLS (pg_stat_ssl), on the primary and on the standby', async () => {
    const c = new Client({ host: '127.0.0.1', port: px.port, user: 'postgres', password: 'postgres', database: 'postgres', ssl: { ca: fs.readFileSync(certs.caCert), servername: 'localhost' } });
    await c.connect();
    try {
      for (let i = 0; i < 6; i++) {
        const r = await c.query('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
        assert.equal(r.rows[0].ssl, true, 'backend connection not encrypted');
      }
      await c.query('begin');
      const w = await c.query('select ssl, pg_is_in_recovery() as rec from pg_stat_ssl where pid = pg_backend_pid() for update');
      assert.equal(w.rows[0].ssl, true);
      await c.query('commit');
    } finally {
      await c.end();
    }
  });

  test('auth_query + SCRAM pass-through: a user without pool_passwd logs in (TLS and not) with every client', async () => {
    for (const c of clients) {
      okAs(await c.login({ port: px.port, user: 'aq_scram', password: PW('aq_scram') }), 'aq_scram', `${c.name} clear`);
      okAs(await c.login({ port: px.port, user: 'aq_scram', password: PW('aq_scram'), ssl: verifyFull }), 'aq_scram', `${c.name} tls`, true);
      const bad = await c.login({ port: px.port, user: 'aq_scram', password: 'nope' });
      assertFailed(bad, c, '28P01', /password authentication failed for user "aq_scram"/, `${c.name} wrong`);
    }
    // Reads go to the standby too: the ClientKey logs in there as well.
    // (the load-balance node is chosen per session, as in pgpool: several sessions)
    const seen = new Set<boolean>();
    for (let i = 0; i < 12 && !seen.has(true); i++) {
      const c = new Client({ host: '127.0.0.1', port: px.port, user: 'aq_scram', password: PW('aq_scram'), database: 'postgres' });
      await c.connect();
      seen.add((await c.query('select pg_is_in_recovery() as r')).rows[0].r as boolean);
      await c.end();
    }
    assert.doesNotMatch(px.logs(), /cannot log in to node 1/);
    assert.ok(seen.has(true), 'no read reached the standby');
  });

  test('auth_query with an md5-stored password: md5 line works, wrong password 28P01', async () => {
    for (const c of clients) {
      okAs(await c.login({ port: px.port, user: 'aq_md5', password: PW('aq_md5') }), 'aq_md5', c.name);
      assertFailed(await c.login({ port: px.port, user: 'aq_md5', password: 'x' }), c, '28P01', /password authentication failed for user "aq_md5"/, c.name);
    }
  });

  test('wrong password and unknown user: 28P01 after the same delay, and a log line', async () => {
    const time = async (user: string): Promise<number> => {
      const t0 = Date.now();
      const r = await pgLogin({ port: px.port, user, password: 'wrong' });
      assert.equal(r.code, '28P01', `${user}: ${r.message}`);
      return Date.now() - t0;
    };
    const known = await time('aq_md5');
    const unknown = await time('ghost');
    assert.ok(known >= 400 && unknown >= 400, `delays ${known} / ${unknown} ms`);
    assert.ok(Math.abs(known - unknown) < 300, `known ${known} ms vs unknown ${unknown} ms`);
    assert.match(px.logs(), /authentication failed: password authentication failed for user \\?"ghost\\?"/);
  });

  test('reject line, samehost, sameuser, +group (nested membership) and no line', async () => {
    for (const c of clients) {
      assertFailed(await c.login({ port: px.port, user: 'rejected', password: 'x' }), c, '28000', /pool_hba\.conf rejects connection/, c.name);
      okAs(await c.login({ port: px.port, user: 'sh_user' }), 'sh_user', `${c.name} samehost`);
      okAs(await c.login({ port: px.port, user: 'su_user', database: 'su_user' }), 'su_user', `${c.name} sameuser`);
      assertFailed(await c.login({ port: px.port, user: 'su_user', database: 'postgres' }), c, '28000', /no pool_hba\.conf entry/, `${c.name} sameuser other db`);
      okAs(await c.login({ port: px.port, user: 'member' }), 'member', `${c.name} +staff`);
      assertFailed(await c.login({ port: px.port, user: 'outsider' }), c, '28000', /no pool_hba\.conf entry/, `${c.name} not in staff`);
    }
    await assertNoLeaks(px);
  });

  test('SSLRequest followed by bytes in the same packet: 08P01, nothing encrypted', async () => {
    const raw = await RawClient.open(px.port);
    raw.send(Buffer.concat([encodeSSLRequest(), encodeStartupMessage({ user: 'postgres', database: 'postgres' })]));
    const msgs = await raw.waitClosed(5000);
    assert.equal(msgs[0]?.error?.code, '08P01');
    assert.match(msgs[0]?.error?.message ?? '', /unencrypted data after SSL request/);
  });

  test("SSLRequest is answered 'S' and a TLS handshake follows", async () => {
    const s = net.connect({ host: '127.0.0.1', port: px.port });
    await new Promise((r) => s.once('connect', r));
    const got: Buffer[] = [];
    s.on('data', (b: Buffer) => got.push(b));
    s.write(encodeSSLRequest());
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(Buffer.concat(got).toString(), 'S');
    s.destroy();
  });

  describe('pgmaitre without TLS; allow_clear_text_frontend_auth; failing auth_query; failure limit', () => {
    let plain: InProcess;
    let broken: InProcess;
    before(async () => {
      plain = await startInProcess([
        common(), 'ssl = off', 'allow_clear_text_frontend_auth = on', 'auth_failure_delay = 100',
        'auth_failure_limit = 3', 'auth_failure_window = 60',
      ].join('\n'), { 'pool_hba.conf': 'host all all 127.0.0.1/32 scram-sha-256\n', pool_passwd: 'postgres:TEXTpostgres\n' });
      broken = await startInProcess([
        common(), "auth_user = 'aq_admin'", "auth_query = 'SELECT usename, no_such_column FROM pg_shadow WHERE usename = $1'",
        'auth_failure_limit = 0',
      ].join('\n'), { 'pool_hba.conf': 'host all all 127.0.0.1/32 scram-sha-256\n', pool_passwd: `aq_admin:TEXT${PW('aq_admin')}\n` });
    });
    after(async () => {
      await plain?.stop();
      await broken?.stop();
    });

    test('clients that require TLS are refused by a pgmaitre without it; backends are then reached in clear', async () => {
      for (const c of clients) {
        const r = await c.login({ port: plain.port, user: 'postgres', password: 'postgres', ssl: require });
        assert.equal(r.ok, false, c.name);
        assert.match(r.message ?? '', /does not support SSL|SSL/i, c.name);
      }
      const c = new Client({ host: '127.0.0.1', port: plain.port, user: 'postgres', password: 'postgres', database: 'postgres' });
      await c.connect();
      assert.equal((await c.query('select ssl from pg_stat_ssl where pid = pg_backend_pid()')).rows[0].ssl, false);
      await c.end();
    });

    test('allow_clear_text_frontend_auth: no pool_passwd entry, the client\'s clear-text password logs in to the backend', async () => {
      for (const c of clients) {
        okAs(await c.login({ port: plain.port, user: 'ct_user', password: PW('ct_user') }), 'ct_user', c.name);
      }
      const bad = await pgLogin({ port: plain.port, user: 'ct_user', password: 'wrong' });
      assert.equal(bad.code, '28P01', bad.message);
    });

    test("without TLS: SSLRequest and GSSENCRequest get 'N' once each, a repeat is 08P01", async () => {
      const raw = await RawClient.open(plain.port);
      const got: Buffer[] = [];
      raw.socket.prependListener('data', (b: Buffer) => got.push(b));
      raw.send(encodeSSLRequest());
      await new Promise((r) => setTimeout(r, 50));
      raw.send(encodeSSLRequest());
      await raw.waitClosed(3000);
      const all = Buffer.concat(got);
      assert.equal(all[0], 0x4e);
      assert.match(all.toString('latin1'), /duplicate SSLRequest/);
      assert.match(all.toString('latin1'), /08P01/);
    });

    test('a failing auth_query: 28000 with a clear message, the cause in the log', async () => {
      for (const c of clients) {
        const r = await c.login({ port: broken.port, user: 'aq_scram', password: PW('aq_scram') });
        assertFailed(r, c, '28000', /authentication failed for user "aq_scram"/, c.name);
      }
      assert.match(broken.logs(), /auth_query \/ role lookup for user .*aq_scram.* failed: column \\?"no_such_column\\?" does not exist/);
      await assertNoLeaks(broken);
    });

    test('repeated failures from one address: refused at once with 28000 even with the right password', async () => {
      // The wrong ct_user password above counted (the backend refused it); two more make three.
      for (let i = 0; i < 2; i++) {
        const r = await pgLogin({ port: plain.port, user: 'nobody', password: 'x' });
        assert.equal(r.code, '28P01', r.message);
      }
      const t0 = Date.now();
      const r = await pgLogin({ port: plain.port, user: 'postgres', password: 'postgres' });
      assert.equal(r.code, '28000', r.message);
      assert.match(r.message ?? '', /too many authentication failures from host "127\.0\.0\.1"/);
      assert.ok(Date.now() - t0 < 300, 'refusal must be fast');
      await assertNoLeaks(plain);
    });
  });
});
