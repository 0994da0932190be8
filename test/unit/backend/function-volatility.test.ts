/**
 * FunctionVolatility without a primary to ask (no side-connection target), on a fake clock:
 * every function is volatile (fail closed) and asked again after the retry delay, the LRU
 * never exceeds its capacity, and a batch larger than the capacity is answered in full when its
 * lookup resolves (so the dispatcher does not look the same functions up forever). The side
 * connection itself is tested against PostgreSQL in test/integration/side-connections.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FunctionVolatility } from '../../../src/backend/function-volatility';

function setup(capacity: number): { v: FunctionVolatility; clock: { t: number }; asked: () => number } {
  const clock = { t: 1_000_000 };
  let asked = 0;
  const v = new FunctionVolatility({ target: () => { asked++; return null; }, capacity, now: () => clock.t });
  return { v, clock, asked: () => asked };
}

test('the cache never holds more than its capacity; the least recently used entries go', async () => {
  const { v, clock } = setup(4);
  for (let i = 0; i < 50; i++) {
    await v.lookup([`f${i}`]);
    assert.equal(v.get(`f${i}`), 'v', 'no primary: volatile');
    assert.ok(v.size <= 4, `size ${v.size}`);
  }
  clock.t += 3000; // past the window in which the latest answers stay readable beside the LRU
  assert.equal(v.size, 4);
  assert.equal(v.get('f49'), 'v', 'recent entries stay');
  assert.equal(v.get('f0'), undefined, 'the least recently used went');
});

test('a batch larger than the capacity is answered in full when the lookup resolves', async () => {
  const { v, clock, asked } = setup(3);
  const fns = Array.from({ length: 10 }, (_, i) => `g${i}`);
  await v.lookup(fns);
  clock.t += 100; // the dispatcher re-plans a moment later
  assert.deepEqual(fns.map((f) => v.get(f)), fns.map(() => 'v'), 'every answer known: no second lookup');
  assert.equal(v.size, 3, 'while the LRU keeps only its capacity');
  assert.equal(asked(), 1);
});

test('a failed lookup counts as volatile and is retried later; concurrent lookups share one fetch', async () => {
  const { v, clock, asked } = setup(10);
  await Promise.all([v.lookup(['h', 'k']), v.lookup(['h']), v.lookup(['k', 'h'])]);
  assert.equal(asked(), 1);
  await v.lookup(['h']);
  assert.equal(asked(), 1, 'answered from the cache');
  clock.t += 11_000;
  assert.equal(v.get('h'), undefined, 'a failure is not cached for good');
  await v.lookup(['h']);
  assert.equal(asked(), 2);
  v.clear();
  assert.equal(v.get('h'), undefined, 'clear() forgets');
});
