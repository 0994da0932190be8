/** Slots: num_init_children gate with a bounded FIFO queue. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Slots, waitForSlot } from '../../../src/frontend/slots';

test('grants up to capacity, queues FIFO, refuses past the queue limit', async () => {
  const s = new Slots(2, 2);
  const a = await s.acquire()!.lease;
  const b = await s.acquire()!.lease;
  assert.equal(s.inUse, 2);
  const order: number[] = [];
  const c = s.acquire()!;
  const d = s.acquire()!;
  void c.lease.then(() => order.push(3));
  void d.lease.then(() => order.push(4));
  assert.equal(s.waiting, 2);
  assert.equal(s.acquire(), null, 'queue full');
  a.release();
  await c.lease;
  b.release();
  await d.lease;
  assert.deepEqual(order, [3, 4]);
  assert.throws(() => a.release(), /twice/);
});

test('a cancelled waiter is skipped', async () => {
  const s = new Slots(1, 5);
  const a = await s.acquire()!.lease;
  const c = s.acquire()!;
  const d = s.acquire()!;
  c.cancel();
  assert.equal(s.waiting, 1);
  a.release();
  const got = await d.lease;
  assert.equal(got.slot, a.slot);
});

test('a waiter granted a slot and then cancelled gives the slot back and is uncounted once', async () => {
  // num_init_children = 1, queue of 2: the client waiting gets the slot the moment the holder
  // leaves, but its own authentication_timeout closed it before it saw the grant.
  const s = new Slots(1, 2);
  const holder = await s.acquire()!.lease;
  const late = s.acquire()!;
  assert.equal(s.waiting, 1);
  holder.release();
  assert.equal(s.waiting, 0, 'granted: no longer waiting');
  assert.equal(s.inUse, 1, 'the slot is held by the granted waiter');
  late.cancel();
  late.cancel();
  assert.equal(s.waiting, 0, 'cancel after the grant must not decrement the waiting count again');
  assert.equal(s.inUse, 0, 'the granted slot came back');
  // The limits are exact again: one served, two queued, the fourth refused.
  const a = s.acquire()!;
  const b = s.acquire()!;
  const c = s.acquire()!;
  assert.equal(s.inUse, 1);
  assert.equal(s.waiting, 2);
  assert.equal(s.acquire(), null, 'queue full at exactly queueLimit');
  (await a.lease).release();
  await b.lease;
  c.cancel();
  assert.equal(s.waiting, 0);
});

test('a cancelled grant goes to the next waiter; cancel after release is a no-op', async () => {
  const s = new Slots(1, 3);
  const holder = await s.acquire()!.lease;
  const w1 = s.acquire()!;
  const w2 = s.acquire()!;
  holder.release();
  const l1 = await w1.lease;
  w1.cancel(); // the session was already closed when its slot came
  const l2 = await w2.lease;
  assert.equal(l2.slot, l1.slot);
  assert.equal(s.inUse, 1);
  assert.equal(s.waiting, 0);
  l2.release();
  w2.cancel(); // already released by its holder: nothing more
  assert.equal(s.inUse, 0);
  assert.throws(() => l1.release(), /twice/, 'cancel() released it');
});

test('cancel of an immediately granted slot releases it once', async () => {
  const s = new Slots(2, 0);
  const r = s.acquire()!;
  await r.lease;
  assert.equal(s.inUse, 1);
  r.cancel();
  r.cancel();
  assert.equal(s.inUse, 0);
  assert.equal(s.waiting, 0);
});

test('many grant/cancel races never let the queue exceed its limit', async () => {
  const s = new Slots(2, 4);
  for (let round = 0; round < 50; round++) {
    const held = [await s.acquire()!.lease, await s.acquire()!.lease];
    const queued = [s.acquire()!, s.acquire()!, s.acquire()!, s.acquire()!];
    assert.equal(s.acquire(), null, `round ${round}: 53300 at exactly 4 waiting`);
    for (const h of held) h.release(); // grants the first two waiters
    for (const q of queued) q.cancel(); // all four gave up: two were granted, two still queued
    assert.equal(s.waiting, 0, `round ${round}: waiting`);
    assert.equal(s.inUse, 0, `round ${round}: in use`);
  }
});

test('waitForSlot: a slot now, "full" past the queue, null (and the place given up) when the client leaves', async () => {
  const s = new Slots(1, 1);
  const never = new Promise<void>(() => {});
  const first = await waitForSlot(s, never, () => false);
  assert.ok(first !== null && first !== 'full');
  let leave!: () => void;
  const gone = new Promise<void>((r) => { leave = r; });
  let left = false;
  const waiting = waitForSlot(s, gone, () => left);
  assert.equal(await waitForSlot(s, never, () => false), 'full', 'the one place in line is taken');
  left = true;
  leave();
  assert.equal(await waiting, null);
  assert.equal(s.waiting, 0, 'the place in line was given up');
  first.release();
  assert.equal(s.inUse, 0, 'nothing granted to the client that left');
});

test('waiters that leave the line are not kept: 10,000 clients queue and go while the slots are busy', async () => {
  const s = new Slots(1, 5);
  const a = await s.acquire()!.lease;
  for (let i = 0; i < 10_000; i++) s.acquire()!.cancel();
  assert.equal(s.waiting, 0);
  assert.equal((s as unknown as { waiters: unknown[] }).waiters.length, 0, 'no cancelled waiter is held until a slot frees');
  const d = s.acquire()!;
  a.release();
  assert.equal((await d.lease).slot, a.slot);
});

test('a slot taken at once is one object per client: release() shared by every lease (no closures per login), once-only, history kept', () => {
  const s = new Slots(2, 0);
  const a = s.tryAcquire()!;
  const b = s.tryAcquire()!;
  assert.notEqual(a, null);
  assert.notEqual(b, null);
  assert.equal(s.tryAcquire(), null);
  assert.equal(Object.hasOwn(a, 'release'), false, 'release() is a closure made per lease');
  assert.equal(a.release, b.release);
  const before = Date.now();
  a.release();
  assert.throws(() => a.release(), /released twice/);
  assert.equal(s.inUse, 1);
  const h = s.history(a.slot)!;
  assert.equal(h.connections, 1);
  assert.ok(h.lastDisconnectedAt !== null && h.lastDisconnectedAt.getTime() >= before - 1 && h.lastDisconnectedAt.getTime() <= Date.now() + 1);
  assert.equal(s.history(b.slot)!.lastDisconnectedAt, null);
  const c = s.tryAcquire()!;
  assert.equal(c.slot, a.slot);
  assert.equal(s.history(c.slot)!.connections, 2);
});
