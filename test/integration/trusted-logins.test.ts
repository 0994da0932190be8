/**
 * enable_pool_hba = off: a (user, database) the primary once let in without a password (a trust
 * line in its pg_hba.conf) may reuse pooled connections without authenticating. Once the primary's
 * pg_hba.conf asks for a password instead, that must stop: at pgmaitre's next configuration
 * reload, and — without one — as soon as the primary asks a new login of that pair for a password.
 * Real clients (psql, node-postgres) against a real primary whose pg_hba.conf the test rewrites.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'pg';
import { withCluster } from '../harness/cluster';
import { backendLines, eventually, startInProcess, type InProcess } from '../harness/in-process';
import { pgLogin, psqlLogin } from '../harness/login-clients';
import { RawClient } from '../harness/raw-client';
import { encodeStartupMessage } from '../../src/protocol/startup';
import { decodeAuthentication } from '../../src/protocol/backend';
import { hbaText, writeDataFile } from '../../src/demo/cluster-files';

const USER = { name: 'tina', password: 'tina pw' };
const KEY = `${USER.name}\u0000postgres`;

describe('trusted logins are forgotten when the primary asks for a password', { timeout: 180_000 }, () => {
  const fx = withCluster({ standbys: 2, auth: 'trust', users: [{ name: 'postgres', password: 'postgres' }, USER] });
  let px: InProcess;

  /** Rewrites the primary's pg_hba.conf for TCP logins and reloads it. */
  const primaryHba = async (method: 'trust' | 'scram-sha-256'): Promise<void> => {
    const c = fx.cluster;
    writeDataFile(c.primary.dataDir, 'pg_hba.conf', hbaText(method));
    await c.psql(c.primary.id, 'select pg_reload_conf()', { password: 'postgres' });
    // pg_reload_conf() only signals the postmaster: wait until a password-less login sees the new rule.
    await eventually(async () => {
      const r = await psqlLogin({ port: c.primary.port, user: USER.name });
      return r.ok === (method === 'trust');
    }, `primary's pg_hba.conf says ${method}`, 10_000);
  };

  /** The first message pgmaitre sends a password-less raw startup: an authentication request type. */
  const firstAuthMessage = async (): Promise<string> => {
    const raw = await RawClient.open(px.port);
    try {
      raw.send(encodeStartupMessage({ user: USER.name, database: 'postgres' }));
      const m = await raw.next();
      assert.equal(m.type, 'R', `expected an authentication message, got ${m.type} ${m.error?.message ?? ''}`);
      return decodeAuthentication(m.frame, 0, m.frame.length).type;
    } finally {
      raw.close();
    }
  };

  const idle = (): number => px.app.ctx.pools.get(0)!.counts().idle;

  before(async () => {
    px = await startInProcess([
      backendLines(fx.cluster),
      "sr_check_user = 'postgres'", "sr_check_password = 'postgres'",
      "health_check_user = 'postgres'", "health_check_password = 'postgres'",
      'enable_pool_hba = off', 'num_init_children = 8', 'max_pool = 4',
      'auth_failure_limit = 0', 'auth_failure_delay = 0',
    ].join('\n'));
  });
  after(async () => { await px?.stop(); });

  test('after pg_hba.conf changes from trust to scram-sha-256 and pgmaitre reloads, a client needs the password', async () => {
    const first = await pgLogin({ port: px.port, user: USER.name });
    assert.equal(first.ok, true, `trust: login without a password: ${first.message}`);
    assert.equal(px.app.ctx.trustedLogins.has(KEY), true, 'the primary let tina in without asking');
    await eventually(() => idle() > 0, 'the trusted connection is idle in the pool');

    await primaryHba('scram-sha-256');
    await px.app.reload();
    assert.equal(px.app.ctx.trustedLogins.size, 0, 'reload forgets every trusted login');
    assert.ok(idle() > 0, 'the idle pooled connection is still there, so only the forgetting keeps it from being reused');

    const psqlNone = await psqlLogin({ port: px.port, user: USER.name });
    assert.equal(psqlNone.ok, false, `psql without a password logged in as ${psqlNone.user}`);
    assert.match(psqlNone.message ?? '', /no password supplied/, 'psql was asked for a password');
    const pgNone = await pgLogin({ port: px.port, user: USER.name });
    assert.equal(pgNone.ok, false, `node-postgres without a password logged in as ${pgNone.user}`);
    assert.equal(await firstAuthMessage(), 'AuthenticationSASL', 'a password-less startup is challenged by the primary');
    const wrong = await pgLogin({ port: px.port, user: USER.name, password: 'not it' });
    assert.equal(wrong.ok, false);
    assert.equal(wrong.code, '28P01', `the primary's own refusal reaches the client (${wrong.message})`);
    assert.match(wrong.message ?? '', /password authentication failed for user "tina"/);

    const right = await pgLogin({ port: px.port, user: USER.name, password: USER.password });
    assert.equal(right.ok, true, `node-postgres with the password: ${right.message}`);
    const rightPsql = await psqlLogin({ port: px.port, user: USER.name, password: USER.password });
    assert.equal(rightPsql.ok, true, `psql with the password: ${rightPsql.message}`);
    assert.equal(px.app.ctx.trustedLogins.has(KEY), false, 'a login that was asked for a password is not trusted');
  });

  test('without a reload: the first new connection the primary asks for a password ends the trust', async () => {
    await primaryHba('trust');
    const a = await pgLogin({ port: px.port, user: USER.name });
    assert.equal(a.ok, true, a.message);
    assert.equal(px.app.ctx.trustedLogins.has(KEY), true, 'trusted again after pg_hba.conf says trust');

    // One session holds a connection; no idle one is left, so the next login needs a new connection.
    const holder = new Client({ host: '127.0.0.1', port: px.port, user: USER.name, database: 'postgres' });
    await holder.connect();
    try {
      await holder.query('select 1');
      px.app.ctx.pools.get(0)!.closeIdle('test: no idle connection');
      assert.equal(idle(), 0);

      await primaryHba('scram-sha-256');
      // The trusted pair gets a new connection: the primary's SCRAM request is relayed to the client.
      const none = await pgLogin({ port: px.port, user: USER.name });
      assert.equal(none.ok, false, `logged in without a password as ${none.user}`);
      assert.equal(px.app.ctx.trustedLogins.has(KEY), false, 'the primary asked for a password: trust forgotten');
      const wrong = await pgLogin({ port: px.port, user: USER.name, password: 'not it' });
      assert.equal(wrong.code, '28P01', `the primary's 28P01 reaches the client (${wrong.message})`);
      const right = await pgLogin({ port: px.port, user: USER.name, password: USER.password });
      assert.equal(right.ok, true, `with the password: ${right.message}`);
    } finally {
      await holder.end();
    }
    // The holder's connection (made under trust) is idle in the pool now; it must not let anyone in.
    await eventually(() => idle() > 0, 'the connection made under trust is idle');
    const psqlNone = await psqlLogin({ port: px.port, user: USER.name });
    assert.equal(psqlNone.ok, false, `psql without a password reused a pooled connection as ${psqlNone.user}`);
    assert.match(psqlNone.message ?? '', /no password supplied/);
    assert.equal(await firstAuthMessage(), 'AuthenticationSASL');
    assert.ok(px.logs().includes('"event":"trusted_login_forgotten"'), 'the forgetting is logged');
  });
});
