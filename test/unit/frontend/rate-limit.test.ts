import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthGuard } from '../../../src/frontend/rate-limit';
import { checkHbaRoles, matchHba, parseHba, rolesNeeded } from '../../../src/config/hba';
import { Framer } from '../../../src/protocol/framer';
import { entryOfSecret } from '../../../src/frontend/auth-query';
import { md5PasswordHash } from '../../../src/protocol/auth/md5';
import { scramVerifier } from '../../../src/protocol/auth/scram';

test('AuthGuard: blocks an address after auth_failure_limit failures in the window, frees it when they age out', async () => {
  let now = 1_000_000;
  const settings = { auth_failure_delay: 0, auth_failure_limit: 3, auth_failure_window: 60 };
  const g = new AuthGuard(() => settings, () => now);
  for (let i = 0; i < 2; i++) await g.failed('10.0.0.1');
  assert.equal(g.blockedFor('10.0.0.1'), 0);
  await g.failed('10.0.0.1');
  assert.equal(g.blockedFor('10.0.0.1'), 60);
  assert.equal(g.blockedFor('10.0.0.2'), 0, 'other addresses are not affected');
  now += 30_000;
  assert.equal(g.blockedFor('10.0.0.1'), 30);
  now += 30_001;
  assert.equal(g.blockedFor('10.0.0.1'), 0);
  assert.equal(g.tracked, 0, 'aged-out addresses are forgotten');
  settings.auth_failure_limit = 0;
  for (let i = 0; i < 5; i++) await g.failed('10.0.0.3');
  assert.equal(g.blockedFor('10.0.0.3'), 0, 'limit 0 disables blocking');
});

test('AuthGuard: failed() waits auth_failure_delay', async () => {
  const g = new AuthGuard(() => ({ auth_failure_delay: 80, auth_failure_limit: 0, auth_failure_window: 60 }));
  const t0 = Date.now();
  await g.failed('x');
  assert.ok(Date.now() - t0 >= 75);
});

test('hba: +group and samerole match through the roles passed in; refused without auth_user', () => {
  const rules = parseHba('host all +staff 127.0.0.1/32 trust\nhost samerole all 127.0.0.1/32 md5\n');
  assert.equal(rolesNeeded(rules), true);
  const req = { conn: 'host' as const, ssl: false, address: '127.0.0.1', database: 'x', user: 'amy' };
  assert.equal(matchHba(rules, req), undefined, 'no roles: no match');
  assert.equal(matchHba(rules, { ...req, roles: new Set(['amy', 'staff']) })?.line, 1);
  assert.equal(matchHba(rules, { ...req, database: 'ops', roles: new Set(['amy', 'ops']) })?.line, 2);
  assert.throws(() => checkHbaRoles(rules, ''), /pool_hba\.conf:1: \+group and samerole need auth_user/);
  checkHbaRoles(rules, 'auth');
  checkHbaRoles(parseHba('host all all 127.0.0.1/32 trust\n'), '');
});

test('hba: hostssl and hostnossl follow the ssl flag', () => {
  const rules = parseHba('hostssl all a 127.0.0.1/32 trust\nhostnossl all b 127.0.0.1/32 trust\n');
  const req = { conn: 'host' as const, address: '127.0.0.1', database: 'd' };
  assert.equal(matchHba(rules, { ...req, user: 'a', ssl: true })?.line, 1);
  assert.equal(matchHba(rules, { ...req, user: 'a', ssl: false }), undefined);
  assert.equal(matchHba(rules, { ...req, user: 'b', ssl: false })?.line, 2);
  assert.equal(matchHba(rules, { ...req, user: 'b', ssl: true }), undefined);
});

test('Framer.setMaxLength: a smaller bound refuses a declared length at once', () => {
  const f = new Framer(1 << 30);
  f.setMaxLength(65536);
  const h = Buffer.alloc(5);
  h[0] = 0x70;
  h.writeInt32BE(100_000, 1);
  assert.equal(f.push(h, { onFrame: () => undefined }), 100_000);
  assert.equal(f.buffered, 0);
});

test('auth_query secrets: md5 hash, SCRAM verifier, malformed verifier, clear text', () => {
  assert.equal(entryOfSecret(md5PasswordHash('u', 'p')).kind, 'md5');
  assert.equal(entryOfSecret(scramVerifier('p')).kind, 'scram');
  assert.equal(entryOfSecret('SCRAM-SHA-256$garbage').kind, 'unusable');
  assert.deepEqual(entryOfSecret('plain'), { kind: 'text', password: 'plain' });
});
