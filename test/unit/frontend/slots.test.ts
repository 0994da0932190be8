/** Slots: num_init_children gate with a bounded FIFO queue. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Slots } from '../../../src/frontend/slots';

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
