/** client_connection_rate_limit bookkeeping: sliding window per address, others unaffected, bounded memory. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionRateLimiter } from '../../../src/frontend/conn-rate-limit';

test('limit per address within the window; other addresses and Unix sockets unaffected; the window slides', () => {
  let now = 1_000_000;
  const lim = new ConnectionRateLimiter(() => ({ client_connection_rate_limit: 3, client_connection_rate_window: 10 }), () => now);
  assert.deepEqual([0, 1, 2].map(() => lim.admit('10.0.0.1')), [0, 0, 0]);
  assert.equal(lim.admit('10.0.0.1'), 10);
  assert.equal(lim.admit('10.0.0.2'), 0);
  assert.equal(lim.admit(''), 0);
  now += 5_000;
  assert.equal(lim.admit('10.0.0.1'), 5, 'refused attempts do not count');
  now += 5_001;
  assert.equal(lim.admit('10.0.0.1'), 0, 'the first connections aged out');
});

test('0 disables the limit', () => {
  const lim = new ConnectionRateLimiter(() => ({ client_connection_rate_limit: 0, client_connection_rate_window: 10 }));
  for (let i = 0; i < 100; i++) assert.equal(lim.admit('10.0.0.1'), 0);
  assert.equal(lim.tracked, 0);
});
