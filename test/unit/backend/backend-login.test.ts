/**
 * backend/backend-login.ts: the login steps shared by ServerConnection and BackendLink, fed with
 * messages built by the independent byte builder (test/fixtures/bytes.ts).
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { BackendLogin, type LoginEvents } from '../../../src/backend/backend-login';
import type { BackendAuthenticator } from '../../../src/backend/backend-auth';
import { ProxyError, ProxyErrorCode } from '../../../src/errors/proxy-error';
import { cstr, i32, msg, str, u8 } from '../../fixtures/bytes';

type Seen = string[];

function events(seen: Seen, extra: Partial<LoginEvents> = {}): LoginEvents {
  return {
    send: (b) => seen.push(`send ${b.toString('latin1')}`),
    fail: (e) => seen.push(`fail ${e.code} ${e.message}`),
    param: (buf, s, e) => seen.push(`param ${buf.subarray(s + 5, e).toString('latin1').replace(/\0/g, '|')}`),
    key: (pid, secret) => seen.push(`key ${pid}/${secret}`),
    ready: (tx) => seen.push(`ready ${String.fromCharCode(tx)}`),
    ...extra,
  };
}

const feed = (l: BackendLogin, frame: Buffer): void => l.onMessage(frame[0]!, frame, 0, frame.length);
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('a trusted login: parameters, key, ready; later messages are not the login\'s', () => {
  const seen: Seen = [];
  const l = new BackendLogin(0, undefined, events(seen));
  feed(l, msg('R', i32(0)));
  feed(l, msg('S', cstr('server_version'), cstr('15.18')));
  feed(l, msg('K', i32(4242), i32(77)));
  feed(l, msg('N', u8('S'), cstr('NOTICE'), u8(0)));
  feed(l, msg('Z', u8('I')));
  assert.equal(l.settled, true);
  feed(l, msg('S', cstr('late'), cstr('x')));
  assert.deepEqual(seen, ['param server_version|15.18|', 'key 4242/77', 'ready I']);
});

test('authentication answers go out one at a time, in order, even when the first is slower', async () => {
  const seen: Seen = [];
  const delays = [30, 0];
  const auth: BackendAuthenticator = {
    answer: async (req) => {
      await new Promise((r) => setTimeout(r, delays.shift()));
      return Buffer.from(req.type);
    },
    done: () => seen.push('done'),
  };
  const l = new BackendLogin(1, auth, events(seen));
  feed(l, msg('R', i32(10), cstr('SCRAM-SHA-256'), u8(0)));
  feed(l, msg('R', i32(11), str('r=abc,s=c2FsdA==,i=4096')));
  // both answers out (a fixed wait was too short on a busy machine); out of order would show here
  for (let i = 0; i < 500 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  feed(l, msg('R', i32(0)));
  assert.deepEqual(seen, ['send AuthenticationSASL', 'send AuthenticationSASLContinue', 'done']);
});

test('an ErrorResponse fails the login (28P01 as BackendAuth, others as BackendRejected), the frame to the authenticator first', () => {
  for (const [code, kind] of [['28P01', ProxyErrorCode.BackendAuth], ['28000', ProxyErrorCode.BackendAuth], ['3D000', ProxyErrorCode.BackendRejected]] as const) {
    const seen: Seen = [];
    const frames: (Buffer | null)[] = [];
    let failure: ProxyError | null = null;
    const l = new BackendLogin(2, { answer: async () => Buffer.alloc(0), failed: (f) => frames.push(f) }, events(seen, { fail: (e) => { failure = e; } }));
    const err = msg('E', u8('S'), cstr('FATAL'), u8('C'), cstr(code), u8('M'), cstr('no'), u8(0));
    feed(l, err);
    assert.equal((failure as ProxyError | null)?.code, kind);
    assert.match((failure as ProxyError | null)?.message ?? '', /^node 2: no$/);
    assert.deepEqual(frames, [err]);
    assert.equal(l.settled, true);
  }
});

test('a password request without an authenticator fails; an answer after abandon() is dropped', async () => {
  const seen: Seen = [];
  new BackendLogin(3, undefined, events(seen)).onMessage(0x52, msg('R', i32(3)), 0, 9);
  assert.match(seen[0] ?? '', /^fail PGPX_BACKEND_AUTH node 3 asked for authentication/);
  const late: Seen = [];
  const l = new BackendLogin(3, { answer: async () => Buffer.from('pw') }, events(late));
  feed(l, msg('R', i32(3)));
  l.abandon();
  await tick();
  assert.deepEqual(late, []);
});

test('a rejected answer (the authenticator throws) fails the login once', async () => {
  const seen: Seen = [];
  const l = new BackendLogin(4, { answer: async () => { throw new Error('no password for this user'); } }, events(seen));
  feed(l, msg('R', i32(5), Buffer.from([1, 2, 3, 4])));
  await tick();
  await tick();
  assert.equal(seen.length, 1);
  assert.match(seen[0]!, /^fail PGPX_BACKEND_AUTH no password for this user$/);
});
