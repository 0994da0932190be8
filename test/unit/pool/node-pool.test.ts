/** NodePool bookkeeping with plain in-memory connection objects (no protocol, no network). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeaseTimeout, NodePool, type Poolable } from '../../../src/pool/node-pool';

class Conn implements Poolable {
  createdAt = Date.now();
  lastUsedAt = Date.now();
  useCount = 0;
  usable = true;
  closedFor = '';
  constructor(readonly key: string) {}
  destroy(reason: string): void {
    this.usable = false;
    this.closedFor = reason;
  }
}

function pool(capacity: number, resetOk = true, extra: Partial<{ idleTimeoutSec: number; maxUses: number }> = {}) {
  return new NodePool<Conn>(0, {
    capacity, idleTimeoutSec: extra.idleTimeoutSec ?? 0, maxUses: extra.maxUses ?? 0, connectionCache: true,
    reset: async () => resetOk,
  });
}
const tick = () => new Promise((r) => setImmediate(r));

test('a released clean connection is reused for the same key only', async () => {
  const p = pool(4);
  const a = await p.acquire('u/db', async () => new Conn('u/db'));
  p.release(a, true);
  await tick();
  assert.equal(p.counts().idle, 1);
  const b = await p.acquire('u/db', async () => new Conn('u/db'));
  assert.equal(b, a);
  const c = await p.acquire('v/db', async () => new Conn('v/db'));
  assert.notEqual(c, a);
  assert.equal(p.reused, 1);
  assert.equal(p.created, 2);
  p.shutdown();
});

test('unclean or failed-reset connections are closed, counts return to zero', async () => {
  const p = pool(4, false);
  const a = await p.acquire('k', async () => new Conn('k'));
  const b = await p.acquire('k', async () => new Conn('k'));
  p.release(a, false);
  p.release(b, true);
  await tick();
  assert.equal(a.usable, false);
  assert.equal(b.usable, false);
  assert.deepEqual(p.counts(), { idle: 0, active: 0, resetting: 0, connecting: 0, total: 0, waiting: 0 });
  p.shutdown();
});

test('release twice throws', async () => {
  const p = pool(2);
  const a = await p.acquire('k', async () => new Conn('k'));
  p.release(a, true);
  assert.throws(() => p.release(a, true), /twice/);
  p.shutdown();
});

test('at capacity the least recently used idle connection is evicted', async () => {
  const p = pool(2);
  const a = await p.acquire('a', async () => new Conn('a'));
  const b = await p.acquire('b', async () => new Conn('b'));
  p.release(a, true);
  await tick();
  p.release(b, true);
  await tick();
  const c = await p.acquire('c', async () => new Conn('c'));
  assert.equal(a.usable, false, 'oldest evicted');
  assert.equal(b.usable, true);
  assert.equal(p.counts().total, 2);
  p.release(c, true);
  p.shutdown();
});

test('idle timeout and max uses', async () => {
  const p = pool(4, true, { idleTimeoutSec: 1, maxUses: 2 });
  const a = await p.acquire('k', async () => new Conn('k'));
  a.useCount = 1;
  p.release(a, true);
  await tick();
  p.reap(Date.now() + 1500);
  assert.equal(a.usable, false);
  const b = await p.acquire('k', async () => new Conn('k'));
  b.useCount = 2;
  p.release(b, true);
  assert.match(b.closedFor, /child_max_connections/);
  p.shutdown();
});

test('a failing create leaves no count behind', async () => {
  const p = pool(2);
  await assert.rejects(p.acquire('k', async () => { throw new Error('refused'); }));
  assert.equal(p.counts().total, 0);
  p.shutdown();
});

// ---- transaction pooling leases ---------------------------------------------------------

const LIMIT = { size: 2, reserve: 0, reserveAfterMs: 0 };

test('leases: an idle connection is taken at once, synchronously; given back it idles for the next', async () => {
  const p = pool(100);
  assert.equal(p.tryLease('k'), null);
  const a = await p.lease('k', async () => new Conn('k'), LIMIT, 1000);
  p.giveBack(a, true);
  assert.equal(p.tryLease('k'), a, 'no promise on the hot path');
  p.giveBack(a, true);
  assert.equal(p.counts().idle, 1);
  assert.throws(() => { p.giveBack(a, true); }, /twice/);
  p.shutdown();
});

test('leases: default_pool_size caps a key; waiters are served in FIFO order as connections come back', async () => {
  const p = pool(100);
  const a = await p.lease('k', async () => new Conn('k'), LIMIT, 1000);
  const b = await p.lease('k', async () => new Conn('k'), LIMIT, 1000);
  const order: string[] = [];
  const w1 = p.lease('k', async () => new Conn('k'), LIMIT, 1000).then((c) => { order.push('w1'); return c; });
  const w2 = p.lease('k', async () => new Conn('k'), LIMIT, 1000).then((c) => { order.push('w2'); return c; });
  await tick();
  assert.equal(p.keyCount('k'), 2, 'no third connection');
  assert.equal(p.counts().waiting, 2);
  p.giveBack(b, true);
  assert.equal(await w1, b);
  p.giveBack(a, true);
  assert.equal(await w2, a);
  assert.deepEqual(order, ['w1', 'w2']);
  // Another key is not limited by this one.
  const other = await p.lease('other', async () => new Conn('other'), LIMIT, 1000);
  assert.equal(other.key, 'other');
  p.shutdown();
});

test('leaseThen: waiters by callback are served in FIFO order with promise waiters, never from inside the call that decided it', async () => {
  const p = pool(100);
  const lim = { size: 1, reserve: 0, reserveAfterMs: 0 };
  const a = await p.lease('k', async () => new Conn('k'), lim, 1000);
  const got: [string, Conn | null, Error | null][] = [];
  p.leaseThen('k', async () => new Conn('k'), lim, 1000, (c, e) => got.push(['cb1', c, e]));
  const w2 = p.lease('k', async () => new Conn('k'), lim, 1000);
  p.leaseThen('k', async () => new Conn('k'), lim, 30, (c, e) => got.push(['cb3', c, e]));
  assert.equal(p.counts().waiting, 3);
  p.giveBack(a, true);
  assert.deepEqual(got, [], 'reported in a later microtask, not inside giveBack');
  await Promise.resolve();
  assert.equal(got.length, 1);
  assert.equal(got[0]![0], 'cb1');
  assert.equal(got[0]![1], a);
  p.giveBack(a, true);
  assert.equal(await w2, a, 'the promise waiter came next');
  // The third waits on the held connection past its 30 ms deadline.
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(got.length, 2);
  assert.equal(got[1]![0], 'cb3');
  assert.equal(got[1]![1], null);
  assert.ok((got[1]![2] as unknown) instanceof LeaseTimeout);
  assert.equal(p.counts().waiting, 0);
  // An idle connection is still reported later, as is a closed pool.
  p.giveBack(a, true);
  let now: Conn | null = null;
  p.leaseThen('k', async () => new Conn('k'), lim, 1000, (c) => { now = c; });
  assert.equal(now, null);
  await Promise.resolve();
  assert.equal(now, a);
  p.shutdown();
  let closed: Error | null = null;
  p.leaseThen('k', async () => new Conn('k'), lim, 1000, (_c, e) => { closed = e; });
  await Promise.resolve();
  assert.match(String(closed), /closed/);
});

test('leaseThen: a wait reported costs no queueMicrotask (no AsyncResource per lease); a callback that throws costs the others nothing', async () => {
  // Issue 17, item 9: Node's queueMicrotask() makes an AsyncResource and a bound function per
  // call; it ran once per waited lease, i.e. on nearly every transaction with more clients than
  // default_pool_size.
  const p = pool(100);
  const lim = { size: 1, reserve: 0, reserveAfterMs: 0 };
  let held = await p.lease('k', async () => new Conn('k'), lim, 1000);
  const realQueue = globalThis.queueMicrotask;
  let queued = 0;
  globalThis.queueMicrotask = ((cb: () => void) => { queued++; realQueue(cb); }) as typeof queueMicrotask;
  let served = 0;
  try {
    for (let i = 0; i < 200; i++) {
      let got: Conn | null = null;
      p.leaseThen('k', async () => new Conn('k'), lim, 1000, (c) => { got = c; served++; });
      p.giveBack(held, true);
      await Promise.resolve();
      assert.equal(got, held);
      held = got!;
    }
  } finally {
    globalThis.queueMicrotask = realQueue;
  }
  assert.equal(served, 200);
  assert.equal(queued, 0, `${queued} queueMicrotask calls for 200 waits`);
  // Three waiters granted in one turn: the first callback throws, the others are still served
  // and the throw still surfaces as an uncaught exception (as it did from queueMicrotask).
  const two = { size: 2, reserve: 0, reserveAfterMs: 0 };
  const b = await p.lease('k', async () => new Conn('k'), two, 1000);
  const order: string[] = [];
  p.leaseThen('k', async () => new Conn('k'), two, 1000, () => { order.push('1'); throw new Error('boom'); });
  p.leaseThen('k', async () => new Conn('k'), two, 1000, () => { order.push('2'); });
  const uncaught: unknown[] = [];
  const listeners = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  process.on('uncaughtException', (e) => uncaught.push(e));
  try {
    p.giveBack(held, true);
    p.giveBack(b, true);
    await new Promise((r) => setImmediate(r));
  } finally {
    process.removeAllListeners('uncaughtException');
    for (const l of listeners) process.on('uncaughtException', l);
  }
  assert.deepEqual(order, ['1', '2']);
  assert.equal(uncaught.length, 1);
  assert.match(String(uncaught[0]), /boom/);
  p.shutdown();
});

test('waitInLine: a connection given back goes to the first waiter from inside that giveBack, FIFO with every other waiter', async () => {
  // Issue 17, item 9: with more clients than default_pool_size nearly every transaction waits;
  // its request was sent in a microtask after the give-back, after a second pass of its session.
  // Now the waiting session gets the connection in the give-back's own call.
  const p = pool(100);
  const lim = { size: 1, reserve: 0, reserveAfterMs: 0 };
  const a = await p.lease('k', async () => new Conn('k'), lim, 1000);
  const got: string[] = [];
  p.waitInLine('k', async () => new Conn('k'), lim, 1000, (c) => got.push(`w1:${c === a}`));
  p.waitInLine('k', async () => new Conn('k'), lim, 1000, (c) => got.push(`w2:${c === a}`));
  assert.deepEqual(got, [], 'never from inside waitInLine');
  assert.equal(p.counts().waiting, 2);
  p.giveBack(a, true);
  assert.deepEqual(got, ['w1:true'], 'the first waiter has it before giveBack returns; the second still waits');
  assert.equal(p.counts().waiting, 1);
  assert.equal(p.counts().active, 1);
  p.giveBack(a, true);
  assert.deepEqual(got, ['w1:true', 'w2:true']);
  // In line with leaseThen and lease() waiters: each is served in its turn, those two in a microtask.
  const order: string[] = [];
  p.leaseThen('k', async () => new Conn('k'), lim, 1000, () => order.push('then'));
  const promised = p.lease('k', async () => new Conn('k'), lim, 1000).then(() => order.push('promise'));
  p.waitInLine('k', async () => new Conn('k'), lim, 1000, () => order.push('direct'));
  p.giveBack(a, true);
  assert.deepEqual(order, [], 'a leaseThen waiter is reported later, as before');
  await Promise.resolve();
  assert.deepEqual(order, ['then']);
  p.giveBack(a, true);
  await promised;
  assert.deepEqual(order, ['then', 'promise']);
  p.giveBack(a, true);
  assert.deepEqual(order, ['then', 'promise', 'direct'], 'the direct waiter last, in its turn, at once');
  assert.equal(p.leases, 6);
  assert.equal(p.waitedLeases, 5);
  p.giveBack(a, true);
  assert.deepEqual(p.counts(), { idle: 1, active: 0, resetting: 0, connecting: 0, total: 1, waiting: 0 });
  p.shutdown();
});

test('waitInLine: a hand-off is one level deep; a waiter that leaves gives the connection on; a throw never reaches the giver', async () => {
  const p = pool(100);
  const lim = { size: 1, reserve: 0, reserveAfterMs: 0 };
  const a = await p.lease('k', async () => new Conn('k'), lim, 1000);
  const events: string[] = [];
  // The first waiter's session ended while it waited: it gives the connection straight back
  // (frontend/session.ts leaseCame). The next waiter is not run inside that call (nor inside the
  // first giver's): it gets the connection in a microtask.
  p.waitInLine('k', async () => new Conn('k'), lim, 1000, (c) => {
    events.push('gone:in');
    p.giveBack(c!, true);
    events.push('gone:out');
  });
  p.waitInLine('k', async () => new Conn('k'), lim, 1000, (c) => events.push(`next:${c === a}`));
  p.giveBack(a, true);
  assert.deepEqual(events, ['gone:in', 'gone:out'], 'no second hand-off inside the first');
  await Promise.resolve();
  assert.deepEqual(events, ['gone:in', 'gone:out', 'next:true']);
  assert.equal(p.counts().waiting, 0);
  // A callback that throws: the giver's call returns normally, the connection stays leased to
  // that waiter (its session ends and closes it), the throw surfaces as an uncaught exception.
  p.waitInLine('k', async () => new Conn('k'), lim, 1000, () => { throw new Error('boom'); });
  const uncaught: unknown[] = [];
  const listeners = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  process.on('uncaughtException', (e) => uncaught.push(e));
  try {
    assert.doesNotThrow(() => p.giveBack(a, true));
    await new Promise((r) => setImmediate(r));
  } finally {
    process.removeAllListeners('uncaughtException');
    for (const l of listeners) process.on('uncaughtException', l);
  }
  assert.equal(uncaught.length, 1);
  assert.match(String(uncaught[0]), /boom/);
  assert.equal(p.counts().active, 1);
  p.giveBack(a, true);
  p.shutdown();
});

test('waitInLine: query_wait_timeout, a new connection below default_pool_size, and a closed connection replaced, each reported in a microtask', async () => {
  const p = pool(100);
  const lim = { size: 2, reserve: 0, reserveAfterMs: 0 };
  const a = await p.lease('k', async () => new Conn('k'), lim, 1000);
  // Below the limit: a new connection, not handed over synchronously (it is being opened).
  let opened: Conn | null = null;
  p.waitInLine('k', async () => new Conn('k'), lim, 1000, (c) => { opened = c; });
  assert.equal(opened, null);
  await tick();
  assert.ok(opened !== null && opened !== a);
  assert.equal(p.keyCount('k'), 2);
  // At the limit, behind nobody: LeaseTimeout after its deadline.
  const outcome: (Error | null)[] = [];
  p.waitInLine('k', async () => new Conn('k'), lim, 30, (_c, e) => outcome.push(e));
  // Behind it, a waiter with a longer deadline (no pump of its own: nothing to serve it yet).
  let later: Conn | null = null;
  p.waitInLine('k', async () => new Conn('k'), lim, 5000, (c) => { later = c; });
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(outcome.length, 1);
  assert.ok(outcome[0] instanceof LeaseTimeout);
  assert.equal(later, null);
  // A connection closed: the waiter behind is served by a new one.
  p.giveBack(a, false, 'broken');
  assert.equal(later, null, 'a new connection is opened for it: later');
  await tick();
  assert.ok(later !== null && later !== a);
  assert.equal(p.counts().waiting, 0);
  p.shutdown();
});

test('leases: a waiter gives up after its deadline with LeaseTimeout; a closed connection makes room for a waiter', async () => {
  const p = pool(100);
  const a = await p.lease('k', async () => new Conn('k'), { size: 1, reserve: 0, reserveAfterMs: 0 }, 1000);
  await assert.rejects(p.lease('k', async () => new Conn('k'), { size: 1, reserve: 0, reserveAfterMs: 0 }, 50), LeaseTimeout);
  assert.equal(p.counts().waiting, 0);
  const w = p.lease('k', async () => new Conn('k'), { size: 1, reserve: 0, reserveAfterMs: 0 }, 1000);
  p.giveBack(a, false, 'broken');
  const c = await w;
  assert.notEqual(c, a, 'a new connection replaced the closed one');
  p.shutdown();
});

test('leases: reserve_pool_size opens more connections for a client that waited reserve_pool_timeout', async () => {
  const p = pool(100);
  const lim = { size: 1, reserve: 1, reserveAfterMs: 30 };
  await p.lease('k', async () => new Conn('k'), lim, 1000);
  const started = Date.now();
  const extra = await p.lease('k', async () => new Conn('k'), lim, 1000);
  assert.ok(Date.now() - started >= 25, 'it waited reserve_pool_timeout first');
  assert.equal(p.keyCount('k'), 2);
  assert.ok(extra !== undefined);
  p.shutdown();
});

test('leases: a thousand waiters on two connections, some timing out, are served in order and counted exactly', async () => {
  const p = pool(100);
  const lim = { size: 2, reserve: 0, reserveAfterMs: 0 };
  const held = [await p.lease('k', async () => new Conn('k'), lim, 0), await p.lease('k', async () => new Conn('k'), lim, 0)];
  const served: number[] = [];
  const timedOut: number[] = [];
  const waits = Array.from({ length: 1000 }, (_, i) => p.lease('k', async () => new Conn('k'), lim, i % 10 === 5 ? 20 : 0)
    .then((c) => { served.push(i); return c; }, (e: Error) => { assert.ok(e instanceof LeaseTimeout); timedOut.push(i); return null; }));
  // (Before any timer can fire: creating a thousand waiters may take longer than 20 ms on a busy machine.)
  assert.equal(p.counts().waiting, 1000);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(timedOut.length, 100, 'every waiter with a deadline gave up');
  assert.equal(p.counts().waiting, 900);
  // Pass the two connections along the line: each waiter gives back what it got.
  for (const c of held) p.giveBack(c, true);
  for (let n = 0; n < 900; n++) {
    await tick();
    const i = served[n]!;
    const c = await waits[i]!;
    p.giveBack(c!, true);
  }
  await Promise.all(waits);
  const expected = Array.from({ length: 1000 }, (_, i) => i).filter((i) => i % 10 !== 5);
  assert.deepEqual(served, expected, 'first come, first served; the ones that left are skipped');
  assert.equal(p.counts().waiting, 0);
  assert.equal(p.keyCount('k'), 2, 'never more than default_pool_size');
  assert.equal(p.counts().idle, 2);
  p.shutdown();
});

test('leases: a waiter whose key has a broken idle connection still gets a working one', async () => {
  const p = pool(100);
  const lim = { size: 1, reserve: 0, reserveAfterMs: 0 };
  const a = await p.lease('k', async () => new Conn('k'), lim, 0);
  p.giveBack(a, true);
  a.usable = false; // broke while idle
  const b = await p.lease('k', async () => new Conn('k'), lim, 1000);
  assert.notEqual(b, a);
  assert.ok(b.usable);
  assert.equal(p.keyCount('k'), 1);
  p.shutdown();
});

test('leases: a waiter served before reserve_pool_timeout leaves no timer behind (cleared, unref\'d)', async () => {
  const p = pool(100);
  const lim = { size: 1, reserve: 1, reserveAfterMs: 60_000 };
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const a = await p.lease('k', async () => new Conn('k'), lim, 0);
  const before = timers();
  const waits = Array.from({ length: 50 }, () => p.lease('k', async () => new Conn('k'), lim, 0));
  assert.equal(timers(), before, 'no timer per waiter keeps the process alive');
  let c = a;
  for (const w of waits) {
    p.giveBack(c, true);
    c = await w;
  }
  assert.equal(timers(), before);
  p.shutdown();
});

test('leases: pinned connections leave default_pool_size to the other clients, up to pinned_pool_size', async () => {
  const p = pool(100);
  const lim = { size: 2, reserve: 0, reserveAfterMs: 0 };
  const a = await p.lease('k', async () => new Conn('k'), lim, 0);
  const b = await p.lease('k', async () => new Conn('k'), lim, 0);
  // Both clients pin (LISTEN...): a third client gets a connection of its own at once.
  const w = p.lease('k', async () => new Conn('k'), lim, 1000);
  await tick();
  assert.equal(p.counts().waiting, 1);
  assert.equal(p.pin(a, 1), true);
  assert.equal(p.pin(b, 1), false, 'pinned_pool_size = 1: the second pinned one keeps counting');
  const c = await w;
  assert.notEqual(c, a);
  assert.equal(p.keyCount('k'), 2);
  assert.equal(p.pinnedCount('k'), 1);
  // The pinned session ends: its connection counts again, one too many, and is closed.
  p.giveBack(a, true);
  assert.equal(a.usable, false);
  assert.equal(p.pinnedCount('k'), 0);
  assert.equal(p.keyCount('k'), 2);
  p.giveBack(b, true);
  p.giveBack(c, true);
  assert.equal(p.counts().idle, 2);
  p.shutdown();
});

test('leases: waiting costs no timer per waiter (one deadline timer for the pool), and deadlines still hold', async () => {
  // Issue 17, item 9: with more clients than connections nearly every lease waits; a
  // query_wait_timeout timer set and cleared for each was work on every such transaction.
  const p = pool(100);
  const lim = { size: 1, reserve: 0, reserveAfterMs: 0 };
  let held = await p.lease('k', async () => new Conn('k'), lim, 120_000);
  const realSetTimeout = globalThis.setTimeout;
  let timers = 0;
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => { timers++; return realSetTimeout(...args); }) as typeof setTimeout;
  try {
    for (let round = 0; round < 3; round++) {
      const waits = Array.from({ length: 100 }, () => p.lease('k', async () => new Conn('k'), lim, 120_000));
      for (const w of waits) {
        p.giveBack(held, true);
        held = await w;
      }
    }
  } finally {
    globalThis.setTimeout = realSetTimeout;
  }
  assert.ok(timers <= 3, `${timers} timers set for 300 waits`);
  // Deadlines: a short one behind a long one still gives up on time; the long one keeps waiting.
  const long = p.lease('k', async () => new Conn('k'), lim, 60_000);
  const short = p.lease('k', async () => new Conn('k'), lim, 30);
  await assert.rejects(short, LeaseTimeout);
  assert.equal(p.counts().waiting, 1);
  p.giveBack(held, true);
  assert.ok((await long) instanceof Conn);
  p.shutdown();
});

test('leases: a line that empties and fills on every transaction sets the deadline timer once; it holds the process only while someone waits', async () => {
  // A few more clients than default_pool_size: the line is empty between most transactions. The
  // deadline timer was cleared when it emptied and set again at the next wait: a clearTimeout()
  // and a setTimeout() per waited transaction.
  const p = pool(100);
  const lim = { size: 1, reserve: 0, reserveAfterMs: 0 };
  const held = await p.lease('k', async () => new Conn('k'), lim, 120_000);
  const refed = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = refed();
  const realSetTimeout = globalThis.setTimeout;
  let timers = 0;
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => { timers++; return realSetTimeout(...args); }) as typeof setTimeout;
  try {
    for (let i = 0; i < 100; i++) {
      let got: Conn | null = null;
      p.waitInLine('k', async () => new Conn('k'), lim, 120_000, (c) => { got = c; });
      assert.equal(refed(), before + 1, 'someone waits: the timer holds the process');
      p.giveBack(held, true);
      assert.equal(got, held);
      assert.equal(refed(), before, 'nobody waits: it does not');
    }
  } finally {
    globalThis.setTimeout = realSetTimeout;
  }
  assert.ok(timers <= 1, `${timers} timers set for 100 waits, each alone in line`);
  // A waiter with a shorter deadline than the timer left from those waits: set again for it, it gives up on time.
  const outcome: (Error | null)[] = [];
  const started = Date.now();
  p.waitInLine('k', async () => new Conn('k'), lim, 40, (_c, e) => { outcome.push(e); });
  await new Promise((r) => setTimeout(r, 15));
  assert.equal(outcome.length, 0);
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(outcome.length, 1);
  assert.ok(outcome[0] instanceof LeaseTimeout);
  assert.ok(Date.now() - started >= 38);
  p.giveBack(held, true);
  p.shutdown();
});

test('session pooling: a login that arrives while its key\'s connection is being reset waits for it instead of opening one', async () => {
  const resets: ((ok: boolean) => void)[] = [];
  const p = new NodePool<Conn>(0, {
    capacity: 8, idleTimeoutSec: 0, maxUses: 0, connectionCache: true,
    reset: () => new Promise<boolean>((resolve) => resets.push(resolve)),
  });
  let created = 0;
  const create = async (): Promise<Conn> => { created++; return new Conn('k'); };
  const a = await p.acquire('k', create);
  const b = await p.acquire('k', create);
  p.release(a, true);
  p.release(b, true);
  assert.equal(p.counts().resetting, 2);
  // Three logins while two resets run: two wait (one per reset), the third opens its own.
  const first = p.acquire('k', create);
  const second = p.acquire('k', create);
  const third = p.acquire('k', create);
  await tick();
  assert.equal(created, 3, 'only the login beyond the connections being reset opened one');
  // Another key does not wait for this key's resets.
  const other = await p.acquire('other', async () => new Conn('other'));
  assert.equal(other.key, 'other');
  resets[0]!(true);
  assert.equal(await first, a, 'the first waiting login got the connection whose reset finished');
  resets[1]!(false); // a failed reset: the waiting login opens a new connection
  const s = await second;
  assert.notEqual(s, b);
  assert.equal(b.usable, false);
  assert.equal(created, 4);
  assert.notEqual(await third, a);
  p.shutdown();
});

test('session pooling: shutdown wakes the logins waiting for a reset', async () => {
  const p = new NodePool<Conn>(0, {
    capacity: 8, idleTimeoutSec: 0, maxUses: 0, connectionCache: true, reset: () => new Promise<boolean>(() => {}),
  });
  const a = await p.acquire('k', async () => new Conn('k'));
  p.release(a, true);
  const waiting = p.acquire('k', async () => new Conn('k'));
  await tick();
  p.shutdown();
  await assert.rejects(waiting, /closed/);
});

test('a new connection closed right after its login (its backend terminated) is not lent: another one is opened (acquire and lease)', async () => {
  const p = pool(8);
  const made: Conn[] = [];
  let dead = 2;
  const create = async (): Promise<Conn> => {
    const c = new Conn('k');
    made.push(c);
    if (dead-- > 0) c.usable = false; // its FATAL came with the login's ReadyForQuery
    return c;
  };
  const a = await p.acquire('k', create);
  assert.equal(a.usable, true);
  assert.equal(made.length, 3);
  assert.equal(p.deadOnArrival, 2);
  dead = 1;
  const b = await p.lease('k2', create, { size: 1, reserve: 0, reserveAfterMs: 0 }, 1000);
  assert.equal(b.usable, true);
  assert.equal(p.deadOnArrival, 3);
  assert.equal(p.counts().active, 2);
  p.shutdown();
});

test('a new connection closed right after its login every time: bounded, then the connection\'s own error', async () => {
  const p = pool(8);
  let calls = 0;
  await assert.rejects(p.acquire('k', async () => {
    calls++;
    const x = new Conn('k');
    x.usable = false;
    return Object.assign(x, { closedError: () => new Error('node 0: the connection closed right after its login (57P01: terminating connection due to administrator command)') });
  }), /closed right after its login \(57P01/);
  assert.equal(calls, 5);
  assert.equal(p.counts().connecting, 0);
  p.shutdown();
});
