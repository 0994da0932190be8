/**
 * LruCache (src/util/lru-cache.ts): least recently used keys go first; a hit on the most recently
 * used key changes nothing in the map (no delete and set: in a map of one or two keys each pair
 * shrank and regrew V8's hash table, at every login of a per-request client).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LruCache } from '../../../src/util/lru-cache';

test('evicts the least recently used key; a hit makes a key the most recent', () => {
  const c = new LruCache<number>(3);
  c.set('a', 1);
  c.set('b', 2);
  c.set('c', 3);
  assert.equal(c.get('a'), 1); // a is now the most recent: b is the oldest
  c.set('d', 4);
  assert.equal(c.get('b'), undefined);
  assert.equal(c.get('c'), 3);
  c.set('e', 5); // a is the oldest now (order: a, d, c)
  assert.equal(c.get('a'), undefined);
  assert.deepEqual([c.get('d'), c.get('c'), c.get('e')], [4, 3, 5]);
  c.delete('e');
  assert.equal(c.get('e'), undefined);
  c.set('f', 6);
  c.set('g', 7); // d, c, f, g beyond 3: d goes
  assert.equal(c.get('d'), undefined);
  assert.equal(c.size, 3);
  c.clear();
  assert.equal(c.size, 0);
  assert.equal(c.get('g'), undefined);
});

test('a hit on the most recent key neither deletes nor re-inserts it', () => {
  const c = new LruCache<string>(10);
  c.set('greeting', 'x');
  const map = (c as unknown as { map: Map<string, string> }).map;
  let writes = 0;
  const del = map.delete.bind(map);
  const set = map.set.bind(map);
  map.delete = (k) => { writes++; return del(k); };
  map.set = (k, v) => { writes++; return set(k, v); };
  for (let i = 0; i < 100; i++) assert.equal(c.get('greeting'), 'x');
  assert.equal(writes, 0, 'map writes for 100 hits on the most recent key');
  c.set('other', 'y');
  writes = 0;
  assert.equal(c.get('greeting'), 'x');
  assert.equal(writes, 2, 'a hit on an older key moves it (a delete and a set)');
  assert.equal(c.get('greeting'), 'x');
  assert.equal(writes, 2);
  // After a delete of the most recent key, a new one of the same name is found and moved as usual.
  c.delete('greeting');
  c.set('greeting', 'z');
  c.set('third', 't');
  writes = 0;
  assert.equal(c.get('greeting'), 'z');
  assert.equal(writes, 2);
});
