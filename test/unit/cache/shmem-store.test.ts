/** The shmem store: bounded by bytes and by entries, least recently used evicted first, expiry. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ENTRY_OVERHEAD, ShmemStore } from '../../../src/cache/shmem-store';

test('stays within memqcache_total_size, evicting the least recently used', () => {
  const size = (100 + 2 + ENTRY_OVERHEAD) * 3;
  const s = new ShmemStore(size, 100, 0);
  for (const k of ['k1', 'k2', 'k3']) assert.ok(s.set(k, Buffer.alloc(100)));
  assert.ok(s.get('k1') !== undefined); // k2 is now the least recently used
  assert.ok(s.set('k4', Buffer.alloc(100)));
  assert.equal(s.get('k2'), undefined);
  assert.ok(s.get('k1') !== undefined && s.get('k3') !== undefined && s.get('k4') !== undefined);
  assert.ok(s.usedBytes <= size);
  assert.equal(s.evictions, 1);
  assert.equal(s.set('big', Buffer.alloc(size)), false, 'larger than the whole cache: refused');
});

test('memqcache_max_num_cache bounds the entries', () => {
  const s = new ShmemStore(1 << 20, 2, 0);
  s.set('a', Buffer.from('1'));
  s.set('b', Buffer.from('2'));
  s.set('c', Buffer.from('3'));
  assert.equal(s.entries, 2);
  assert.equal(s.get('a'), undefined);
});

test('memqcache_expire: an entry is gone after its time', () => {
  let now = 1000;
  const s = new ShmemStore(1 << 20, 10, 5, () => now);
  s.set('a', Buffer.from('x'));
  now += 4000;
  assert.ok(s.get('a') !== undefined);
  now += 2000;
  assert.equal(s.get('a'), undefined);
  assert.equal(s.usedBytes, 0);
});

test('second chance: with every entry read, an eviction still ends and takes the oldest', () => {
  const size = (100 + 2 + ENTRY_OVERHEAD) * 3;
  const s = new ShmemStore(size, 100, 0);
  for (const k of ['k1', 'k2', 'k3']) assert.ok(s.set(k, Buffer.alloc(100)));
  for (const k of ['k1', 'k2', 'k3']) assert.ok(s.get(k) !== undefined);
  assert.ok(s.set('k4', Buffer.alloc(100)));
  assert.equal(s.entries, 3);
  assert.equal(s.evictions, 1);
  assert.equal(s.get('k1'), undefined);
  assert.ok(s.get('k2') !== undefined && s.get('k3') !== undefined && s.get('k4') !== undefined);
});
