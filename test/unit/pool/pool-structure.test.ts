/**
 * NodePool's bookkeeping structures (issue 17, item 9: the cost of a lease): each connection's
 * record (Poolable.poolSlot) and one record per key instead of Sets and Maps changed per lease,
 * the waiters' ring, the idle order across keys, and exact counts through every path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NodePool, WaitQueue, type LeaseLimit, type Poolable } from '../../../src/pool/node-pool';

class Conn implements Poolable {
  static next = 0;
  readonly id = Conn.next++;
  createdAt = Date.now();
  lastUsedAt = Date.now();
  useCount = 0;
  usable = true;
  closedFor = '';
  poolSlot: unknown = undefined;
  constructor(readonly key: string) {}
  destroy(reason: string): void {
    this.usable = false;
    this.closedFor = reason;
  }
}

const LIM: LeaseLimit = { size: 4, reserve: 0, reserveAfterMs: 0 };
const pool = (capacity = 100) => new NodePool<Conn>(0, { capacity, idleTimeoutSec: 0, maxUses: 0, connectionCache: true, reset: async () => true, discard: async () => true });
const tick = () => new Promise((r) => setImmediate(r));

test('WaitQueue: first in, first out across wrap-arounds and growth; done entries skipped; drain and waiting in order', () => {
  const q = new WaitQueue<{ n: number; done: boolean }>();
  const seen: number[] = [];
  let n = 0;
  // Fill and empty by different amounts so head and tail wrap at every ring size.
  for (let round = 1; round <= 40; round++) {
    for (let i = 0; i < round % 13; i++) q.push({ n: n++, done: false });
    for (let i = 0; i < (round * 7) % 11; i++) {
      const w = q.first();
      if (w === undefined) break;
      seen.push(w.n);
      q.advance();
    }
  }
  for (let w = q.first(); w !== undefined; w = q.first()) {
    seen.push(w.n);
    q.advance();
  }
  assert.deepEqual(seen, Array.from({ length: n }, (_, i) => i));
  assert.equal(q.empty, true);
  // Done entries (left the line) are stepped over; waiting() and drain() keep the order.
  const items = Array.from({ length: 30 }, (_, i) => ({ n: i, done: i % 3 === 0 }));
  for (const it of items) q.push(it);
  assert.equal(q.first()!.n, 1);
  assert.deepEqual(q.waiting([]).map((w) => w.n), items.filter((w) => !w.done).map((w) => w.n));
  assert.deepEqual(q.drain([]).map((w) => w.n), items.slice(1).map((w) => w.n));
  assert.equal(q.empty, true);
  assert.equal(q.first(), undefined);
});

test('a lease and a give-back touch no Set or Map (idle connection there, and a waiter handed one)', async () => {
  const p = pool();
  const conns = await Promise.all([1, 2, 3, 4].map(() => p.lease('k', async () => new Conn('k'), LIM, 0)));
  for (const c of conns) p.giveBack(c, true, '', LIM);
  const counted = { set: 0, map: 0 };
  const real = { sa: Set.prototype.add, sd: Set.prototype.delete, ms: Map.prototype.set, md: Map.prototype.delete };
  Set.prototype.add = function (this: Set<unknown>, v: unknown) { counted.set++; return real.sa.call(this, v); } as typeof Set.prototype.add;
  Set.prototype.delete = function (this: Set<unknown>, v: unknown) { counted.set++; return real.sd.call(this, v); };
  Map.prototype.set = function (this: Map<unknown, unknown>, k: unknown, v: unknown) { counted.map++; return real.ms.call(this, k, v); } as typeof Map.prototype.set;
  Map.prototype.delete = function (this: Map<unknown, unknown>, k: unknown) { counted.map++; return real.md.call(this, k); };
  try {
    for (let i = 0; i < 100; i++) {
      // Three clients with an idle connection each time (the list empties and fills again)...
      const held = [p.tryLease('k')!, p.tryLease('k')!, p.tryLease('k')!, p.tryLease('k')!];
      for (const c of held) p.giveBack(c, true, '', LIM);
    }
    // ...and with every connection leased: the waiter is handed the one given back.
    const held = [p.tryLease('k')!, p.tryLease('k')!, p.tryLease('k')!, p.tryLease('k')!];
    let got: Conn | null = null;
    for (let i = 0; i < 100; i++) {
      p.waitInLine('k', async () => new Conn('k'), LIM, 0, (c) => { got = c; });
      const c = held.shift()!;
      p.giveBack(c, true, '', LIM);
      assert.equal(got, c);
      held.push(got!);
    }
    for (const c of held) p.giveBack(c, true, '', LIM);
  } finally {
    Object.assign(Set.prototype, { add: real.sa, delete: real.sd });
    Object.assign(Map.prototype, { set: real.ms, delete: real.md });
  }
  assert.deepEqual(counted, { set: 0, map: 0 });
  assert.deepEqual(p.counts(), { idle: 4, active: 0, resetting: 0, connecting: 0, total: 4, waiting: 0 });
  p.shutdown();
});

test('the least recently used idle connection of any key is evicted first, and idleConnections() lists them in that order', async () => {
  const p = pool(6);
  const lease = (k: string) => p.lease(k, async () => new Conn(k), LIM, 0);
  const a1 = await lease('a');
  const b1 = await lease('b');
  const a2 = await lease('a');
  const c1 = await lease('c');
  const b2 = await lease('b');
  // Back in this order: b1, a2, c1, a1, b2 (least recently used first).
  for (const c of [b1, a2, c1, a1, b2]) p.giveBack(c, true, '', LIM);
  assert.deepEqual(p.idleConnections().map((c) => c.id), [b1, a2, c1, a1, b2].map((c) => c.id));
  // Reuse is LIFO per key: a1 was given back after a2.
  assert.equal(p.tryLease('a'), a1);
  p.giveBack(a1, true, '', LIM);
  assert.deepEqual(p.idleConnections().map((c) => c.id), [b1, a2, c1, b2, a1].map((c) => c.id));
  // Capacity 6 with 5 idle: two new connections of key 'd' evict b1, then a2.
  const d1 = await lease('d');
  assert.equal(b1.usable, true, 'room for one more');
  const d2 = await lease('d');
  assert.match(b1.closedFor, /evicted/);
  assert.equal(a2.usable, true);
  const d3 = await lease('d');
  assert.match(a2.closedFor, /evicted/);
  assert.equal(c1.usable, true);
  assert.equal(p.evicted, 2);
  assert.deepEqual(p.idleConnections().map((c) => c.id), [c1, b2, a1].map((c) => c.id));
  assert.deepEqual(p.counts(), { idle: 3, active: 3, resetting: 0, connecting: 0, total: 6, waiting: 0 });
  assert.deepEqual([p.keyCount('a'), p.keyCount('b'), p.keyCount('c'), p.keyCount('d')], [1, 1, 1, 3]);
  assert.deepEqual(new Set(p.leasedConnections()), new Set([d1, d2, d3]));
  p.shutdown();
});

test('counts stay exact through leases, waits, pins, resets, closes and session-pooling releases; unused keys are forgotten', async () => {
  const p = pool();
  const lim: LeaseLimit = { size: 2, reserve: 0, reserveAfterMs: 0 };
  const a = await p.lease('k', async () => new Conn('k'), lim, 0);
  const b = await p.lease('k', async () => new Conn('k'), lim, 0);
  const waiting = p.lease('k', async () => new Conn('k'), lim, 0);
  assert.deepEqual(p.counts(), { idle: 0, active: 2, resetting: 0, connecting: 0, total: 2, waiting: 1 });
  // A pin lets the waiter have a third connection.
  assert.equal(p.pin(a, 5), true);
  const c = await waiting;
  assert.deepEqual([p.keyCount('k'), p.pinnedCount('k')], [2, 1]);
  // Given back with DISCARD ALL: resetting, then idle (a was pinned, and is one too many: closed).
  p.giveBack(b, true, '', lim, true);
  assert.deepEqual(p.counts(), { idle: 0, active: 2, resetting: 1, connecting: 0, total: 3, waiting: 0 });
  await tick();
  assert.deepEqual(p.counts(), { idle: 1, active: 2, resetting: 0, connecting: 0, total: 3, waiting: 0 });
  p.giveBack(a, true, '', lim);
  assert.match(a.closedFor, /above default_pool_size/);
  assert.deepEqual([p.keyCount('k'), p.pinnedCount('k')], [2, 0]);
  assert.throws(() => p.giveBack(a, true), /twice/);
  p.giveBack(c, false, 'broken');
  assert.deepEqual(p.counts(), { idle: 1, active: 0, resetting: 0, connecting: 0, total: 1, waiting: 0 });
  // A connection of another pool is refused as never leased here.
  const other = pool();
  const o = await other.lease('k', async () => new Conn('k'), lim, 0);
  assert.throws(() => p.giveBack(o, true), /twice/);
  other.shutdown();
  // Session pooling on another key: release, reset, idle, reuse.
  const s = await p.acquire('s', async () => new Conn('s'));
  p.release(s, true);
  assert.equal(p.counts().resetting, 1);
  await tick();
  assert.equal(await p.acquire('s', async () => new Conn('s')), s);
  p.release(s, false);
  assert.deepEqual(p.counts(), { idle: 1, active: 0, resetting: 0, connecting: 0, total: 1, waiting: 0 });
  assert.equal(p.keyCount('s'), 0);
  // The idle one expires; the keys with nothing left are forgotten, and come back when used.
  p.configure({ idleTimeoutSec: 1 });
  p.reap(Date.now() + 1500);
  assert.deepEqual(p.counts(), { idle: 0, active: 0, resetting: 0, connecting: 0, total: 0, waiting: 0 });
  assert.equal((p as unknown as { keys: Map<string, unknown> }).keys.size, 0);
  const again = await p.lease('k', async () => new Conn('k'), lim, 0);
  assert.equal(p.keyCount('k'), 1);
  p.giveBack(again, true, '', lim);
  assert.equal(p.tryLease('k'), again);
  p.giveBack(again, true, '', lim);
  p.shutdown();
  assert.equal(again.usable, false);
});

test('closeIdle (node down) hands none of the closed connections to a waiter', async () => {
  const p = pool();
  const lim: LeaseLimit = { size: 3, reserve: 0, reserveAfterMs: 0 };
  const conns = await Promise.all([1, 2, 3].map(() => p.lease('k', async () => new Conn('k'), lim, 0)));
  p.giveBack(conns[0]!, true, '', lim);
  p.giveBack(conns[1]!, true, '', lim);
  let made = 0;
  p.closeIdle('node 0 down');
  assert.equal(conns[0]!.usable, false);
  assert.equal(conns[1]!.usable, false);
  const w = p.lease('k', async () => { made++; return new Conn('k'); }, lim, 0);
  const got = await w;
  assert.equal(made, 1);
  assert.equal(got.usable, true);
  assert.deepEqual(p.counts(), { idle: 0, active: 2, resetting: 0, connecting: 0, total: 2, waiting: 0 });
  p.shutdown();
});
