import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SessionRegistry, type RegisteredSession } from '../../../src/frontend/registry';

function session(pid: number, secret: number, log: string[]): RegisteredSession {
  return { pid, secret, cancel: () => log.push(`cancel ${pid}/${secret}`), terminate: () => log.push(`terminate ${pid}`) };
}

test('SessionRegistry: sessions sharing a pid are told apart by their secret, and leave one by one', () => {
  const log: string[] = [];
  const r = new SessionRegistry();
  const a = session(100, 1, log);
  const b = session(100, 2, log);
  const c = session(100, 3, log);
  const d = session(200, 4, log);
  for (const s of [a, b, c, d]) r.add(s);
  assert.equal(r.size, 4);
  assert.deepEqual(new Set(r.list()), new Set([a, b, c, d]));
  assert.equal(r.cancelLocal(100, 2), true);
  assert.equal(r.cancelLocal(100, 9), false);
  assert.equal(r.cancelLocal(200, 4), true);
  assert.equal(r.cancelLocal(200, 1), false);
  assert.deepEqual(log, ['cancel 100/2', 'cancel 200/4']);
  r.delete(b);
  r.delete(b); // twice: nothing
  assert.equal(r.size, 3);
  assert.equal(r.cancelLocal(100, 2), false);
  r.delete(a);
  assert.equal(r.cancelLocal(100, 3), true);
  r.delete(c);
  r.delete(d);
  r.delete(session(300, 5, log)); // never added: nothing
  assert.equal(r.size, 0);
  assert.deepEqual(r.list(), []);
  // A pid issued while a session holds it is not issued again.
  const e = session(r.issuePid(), 6, log);
  r.add(e);
  for (let i = 0; i < 1000; i++) assert.notEqual(r.issuePid(), e.pid);
  const misses: number[] = [];
  r.onMiss = (pid) => misses.push(pid);
  assert.equal(r.cancel(e.pid, 7), false);
  assert.deepEqual(misses, [e.pid]);
});
