/**
 * Client authentication through pgmaitre against a real primary + 2 standbys whose pg_hba.conf
 * asks for scram-sha-256 (PostgreSQL's default): pool_hba.conf methods × pool_passwd entries
 * (pg_md5 / TEXT / pg_enc AES), pool_hba.conf matching (database/user lists, CIDR, first match
 * wins, local vs TCP over a real Unix socket), and enable_pool_hba = off where the primary
 * authenticates the client. The md5-backend variant is auth-md5-backend.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { withCluster } from '../harness/cluster';
import { startInProcess, type InProcess } from '../harness/in-process';
import { pgLogin, psqlLogin } from '../harness/login-clients';
import { RawClient } from '../harness/raw-client';
import { encodeStartupMessage } from '../../src/protocol/startup';
import { MATRIX_ROLES, assertFailed, assertNoLeaks, baseConfig, hbaMatrix, loginClients, relaySuite } from './auth-suites';

const HBA_USERS = ['alice', 'bob', 'carol', 'erin', 'gina', 'frank', 'stale', 'slow'].map((name) => ({ name, password: `${name}-pw` }));

describe('authentication, scram-sha-256 backends', { timeout: 600_000 }, () => {
  const fx = withCluster({
    standbys: 2,
    auth: 'scram-sha-256',
    users: [...MATRIX_ROLES, ...HBA_USERS, { name: 'relayed', password: 'relayed pw' }],
  });

  hbaMatrix(fx, 'scram-sha-256', 'option');
  hbaMatrix(fx, 'scram-sha-256', 'pool_key_file');
  relaySuite(fx, 'scram-sha-256', { name: 'relayed', password: 'relayed pw' });

  describe('pool_hba.conf matching', () => {
    let px: InProcess;
    let sockDir: string;
    const clients = loginClients();
    const pw = (user: string): string => `${user}-pw`;

    before(async () => {
      await fx.cluster.psql(fx.cluster.primary.id, 'create database sales');
      await fx.cluster.psql(fx.cluster.primary.id, 'create database hr');
      sockDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-sock-'));
      fs.chmodSync(sockDir, 0o777);
      const hba = [
        'local  all          frank                       trust',
        'host   sales,hr     alice,bob   127.0.0.1/32    md5',
        'host   all          carol       10.0.0.0/8      trust',
        'host   sales        carol       127.0.0.1/32    reject',
        'host   all          carol       127.0.0.0/8     scram-sha-256',
        'host   all          erin        127.0.0.1/32    reject',
        'host   all          erin        127.0.0.1/32    trust',
        'host   all          gina        127.0.0.1 255.255.255.255  trust',
        'host   all          gina        127.0.0.1/32    reject',
        'local  all          alice                       md5',
        'host   all          stale,slow  127.0.0.1/32    md5',
        '',
      ].join('\n');
      // stale: pool_passwd has an old password the backend no longer accepts.
      const passwd = `${HBA_USERS.map((u) => `${u.name}:TEXT${u.name === 'stale' ? 'old-pw' : u.password}`).join('\n')}\n`;
      px = await startInProcess(`${baseConfig(fx)}\nenable_pool_hba = on\nunix_socket_directories = '${sockDir}'\nauthentication_timeout = 2\n`,
        { 'pool_hba.conf': hba, pool_passwd: passwd });
    });
    after(async () => {
      await px?.stop();
      if (sockDir) fs.rmSync(sockDir, { recursive: true, force: true });
    });

    test('database and user lists: alice and bob into sales and hr', async () => {
      for (const c of clients) {
        for (const [user, db] of [['alice', 'sales'], ['alice', 'hr'], ['bob', 'sales'], ['bob', 'hr']] as const) {
          const r = await c.login({ port: px.port, user, database: db, password: pw(user) });
          assert.equal(r.ok, true, `${c.name} ${user}@${db}: ${r.message}`);
          assert.equal(r.user, user);
        }
      }
    });

    test('outside the lists: no line matches, 28000', async () => {
      for (const c of clients) {
        for (const [user, db] of [['alice', 'postgres'], ['bob', 'postgres'], ['mallory', 'sales']] as const) {
          const r = await c.login({ port: px.port, user, database: db, password: pw(user) });
          assertFailed(r, c, '28000', new RegExp(`no pool_hba\\.conf entry for host "127\\.0\\.0\\.1", user "${user}", database "${db}"`), `${c.name} ${user}@${db}`);
        }
      }
    });

    test('wrong password on a list line: 28P01', async () => {
      for (const c of clients) {
        const r = await c.login({ port: px.port, user: 'alice', database: 'sales', password: 'bad' });
        assertFailed(r, c, '28P01', /password authentication failed for user "alice"/, c.name);
      }
    });

    test('CIDR: 10.0.0.0/8 does not match 127.0.0.1, 127.0.0.0/8 does; reject line for sales', async () => {
      for (const c of clients) {
        const rejected = await c.login({ port: px.port, user: 'carol', database: 'sales', password: pw('carol') });
        assertFailed(rejected, c, '28000', /pool_hba\.conf rejects connection for host "127\.0\.0\.1", user "carol", database "sales"/, c.name);
        const ok = await c.login({ port: px.port, user: 'carol', database: 'hr', password: pw('carol') });
        assert.equal(ok.ok, true, `${c.name}: ${ok.message}`);
        const wrong = await c.login({ port: px.port, user: 'carol', database: 'hr', password: 'x' });
        assertFailed(wrong, c, '28P01', /password authentication failed/, c.name);
      }
      // carol's 10/8 trust line must not have let her in without a password.
      const none = await pgLogin({ port: px.port, user: 'carol', database: 'hr' });
      assert.equal(none.ok, false);
    });

    test('first match wins: reject before trust rejects, trust (address + netmask) before reject admits', async () => {
      for (const c of clients) {
        const erin = await c.login({ port: px.port, user: 'erin', password: 'whatever' });
        assertFailed(erin, c, '28000', /rejects connection/, `${c.name} erin`);
        const gina = await c.login({ port: px.port, user: 'gina' });
        assert.equal(gina.ok, true, `${c.name} gina: ${gina.message}`);
      }
    });

    test('a local line does not match TCP', async () => {
      for (const c of clients) {
        const r = await c.login({ port: px.port, user: 'frank' });
        assertFailed(r, c, '28000', /no pool_hba\.conf entry for host "127\.0\.0\.1", user "frank"/, c.name);
      }
    });

    test('Unix-socket clients match local lines, not host lines', async () => {
      const frank = await psqlLogin({ port: px.port, host: sockDir, user: 'frank' });
      assert.equal(frank.ok, true, `frank over the socket (local trust): ${frank.message}`);
      const aliceOk = await psqlLogin({ port: px.port, host: sockDir, user: 'alice', password: pw('alice') });
      assert.equal(aliceOk.ok, true, `alice over the socket (local md5): ${aliceOk.message}`);
      const aliceBad = await psqlLogin({ port: px.port, host: sockDir, user: 'alice', password: 'bad' });
      assert.equal(aliceBad.ok, false);
      assert.match(aliceBad.message ?? '', /password authentication failed for user "alice"/);
      // bob only has a host line: over the socket nothing matches.
      const bob = await pgLogin({ port: px.port, host: sockDir, user: 'bob', database: 'sales', password: pw('bob') });
      assert.equal(bob.ok, false, 'a host line matched a Unix-socket client');
      assert.equal(bob.code, '28000', bob.message);
      // erin's host reject line must not apply either (and carol's trust lines never did).
      const erin = await pgLogin({ port: px.port, host: sockDir, user: 'erin', password: pw('erin') });
      assert.equal(erin.code, '28000', erin.message);
      assert.match(erin.message ?? '', /no pool_hba\.conf entry/);
    });

    test('pool_passwd password the backend no longer accepts: the backend\'s 28P01, promptly, nothing leaked', async () => {
      for (const c of clients) {
        const t0 = Date.now();
        const r = await c.login({ port: px.port, user: 'stale', password: 'old-pw' });
        assertFailed(r, c, '28P01', /password authentication failed for user "stale"/, c.name);
        assert.ok(Date.now() - t0 < 5000, `${c.name} took ${Date.now() - t0} ms`);
      }
      await assertNoLeaks(px);
    });

    test('a client that never answers the password request is cut off by authentication_timeout', async () => {
      const raw = await RawClient.open(px.port);
      raw.send(encodeStartupMessage({ user: 'slow', database: 'postgres' }));
      const req = await raw.next();
      assert.equal(req.type, 'R');
      assert.equal(px.app.ctx.slots.inUse, 1);
      const rest = await raw.waitClosed(6000);
      assert.equal(rest[0]?.error?.code, '08P01');
      assert.match(rest[0]?.error?.message ?? '', /canceling authentication due to timeout/);
      await assertNoLeaks(px);
    });

    test('after all that, nothing leaked', async () => {
      await assertNoLeaks(px);
    });
  });
});
