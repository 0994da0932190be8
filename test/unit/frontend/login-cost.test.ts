/**
 * What a login costs pgmaitre, counted (not timed), for clients that connect per request
 * (`pgbench -C`): the parts of the login path that run once per connection must not redo work
 * the connection before them already did. test/integration/login-cost.test.ts counts the same
 * through real clients and a real primary (backend connections, writes, decodes).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as startup from '../../../src/protocol/startup';
import { decodeStartup } from '../../../src/frontend/session';
import { SecretPool, SessionRegistry } from '../../../src/frontend/registry';
import { SessionState } from '../../../src/core/session-state';

function startupMessage(params: Record<string, string>): Buffer {
  const body = Buffer.concat([...Object.entries(params).map(([k, v]) => Buffer.from(`${k}\0${v}\0`)), Buffer.from([0])]);
  const out = Buffer.alloc(8 + body.length);
  out.writeInt32BE(out.length, 0);
  out.writeInt32BE(196608, 4); // 3.0
  body.copy(out, 8);
  return out;
}

function sslRequest(): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32BE(8, 0);
  b.writeInt32BE(80877103, 4);
  return b;
}

/** Counts decodeStartupPacket calls and Buffer→string conversions while `run` runs. */
function counted(run: () => void): { decodes: number; strings: number } {
  const mod = startup as { decodeStartupPacket: typeof startup.decodeStartupPacket };
  const decode = mod.decodeStartupPacket;
  const toString = Buffer.prototype.toString;
  const n = { decodes: 0, strings: 0 };
  mod.decodeStartupPacket = (...a: Parameters<typeof decode>) => { n.decodes++; return decode(...a); };
  Buffer.prototype.toString = function (this: Buffer, ...a: unknown[]) { n.strings++; return (toString as (...x: unknown[]) => string).apply(this, a); } as typeof toString;
  try {
    run();
  } finally {
    mod.decodeStartupPacket = decode;
    Buffer.prototype.toString = toString;
  }
  return n;
}

test('a StartupMessage like the one before is recognised by its bytes: not decoded, no key string made', () => {
  const params = { user: 'lc_user', database: 'lc_db', application_name: 'pgbench', client_encoding: 'UTF8' };
  const first = startupMessage(params);
  const msg = decodeStartup(first, first.length);
  assert.equal(msg.type, 'Startup');
  assert.ok(msg.type === 'Startup' && Object.isFrozen(msg.params), 'cached params are frozen (shared by the sessions that sent them)');
  const n = counted(() => {
    for (let i = 0; i < 100; i++) {
      const again = Buffer.from(first); // a new read's bytes, equal to the last ones
      assert.equal(decodeStartup(again, again.length), msg, 'the same decoded message (its derived login keys are kept with it)');
    }
  });
  assert.deepEqual(n, { decodes: 0, strings: 0 });
});

test('alternating StartupMessages are still decoded once each (the LRU), and SSLRequests are never cached', () => {
  const a = startupMessage({ user: 'lc_a', database: 'lc_db' });
  const b = startupMessage({ user: 'lc_b', database: 'lc_db' });
  const ma = decodeStartup(a, a.length);
  const mb = decodeStartup(b, b.length);
  const ssl = sslRequest();
  const n = counted(() => {
    for (let i = 0; i < 50; i++) {
      assert.equal(decodeStartup(a, a.length), ma);
      assert.equal(decodeStartup(ssl, ssl.length).type, 'SSLRequest');
      assert.equal(decodeStartup(b, b.length), mb);
    }
  });
  assert.equal(n.decodes, 50, 'only the SSLRequests are decoded (8 bytes, nothing to cache)');
  // A different message of the same length is not taken for the last one.
  const c = startupMessage({ user: 'lc_c', database: 'lc_db' });
  assert.equal(c.length, b.length);
  const mc = decodeStartup(c, c.length);
  assert.ok(mc.type === 'Startup' && mc.params.user === 'lc_c');
});

test('BackendKeyData secrets: drawn from a pool of random bytes (one fill per 1 024 logins), in 1..2^31-1, unpredictable', () => {
  let fills = 0;
  const { randomFillSync } = require('node:crypto') as typeof import('node:crypto');
  const pool = new SecretPool(4096, (b) => { fills++; randomFillSync(b); });
  const seen = new Set<number>();
  for (let i = 0; i < 10_240; i++) {
    const s = pool.next();
    assert.ok(Number.isInteger(s) && s >= 1 && s <= 0x7fffffff, `secret ${s} out of range`);
    seen.add(s);
  }
  assert.equal(fills, 10, 'random fills for 10 240 secrets');
  // 31 random bits each: a repeat among 10 240 is possible but rare (p ≈ 2.4 %); more than 3 is not.
  assert.ok(seen.size >= 10_240 - 3, `${10_240 - seen.size} repeated secrets`);
  // The registry's secrets come from its pool.
  const r = new SessionRegistry();
  const before = r.secrets.fills;
  for (let i = 0; i < 1000; i++) r.issueSecret();
  assert.ok(r.secrets.fills - before <= 1, 'one fill at most for 1 000 logins');
});

test('a new transaction-pooled session with startup parameters and no SET wants them as they are (no Map built per session)', () => {
  const base: ReadonlyMap<string, string> = new Map([['application_name', "SET application_name = 'pgbench'"]]);
  const s = new SessionState();
  s.setBase(base);
  const desired = (s as unknown as { desired(): ReadonlyMap<string, string> }).desired();
  assert.equal(desired, base, 'the shared startup settings themselves');
  // A connection that already has them (the previous client's) needs nothing.
  const conn = { applied: new Map(base), appliedVersion: -1, appliedOwner: null as unknown };
  assert.deepEqual(s.replayFor(conn, {}), []);
});
