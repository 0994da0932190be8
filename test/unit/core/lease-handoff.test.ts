/**
 * Transaction pooling, more clients than connections: the connection one session gives back goes
 * straight to the session waiting for it (NodePool.waitInLine), which sends its parked request on
 * it inside that give-back, planned once (issue 17, item 9). Cores share the real NodePool through
 * host glue that does what frontend/session.ts does (leaseNow → tryLease, leaseLater →
 * waitInLine, closeLink → giveBack; a lease that comes to a closed session is given back).
 */
import { test } from 'node:test';
import type { ShapeHint } from '../../../src/classify';
import assert from 'node:assert/strict';
import { FakeConn, makeCore, type CoreFixture } from './core-harness';
import { encodeQuery } from '../../../src/protocol/frontend';
import { encodeReadyForQuery } from '../../../src/protocol/backend';
import { TxStatus } from '../../../src/protocol/codes';
import { LinkRefused } from '../../../src/core/core-host';
import { LeaseTimeout, NodePool, type LeaseLimit, type Poolable } from '../../../src/pool/node-pool';

function frame(code: string, body: Buffer): Buffer {
  const b = Buffer.alloc(5 + body.length);
  b[0] = code.charCodeAt(0);
  b.writeUInt32BE(4 + body.length, 1);
  body.copy(b, 5);
  return b;
}

const ROWS = Buffer.concat([
  frame('T', Buffer.from([0, 1, 0x61, 0, 0, 0, 0, 0x40, 0, 3, 0, 0, 0, 0x17, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0])),
  frame('D', Buffer.from([0, 1, 0, 0, 0, 1, 0x30])), frame('C', Buffer.from('SELECT 1\0')),
]);
const IDLE = encodeReadyForQuery(TxStatus.Idle);

/** A recorded backend connection the pool can hold. */
class PoolConn extends FakeConn implements Poolable {
  readonly key = 'u/d';
  readonly createdAt = Date.now();
  lastUsedAt = 0;
  useCount = 0;
  usable = true;
  destroy(): void {
    this.usable = false;
  }
}

interface Client {
  readonly f: CoreFixture;
  /** The session ended (frontend/session.ts phase 'closed'). */
  closed: boolean;
  /** SQL texts its classifier was asked about. */
  readonly classified: string[];
}

let pid = 5000;

/** `n` transaction-pooling sessions on one pool of `size` connections (every read on the primary). */
async function clients(n: number, size: number, waitMs = 10_000): Promise<{ pool: NodePool<PoolConn>; cs: Client[] }> {
  const pool = new NodePool<PoolConn>(0, { capacity: 100, idleTimeoutSec: 0, maxUses: 0, connectionCache: true, reset: async () => true });
  const limit: LeaseLimit = { size, reserve: 0, reserveAfterMs: 0 };
  const create = async (): Promise<PoolConn> => new PoolConn(0, ++pid);
  const cs: Client[] = [];
  for (let i = 0; i < n; i++) {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false });
    f.core.identityNode = 0;
    const c: Client = { f, closed: false, classified: [] };
    const classifier = f.host.classifier;
    (f.host as { classifier: typeof classifier }).classifier = Object.assign(Object.create(classifier) as typeof classifier, {
      classify: (sql: string) => {
        c.classified.push(sql);
        return classifier.classify(sql);
      },
      classifyLike: (sql: string, hint: ShapeHint) => {
        c.classified.push(sql);
        return classifier.classifyLike!(sql, hint);
      },
    });
    f.host.leaseNow = (node) => {
      const conn = pool.tryLease('u/d');
      if (conn !== null) f.conns.set(node, conn);
      return conn;
    };
    f.host.leaseLater = (node, done) => {
      pool.waitInLine('u/d', create, limit, waitMs, (conn, err) => {
        if (conn === null) {
          done(null, err instanceof LeaseTimeout ? new LinkRefused('53300', 'query_wait_timeout: no backend connection became free') : null);
          return;
        }
        if (c.closed) {
          pool.giveBack(conn, true);
          done(null, null);
          return;
        }
        f.conns.set(node, conn);
        done(conn, null);
      });
    };
    f.host.closeLink = (conn, reusable, why, reset = false) => {
      f.host.closed.push({ node: conn.nodeId, reusable, why, reset });
      pool.giveBack(conn as PoolConn, reusable, why, limit, reset);
    };
    cs.push(c);
  }
  return { pool, cs };
}

/** Client `c` ends its session while it waits (a FATAL, a shutdown): frontend/session.ts close(). */
function closeSession(c: Client): void {
  c.closed = true;
  c.f.core.close();
}

test('a connection given back goes straight to the waiting session, which sends its parked request inside that give-back, planned once, in FIFO order', async () => {
  const { pool, cs } = await clients(3, 1);
  const [a, b, c] = cs as [Client, Client, Client];
  a.f.send(encodeQuery('BEGIN; SELECT 1;'));
  await a.f.settle(); // (the pool's first connection is opened for A)
  const shared = a.f.conns.get(0) as PoolConn;
  assert.ok(shared.take().includes(Buffer.from('BEGIN')));
  b.f.send(encodeQuery('SELECT 42'));
  c.f.send(encodeQuery('SELECT 43'));
  await b.f.settle();
  assert.equal(pool.counts().waiting, 2, 'B and C wait for the one connection');
  assert.equal(shared.written.length, 0);

  // A's transaction is open: leaseFate keeps the connection with A.
  a.f.answer(0, Buffer.concat([frame('C', Buffer.from('BEGIN\0')), ROWS, encodeReadyForQuery(TxStatus.InTransaction)]));
  assert.equal(shared.written.length, 0, 'not given back inside a transaction');
  assert.equal(pool.counts().waiting, 2);
  a.f.send(encodeQuery('COMMIT'));
  assert.ok(shared.take().includes(Buffer.from('COMMIT')));
  // The COMMIT's answer ends A's lease: inside this very call, B has the connection and its
  // request is on it (no microtask, no second turn).
  a.f.answer(0, Buffer.concat([frame('C', Buffer.from('COMMIT\0')), IDLE]));
  const sent = shared.take();
  assert.ok(sent.includes(Buffer.from('SELECT 42')), 'B\'s request went out inside A\'s give-back');
  assert.ok(!sent.includes(Buffer.from('SELECT 43')), 'C waits behind B');
  assert.equal(b.f.conns.get(0), shared);
  assert.deepEqual(b.classified, ['SELECT 42'], 'read and planned once, when it had to wait');
  assert.equal(pool.counts().waiting, 1);
  assert.ok(a.f.received().includes(Buffer.from('COMMIT')));

  b.f.answer(0, Buffer.concat([ROWS, IDLE]));
  assert.ok(b.f.received().includes(ROWS), 'B got its answer');
  assert.ok(shared.take().includes(Buffer.from('SELECT 43')), 'then C, inside B\'s give-back');
  assert.deepEqual(c.classified, ['SELECT 43']);
  c.f.answer(0, Buffer.concat([ROWS, IDLE]));
  assert.ok(c.f.received().includes(ROWS));
  assert.deepEqual(pool.counts(), { idle: 1, active: 0, resetting: 0, connecting: 0, total: 1, waiting: 0 });
  assert.equal(pool.waitedLeases, 2);
  pool.shutdown();
});

test('a session that ends while it waits: the connection goes on to the next waiter (a microtask later), none is held', async () => {
  const { pool, cs } = await clients(3, 1);
  const [a, b, c] = cs as [Client, Client, Client];
  a.f.send(encodeQuery('SELECT 1'));
  await a.f.settle();
  const shared = a.f.conns.get(0) as PoolConn;
  shared.take();
  b.f.send(encodeQuery('SELECT 42'));
  c.f.send(encodeQuery('SELECT 43'));
  await b.f.settle();
  closeSession(b);
  a.f.answer(0, Buffer.concat([ROWS, IDLE]));
  assert.equal(shared.written.length, 0, 'B is gone: nothing of B\'s is sent; C is not run inside B\'s give-back');
  await c.f.settle();
  const sent = shared.take();
  assert.ok(sent.includes(Buffer.from('SELECT 43')), 'C has the connection');
  assert.ok(!sent.includes(Buffer.from('SELECT 42')));
  c.f.answer(0, Buffer.concat([ROWS, IDLE]));
  assert.deepEqual(pool.counts(), { idle: 1, active: 0, resetting: 0, connecting: 0, total: 1, waiting: 0 });
  pool.shutdown();
});

test('a client that leaves while its whole request waits: the request still runs when the lease comes (as PostgreSQL runs what it read before the EOF), then the session ends and the next waiter is served', async () => {
  const { pool, cs } = await clients(3, 1);
  const [a, b, c] = cs as [Client, Client, Client];
  a.f.send(encodeQuery('SELECT 1'));
  await a.f.settle();
  const shared = a.f.conns.get(0) as PoolConn;
  shared.take();
  // (A write: what it leaves at commit is the client's, so the session waits for its answer;
  // a read in flight would be cancelled at once, SessionCore.leave.)
  b.f.send(encodeQuery('UPDATE t SET x = 42'));
  c.f.send(encodeQuery('SELECT 43'));
  await b.f.settle();
  let left = false;
  assert.equal(b.f.core.leave(() => { left = true; closeSession(b); }), true, 'B\'s request is still to run');
  a.f.answer(0, Buffer.concat([ROWS, IDLE]));
  assert.ok(shared.take().includes(Buffer.from('UPDATE t SET x = 42')), 'B\'s request runs on the connection A gave back');
  assert.equal(left, false);
  b.f.answer(0, Buffer.concat([frame('C', Buffer.from('UPDATE 1\0')), IDLE]));
  assert.equal(left, true, 'answered: B\'s session ends');
  assert.ok(shared.take().includes(Buffer.from('SELECT 43')), 'C is served');
  c.f.answer(0, Buffer.concat([ROWS, IDLE]));
  assert.deepEqual(pool.counts(), { idle: 1, active: 0, resetting: 0, connecting: 0, total: 1, waiting: 0 });
  pool.shutdown();
});

test('query_wait_timeout: the waiting client gets 53300 and keeps its session; the connection given back later idles, the next request leases it', async () => {
  const { pool, cs } = await clients(2, 1, 30);
  const [a, b] = cs as [Client, Client];
  a.f.send(encodeQuery('BEGIN; SELECT 1;'));
  await a.f.settle();
  const shared = a.f.conns.get(0) as PoolConn;
  a.f.answer(0, Buffer.concat([frame('C', Buffer.from('BEGIN\0')), ROWS, encodeReadyForQuery(TxStatus.InTransaction)]));
  shared.take();
  b.f.send(encodeQuery('SELECT 42'));
  await new Promise((r) => setTimeout(r, 80));
  await b.f.settle();
  const got = b.f.received();
  assert.ok(got.includes(Buffer.from('53300')), 'B\'s request failed with 53300');
  assert.equal(got[got.length - 6], 0x5a, 'then ReadyForQuery');
  assert.equal(pool.counts().waiting, 0);
  a.f.send(encodeQuery('COMMIT'));
  a.f.answer(0, Buffer.concat([frame('C', Buffer.from('COMMIT\0')), IDLE]));
  assert.ok(!shared.take().includes(Buffer.from('SELECT 42')), 'the timed-out request is not sent');
  assert.equal(pool.counts().idle, 1);
  b.f.send(encodeQuery('SELECT 7'));
  assert.ok(shared.take().includes(Buffer.from('SELECT 7')), 'B\'s next request leases the idle connection at once');
  b.f.answer(0, Buffer.concat([ROWS, IDLE]));
  assert.deepEqual(pool.counts(), { idle: 1, active: 0, resetting: 0, connecting: 0, total: 1, waiting: 0 });
  pool.shutdown();
});
