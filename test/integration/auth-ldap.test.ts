/**
 * The `ldap` pool_hba.conf method against a real OpenLDAP slapd (test/harness/slapd.ts) and a
 * real primary asking for SCRAM: simple bind (ldapprefix/ldapsuffix) and search+bind
 * (ldapbasedn/ldapbinddn/ldapsearchattribute); backend_use_passwd=1 (the password LDAP accepted
 * logs in to the backend) versus pool_passwd; right password, wrong one, unknown user, empty
 * password; LDAP down (28000 naming the cause, other methods and clients unaffected, and back by
 * itself); on the three entry points: the smart endpoint, the dedicated write port and the
 * replication relay.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { withCluster } from '../harness/cluster';
import { backendLines, startInProcess, type InProcess } from '../harness/in-process';
import { pgLogin, psqlLogin } from '../harness/login-clients';
import { exec } from '../harness/exec';
import { freePort } from '../../src/demo/free-port';
import { slapdBinaries, startSlapd, type TestSlapd } from '../harness/slapd';
import { Client } from 'pg';
import { makeTestCerts } from '../harness/certs';

const HAVE_SLAPD = slapdBinaries() !== null;
const HEALTH = "sr_check_user = 'postgres'\nsr_check_password = 'postgres'\nhealth_check_user = 'postgres'\nhealth_check_password = 'postgres'\nhealth_check_period = 1\n";

describe('ldap authentication', { timeout: 300_000, skip: HAVE_SLAPD ? false : 'slapd is not installed (Debian packages slapd, ldap-utils)' }, () => {
  const fx = withCluster({
    standbys: 1,
    auth: 'scram-sha-256',
    settings: { wal_level: 'logical' },
    users: [
      // alice's database password is her directory password (backend_use_passwd=1).
      { name: 'alice', password: 'alice-ldap' },
      // bob's database password differs from his directory one: pool_passwd holds it.
      { name: 'bob', password: 'bob-db' },
    ],
  });
  let ldap: TestSlapd;
  let px: InProcess;
  let wport = 0;
  const certs = makeTestCerts();
  const savedCa = process.env['LDAPTLS_CACERT'];

  before(async () => {
    await fx.cluster.psql(fx.cluster.primary.id, 'ALTER ROLE alice REPLICATION');
    ldap = await startSlapd([
      { uid: 'alice', password: 'alice-ldap' },
      { uid: 'bob', password: 'bob-ldap', mail: 'bob@pgmaitre.test' },
      { uid: 'carol', password: 'carol-ldap' },
    ], { tls: { cert: certs.serverCert, key: certs.serverKey } });
    // As libldap (PostgreSQL's LDAP client) finds its CA.
    process.env['LDAPTLS_CACERT'] = certs.caCert;
    const people = `ou=people,${ldap.baseDn}`;
    const simple = `ldap ldapserver=127.0.0.1 ldapport=${ldap.port} ldapprefix="uid=" ldapsuffix=",${people}"`;
    const search = `ldap ldapserver=127.0.0.1 ldapport=${ldap.port} ldapbasedn="${people}" ldapbinddn="${ldap.searchDn}" ldapbindpasswd="${ldap.searchPassword}" ldapsearchattribute=uid`;
    wport = await freePort();
    px = await startInProcess(`${backendLines(fx.cluster)}\n${HEALTH}enable_pool_hba = on\nwrite_port = ${wport}\nlog_connections = on\n`, {
      'pool_hba.conf': [
        `host replication alice 127.0.0.1/32 ${simple} backend_use_passwd=1`,
        'host all postgres 127.0.0.1/32 trust',
        `host all alice,mallory 127.0.0.1/32 ${simple} backend_use_passwd=1`,
        `host all bob 127.0.0.1/32 ${search}`,
        // carol: StartTLS on the ldap:// port, and ldaps:// with search+bind by mail-less filter.
        `host all carol 127.0.0.1/32 ldap ldapserver=127.0.0.1 ldapport=${ldap.port} ldaptls=1 ldapprefix="uid=" ldapsuffix=",${people}" backend_use_passwd=1`,
        `host all dave 127.0.0.1/32 ldap ldapurl="ldaps://127.0.0.1:${ldap.ldapsPort}/${people}?uid?sub"`,
        '',
      ].join('\n'),
      pool_passwd: 'postgres:TEXTpostgres\nbob:TEXTbob-db\n',
    });
  });
  after(async () => {
    await px?.stop();
    await ldap?.stop();
    if (savedCa === undefined) delete process.env['LDAPTLS_CACERT'];
    else process.env['LDAPTLS_CACERT'] = savedCa;
  });

  const login = (port: number, user: string, password: string) => pgLogin({ port, user, password });

  test('smart endpoint: simple bind with backend_use_passwd, search+bind with pool_passwd; wrong, unknown and empty refused with 28000', async () => {
    for (const port of [px.port, wport]) {
      const a = await login(port, 'alice', 'alice-ldap');
      assert.deepEqual([a.ok, a.user], [true, 'alice'], `${port}: ${a.message}`);
      const b = await login(port, 'bob', 'bob-ldap');
      assert.deepEqual([b.ok, b.user], [true, 'bob'], `${port}: ${b.message}`);
      const viaPsql = await psqlLogin({ port, user: 'bob', password: 'bob-ldap' });
      assert.equal(viaPsql.ok, true, viaPsql.message);
      for (const [user, password] of [['alice', 'wrong'], ['bob', 'bob-db'], ['mallory', 'anything'], ['alice', '']] as const) {
        const r = await login(port, user, password);
        assert.equal(r.ok, false, `${port} ${user}/${password} should be refused`);
        assert.equal(r.code, '28000', `${port} ${user}: ${r.message}`);
        assert.match(r.message ?? '', new RegExp(`LDAP authentication failed for user "${user}"`));
      }
    }
    const logs = px.logs();
    assert.match(logs, /invalid credentials/);
    assert.match(logs, /LDAP user \\?"mallory\\?"|uid=mallory/);
    assert.match(logs, /empty password returned by client/);
  });

  test('TLS to the directory: StartTLS (ldaptls=1) and ldaps://, the certificate checked against LDAPTLS_CACERT', async () => {
    await fx.cluster.psql(fx.cluster.primary.id, "CREATE ROLE carol LOGIN PASSWORD 'carol-ldap'; CREATE ROLE dave LOGIN PASSWORD 'x'");
    const c = await login(px.port, 'carol', 'carol-ldap');
    assert.deepEqual([c.ok, c.user], [true, 'carol'], c.message);
    assert.equal((await login(px.port, 'carol', 'nope')).code, '28000');
    // dave is not in the directory: ldaps:// search finds nobody.
    const d = await login(px.port, 'dave', 'x');
    assert.equal(d.code, '28000');
    assert.match(px.logs(), /LDAP user \\?"dave\\?" does not exist/);
    // Without the CA, the certificate is refused: the server counts as unavailable.
    delete process.env['LDAPTLS_CACERT'];
    process.env['LDAPCONF'] = '/nonexistent/ldap.conf';
    try {
      const u = await login(px.port, 'carol', 'carol-ldap');
      assert.equal(u.code, '28000');
      assert.match(u.message ?? '', /LDAP authentication failed/);
      assert.match(px.logs(), /StartTLS failed: .*(self.signed|unable to verify|certificate)/i);
    } finally {
      process.env['LDAPTLS_CACERT'] = certs.caCert;
      delete process.env['LDAPCONF'];
    }
  });

  test('replication relay: an ldap line for replication connections', async () => {
    const env = { ...process.env, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '10' };
    const identify = (password: string) => exec(fx.cluster.pg.bin('psql'), ['-X', '-At', '-d',
      `dbname=postgres replication=true host=127.0.0.1 port=${px.port} user=alice`, '-c', 'IDENTIFY_SYSTEM'],
    { env: { ...env, PGPASSWORD: password }, timeoutMs: 30_000 });
    const ok = await identify('alice-ldap');
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^\d+\|1\|/);
    const bad = await identify('nope');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /LDAP authentication failed for user "alice"/);
  });

  test('LDAP down: 28000 saying the server could not be reached; trust logins and open sessions go on; back when it returns', async () => {
    const open = new Client({ host: '127.0.0.1', port: px.port, user: 'bob', password: 'bob-ldap', database: 'postgres' });
    await open.connect();
    try {
      await ldap.pause();
      for (const port of [px.port, wport]) {
        const r = await login(port, 'alice', 'alice-ldap');
        assert.equal(r.ok, false);
        assert.equal(r.code, '28000', r.message);
        assert.match(r.message ?? '', /LDAP authentication failed for user "alice"/);
        const pg = await login(port, 'postgres', 'postgres');
        assert.equal(pg.ok, true, pg.message);
      }
      assert.equal((await open.query('SELECT 42 AS v')).rows[0].v, 42);
      assert.match(px.logs(), /LDAP server 127\.0\.0\.1:\d+: (connect|bind|search|bind as the search user) failed/);
      await ldap.start();
      const back = await login(px.port, 'alice', 'alice-ldap');
      assert.equal(back.ok, true, back.message);
    } finally {
      await open.end();
    }
  });
});
