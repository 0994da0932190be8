/**
 * The query cache's memcached client (src/cache/memcached-meta.ts, memcached-store.ts) against a
 * real memcached (Debian's, started by the harness on a free loopback port):
 * - values of any bytes and sizes round-trip (a value with CR LF inside, one spread over many
 *   reads), a miss is a miss, an answer is served only under the generations it was stored with;
 * - thousands of pipelined lookups come back matched to their requests;
 * - generations: created once when missing (two racing creators agree), a bump makes an answer
 *   unreachable, names that are not valid text keys (a space, non-ASCII) work;
 * - memcached stopped: pending and new requests fail within a second (no hang), and the client
 *   reconnects by itself once it is back;
 * - a server that accepts and never answers: requests fail within a second;
 * - replies that arrive one byte at a time (a value with CR LF inside, a miss, stored, not
 *   stored, SERVER_ERROR) are put back together and matched to their batches.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { MemcachedStore } from '../../src/cache/memcached-store';
import { MetaClient, metaKey } from '../../src/cache/memcached-meta';
import { memcachedBinary, startMemcached, type TestMemcached } from '../harness/memcached';

const SKIP = memcachedBinary() === null ? 'memcached is not installed (Debian package memcached)' : false;

describe('memcached client (meta protocol)', { skip: SKIP, timeout: 120_000 }, () => {
  let mc: TestMemcached;
  let store: MemcachedStore;

  before(async () => {
    mc = await startMemcached();
    store = new MemcachedStore('127.0.0.1', mc.port, 0);
  });
  after(async () => {
    store?.close();
    await mc?.stop();
  });

  test('a miss, then the stored answer under the same generations, and none once one moved on', async () => {
    const names = ['*', 'd:db1', 't:db1:1234'];
    const first = await store.lookup('k1', names);
    assert.equal(first.value, undefined);
    assert.equal(first.gens.split(',').length, 3);
    const answer = Buffer.from('T\0\0\0\x05ab\r\ncd\r\n\0END\r\n', 'latin1');
    await store.set('k1', first.gens, answer);
    const second = await store.lookup('k1', names);
    assert.equal(second.gens, first.gens);
    assert.deepEqual(second.value, answer);
    await store.bump(['t:db1:1234']);
    const third = await store.lookup('k1', names);
    assert.notEqual(third.gens, first.gens);
    assert.equal(third.value, undefined, 'an answer stored under an old generation is never served');
    await store.delete('k1');
  });

  test('a value spread over many reads', async () => {
    const big = Buffer.alloc(700_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    const { gens } = await store.lookup('big', ['*']);
    await store.set('big', gens, big);
    const got = await store.lookup('big', ['*']);
    assert.ok(got.value !== undefined && got.value.equals(big));
  });

  test('thousands of pipelined lookups are each matched to their own reply', async () => {
    const names = ['*', 'd:db2'];
    const { gens } = await store.lookup('x', names);
    await Promise.all(Array.from({ length: 200 }, (_, i) => store.set(`p${i}`, gens, Buffer.from(`answer ${i}`))));
    const got = await Promise.all(Array.from({ length: 4000 }, (_, i) => store.lookup(`p${i % 250}`, names)));
    got.forEach((r, i) => {
      const k = i % 250;
      if (k < 200) assert.equal(r.value?.toString(), `answer ${k}`);
      else assert.equal(r.value, undefined);
    });
  });

  test('a missing generation is created once: racing creators agree', async () => {
    const other = new MemcachedStore('127.0.0.1', mc.port, 0);
    try {
      const [a, b] = await Promise.all([store.gens(['d:race']), other.gens(['d:race'])]);
      assert.deepEqual(a, b);
      assert.deepEqual(await store.gens(['d:race']), a);
    } finally {
      other.close();
    }
  });

  test('names that are not valid text keys', async () => {
    assert.equal(metaKey('pgmq:g:', 'd:plain'), 'pgmq:g:d:plain');
    assert.match(metaKey('pgmq:g:', 'd:my db'), /^pgmq:g:h:[0-9a-f]{40}$/);
    assert.match(metaKey('pgmq:g:', `d:${'é'.repeat(10)}`), /^pgmq:g:h:[0-9a-f]{40}$/);
    assert.match(metaKey('pgmq:g:', `d:${'x'.repeat(300)}`), /^pgmq:g:h:[0-9a-f]{40}$/);
    const names = ['*', 'd:my db', 't:my db:42'];
    const { gens } = await store.lookup('spaced', names);
    await store.set('spaced', gens, Buffer.from('ok'));
    assert.equal((await store.lookup('spaced', names)).value?.toString(), 'ok');
    await store.bump(['d:my db']);
    assert.equal((await store.lookup('spaced', names)).value, undefined);
  });

  test('memcached stopped: requests fail fast; restarted: the client reconnects', async () => {
    await store.lookup('r', ['*']);
    await mc.stop();
    const t0 = Date.now();
    await assert.rejects(store.lookup('r', ['*']));
    await assert.rejects(store.bump(['*']));
    assert.ok(Date.now() - t0 < 2000, `failed within 2 s (${Date.now() - t0} ms)`);
    await mc.restart();
    let ok = false;
    for (let i = 0; i < 50 && !ok; i++) {
      ok = await store.lookup('r', ['*']).then(() => true, () => false);
      if (!ok) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(ok, 'lookups work again after the restart');
    const { gens } = await store.lookup('r', ['*']);
    await store.set('r', gens, Buffer.from('again'));
    assert.equal((await store.lookup('r', ['*'])).value?.toString(), 'again');
  });

  test('a server that accepts and never answers: requests fail within a second', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => { sockets.push(s); s.resume(); });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const client = new MetaClient('127.0.0.1', (silent.address() as net.AddressInfo).port);
    try {
      const t0 = Date.now();
      await assert.rejects(client.request('mg a v\r\n', 1), /did not answer/);
      const ms = Date.now() - t0;
      assert.ok(ms < 1500, `failed after ${ms} ms`);
      assert.equal(client.outstanding, 0);
    } finally {
      client.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  test('replies split at every byte are put back together', async () => {
    const reply = Buffer.from('VA 5 f0\r\na\r\nbc\r\nEN\r\nHD\r\nNS\r\nSERVER_ERROR out of memory\r\n', 'latin1');
    const sockets: net.Socket[] = [];
    const dribbler = net.createServer((s) => {
      sockets.push(s);
      s.setNoDelay(true);
      s.once('data', async () => {
        for (const b of reply) {
          s.write(Buffer.from([b]));
          await new Promise((r) => setTimeout(r, 1));
        }
      });
    });
    await new Promise<void>((r) => dribbler.listen(0, '127.0.0.1', r));
    const client = new MetaClient('127.0.0.1', (dribbler.address() as net.AddressInfo).port);
    try {
      const [a, b] = await Promise.all([client.request('mg a v\r\nmg b v\r\n', 2), client.request('md c\r\nmd d\r\nmd e\r\n', 3)]);
      assert.equal((a![0] as Buffer).toString('latin1'), 'a\r\nbc');
      assert.equal(a![1], null);
      assert.equal(b![0], true);
      assert.equal(b![1], false);
      assert.match(String(b![2]), /SERVER_ERROR out of memory/);
    } finally {
      client.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => dribbler.close(r));
    }
  });

  test('a closed client fails at once', async () => {
    const client = new MetaClient('127.0.0.1', mc.port);
    client.close();
    await assert.rejects(client.request('mg a v\r\n', 1), /closed/);
  });
});
