/**
 * A client's CancelRequest through the core (issue 17, F26): it reaches only the statement the
 * client was running, never its next one nor another client's on a shared connection.
 * PostgreSQL's rule, as a direct connection sees it: a cancel that arrives while a statement runs
 * cancels it; one that arrives while the backend is idle is dropped; libpq's PQcancel returns
 * once the server acted on it (closed the cancel connection).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeCore, FakeConn, type CoreFixture } from './core-harness';
import { cstr, i16, i32, msg, u8 } from '../../fixtures/bytes';
import type { BackendPort } from '../../../src/core/ports';
import { LinkRefused } from '../../../src/core/core-host';
import { LeaseTimeout, NodePool, type LeaseLimit, type Poolable } from '../../../src/pool/node-pool';

const Q = (sql: string): Buffer => msg('Q', cstr(sql));
const Z = (s = 'I'): Buffer => msg('Z', u8(s));
const C = (tag: string): Buffer => msg('C', cstr(tag));
const rows = (s = 'I'): Buffer => Buffer.concat([msg('T', i16(0)), C('SELECT 1'), Z(s)]);

/** The messages of a backend→client stream, one word each: 'E 57014', 'Z I', 'C SELECT 1', 'T'. */
function words(b: Buffer): string[] {
  const out: string[] = [];
  for (let p = 0; p + 5 <= b.length;) {
    const code = String.fromCharCode(b[p]!);
    const end = p + 1 + b.readUInt32BE(p + 1);
    const body = b.subarray(p + 5, end);
    if (code === 'Z') out.push(`Z ${String.fromCharCode(body[0]!)}`);
    else if (code === 'C') out.push(`C ${body.toString('utf8', 0, body.length - 1)}`);
    else if (code === 'E') {
      const fields = new Map<string, string>();
      for (let q = 0; body[q] !== 0 && q < body.length;) {
        const z = body.indexOf(0, q + 1);
        fields.set(String.fromCharCode(body[q]!), body.toString('utf8', q + 1, z));
        q = z + 1;
      }
      out.push(`E ${fields.get('C')}${fields.get('C') === '57014' ? ` ${fields.get('M')}` : ''}`);
    } else out.push(code);
    p = end;
  }
  return out;
}
const CANCELLED = 'E 57014 canceling statement due to user request';

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}

describe('cancel (F26)', () => {
  test('a cancel still on its way holds the client\'s next statement (and the connection) until the server took it', async () => {
    const taken = deferred();
    const idle: FakeConn[] = [];
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false, idle, cancelTaken: taken.promise });
    const conn = new FakeConn(0, 501);
    idle.push(conn);
    f.send(Q('SELECT pg_sleep(20)'));
    await f.settle();
    assert.match(conn.take().toString('latin1'), /pg_sleep/);
    f.core.cancel();
    assert.deepEqual(f.host.cancels, ['0:501']);
    // The statement ended before the cancel reached the server (it is then dropped: idle backend).
    f.answer(0, rows());
    assert.match(f.received().toString('latin1'), /SELECT 1/);
    assert.deepEqual(idle, [], 'not given back to another client while the cancel is on its way');
    f.send(Q('COPY t FROM STDIN'));
    await f.settle();
    assert.equal(conn.take().length, 0, 'the next statement waits: the cancel must not land on it');
    taken.resolve();
    await f.settle();
    assert.match(conn.take().toString('latin1'), /COPY t FROM STDIN/, 'sent once the server took the cancel');
    assert.deepEqual(f.host.cancels, ['0:501'], 'one cancel only');
  });

  test('a second cancel while the first is on its way is not forwarded again', async () => {
    const taken = deferred();
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', cancelTaken: taken.promise });
    f.send(Q('SELECT pg_sleep(20)'));
    f.core.cancel();
    f.core.cancel();
    assert.equal(f.host.cancels.length, 1);
    taken.resolve();
    await f.settle();
  });

  test('a cancel for a statement still waiting for its connection cancels it here: 57014, never sent, nothing forwarded', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false });
    const lease = deferred<BackendPort | null>();
    f.host.openLink = () => lease.promise;
    f.send(Q('SELECT pg_sleep(20)'));
    await f.settle();
    f.core.cancel();
    assert.deepEqual(f.host.cancels, [], 'nothing runs at a server: nothing to forward');
    assert.deepEqual(words(f.received()), [CANCELLED, 'Z I']);
    const conn = new FakeConn(0, 777);
    f.conns.set(0, conn);
    lease.resolve(conn);
    await f.settle();
    assert.equal(conn.take().length, 0, 'the cancelled statement never reaches the server');
    assert.deepEqual(f.host.closed.map((c) => c.reusable), [true], 'the lease that came goes back clean');
    // The next statement is not cancelled.
    f.send(Q('SELECT 2'));
    await f.settle();
    assert.match(conn.take().toString('latin1'), /SELECT 2/);
    assert.deepEqual(f.host.cancels, []);
  });

  test('a cancel with nothing running nor waiting is dropped (not kept for the next statement)', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction' });
    f.core.cancel();
    f.send(Q('SELECT 1'));
    await f.settle();
    assert.match(f.conns.get(0)!.take().toString('latin1'), /SELECT 1/);
    assert.deepEqual(f.host.cancels, []);
  });
});

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

let poolPid = 9000;

/**
 * Sessions sharing one real NodePool of `size` connections (default_pool_size), through host glue
 * that does what frontend/session.ts does (leaseNow → tryLease, leaseLater → waitInLine,
 * closeLink → giveBack).
 */
async function sharing(n: number, size: number, o: { pooling?: 'transaction' | 'session'; weights?: number[]; waitMs?: number } = {}): Promise<{ pool: NodePool<PoolConn>; fs: CoreFixture[] }> {
  const pool = new NodePool<PoolConn>(0, { capacity: 100, idleTimeoutSec: 0, maxUses: 0, connectionCache: true, reset: async () => true });
  const limit: LeaseLimit = { size, reserve: 0, reserveAfterMs: 0 };
  const create = async (): Promise<PoolConn> => new PoolConn(0, ++poolPid);
  const fs: CoreFixture[] = [];
  for (let i = 0; i < n; i++) {
    const f = await makeCore({ weights: o.weights ?? [1, 0, 0], pooling: o.pooling ?? 'transaction', login: false });
    f.core.identityNode = 0;
    f.host.leaseNow = (node) => {
      const conn = pool.tryLease('u/d');
      if (conn !== null) f.conns.set(node, conn);
      return conn;
    };
    f.host.leaseLater = (node, done) => {
      pool.waitInLine('u/d', create, limit, o.waitMs ?? 10_000, (conn, err) => {
        if (conn === null) {
          done(null, err instanceof LeaseTimeout ? new LinkRefused('53300', 'query_wait_timeout') : null);
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
    fs.push(f);
  }
  return { pool, fs };
}

const P = (sql: string, name = ''): Buffer => msg('P', cstr(name), cstr(sql), i16(0));
const B = (stmt = ''): Buffer => msg('B', cstr(''), cstr(stmt), i16(0), i16(0), i16(0));
const E = (): Buffer => msg('E', cstr(''), i32(0));
const S = (): Buffer => msg('S');
const H = (): Buffer => msg('H');

describe('a cancel while the request waits for its lease (transaction pooling, default_pool_size = 1)', () => {
  /** A holds the one connection in a transaction; B's query waits for it. */
  async function aHolds(waitMs?: number): Promise<{ pool: NodePool<PoolConn>; a: CoreFixture; b: CoreFixture; shared: PoolConn }> {
    const { pool, fs } = await sharing(2, 1, waitMs === undefined ? {} : { waitMs });
    const [a, b] = fs as [CoreFixture, CoreFixture];
    a.send(Q('BEGIN; SELECT 1;'));
    await a.settle();
    const shared = a.conns.get(0) as PoolConn;
    assert.match(shared.take().toString('latin1'), /BEGIN/);
    a.answer(0, Buffer.concat([C('BEGIN'), rows('T')]));
    assert.deepEqual(words(a.received()), ['C BEGIN', 'T', 'C SELECT 1', 'Z T']);
    return { pool, a, b, shared };
  }

  /** A commits: its connection goes on to B. */
  function aCommits(a: CoreFixture, shared: PoolConn): void {
    a.send(Q('COMMIT'));
    assert.match(shared.take().toString('latin1'), /COMMIT/);
    a.answer(0, Buffer.concat([C('COMMIT'), Z('I')]));
    assert.deepEqual(words(a.received()), ['C COMMIT', 'Z I']);
  }

  test('B is cancelled: 57014 + ReadyForQuery at once, nothing forwarded nor sent; A unaffected; B\'s next query is served after A', async () => {
    const { pool, a, b, shared } = await aHolds();
    b.send(Q('SELECT 42'));
    await b.settle();
    assert.equal(pool.counts().waiting, 1, 'B waits for the one connection');
    assert.deepEqual(b.received().length, 0);
    b.core.cancel();
    assert.deepEqual(words(b.received()), [CANCELLED, 'Z I']);
    assert.deepEqual([...a.host.cancels, ...b.host.cancels], [], 'no CancelRequest reaches any server (it would hit A\'s transaction)');
    assert.equal(shared.written.length, 0);
    b.send(Q('SELECT 43'));
    await b.settle();
    assert.equal(shared.written.length, 0, 'B\'s next query waits for A as before');
    a.send(Q('SELECT 2'));
    assert.match(shared.take().toString('latin1'), /SELECT 2/, 'A goes on in its transaction');
    a.answer(0, rows('T'));
    assert.deepEqual(words(a.received()), ['T', 'C SELECT 1', 'Z T']);
    aCommits(a, shared);
    await b.settle();
    const sent = shared.take().toString('latin1');
    assert.match(sent, /SELECT 43/, 'B\'s next query runs once A is done');
    assert.doesNotMatch(sent, /SELECT 42/, 'the cancelled query never reaches a server');
    b.answer(0, rows());
    assert.deepEqual(words(b.received()), ['T', 'C SELECT 1', 'Z I']);
    assert.deepEqual(pool.counts(), { idle: 1, active: 0, resetting: 0, connecting: 0, total: 1, waiting: 0 });
    pool.shutdown();
  });

  test('cancelled again while the first cancelled request\'s lease is still awaited: each waiting query is cancelled', async () => {
    const { pool, a, b, shared } = await aHolds();
    b.send(Q('SELECT 42'));
    await b.settle();
    b.core.cancel();
    assert.deepEqual(words(b.received()), [CANCELLED, 'Z I']);
    b.send(Q('SELECT 43'));
    await b.settle();
    b.core.cancel();
    assert.deepEqual(words(b.received()), [CANCELLED, 'Z I'], 'the second one too (it waits behind the first one\'s lease)');
    b.send(Q('SELECT 44'));
    aCommits(a, shared);
    await b.settle();
    const sent = shared.take().toString('latin1');
    assert.match(sent, /SELECT 44/);
    assert.doesNotMatch(sent, /SELECT 4[23]/);
    pool.shutdown();
  });

  test('the queue does not wait for a cancelled request\'s lease: a BEGIN is answered at once; the next query adopts the wait', async () => {
    const { pool, a, b, shared } = await aHolds();
    b.send(Q('SELECT 42'));
    await b.settle();
    b.core.cancel();
    assert.deepEqual(words(b.received()), [CANCELLED, 'Z I']);
    b.send(Q('BEGIN'));
    assert.deepEqual(words(b.received()), ['C BEGIN', 'Z T'], 'answered at once (a BEGIN needs no connection here)');
    b.send(Q('SELECT 43'));
    await b.settle();
    assert.equal(pool.counts().waiting, 1, 'one wait: the cancelled one\'s, adopted');
    aCommits(a, shared);
    await b.settle();
    const sent = shared.take().toString('latin1');
    assert.match(sent, /BEGIN.*SELECT 43/s);
    assert.doesNotMatch(sent, /SELECT 42/);
    b.answer(0, Buffer.concat([C('BEGIN'), Z('T'), rows('T')]));
    assert.deepEqual(words(b.received()), ['T', 'C SELECT 1', 'Z T']);
    pool.shutdown();
  });

  test('a cancelled request\'s lease refused later (query_wait_timeout) is nobody\'s error; a lease that comes unused goes back', async () => {
    const { pool, a, b, shared } = await aHolds(50);
    b.send(Q('SELECT 42'));
    await b.settle();
    b.core.cancel();
    assert.deepEqual(words(b.received()), [CANCELLED, 'Z I']);
    await new Promise((r) => setTimeout(r, 120));
    await b.settle();
    assert.equal(b.received().length, 0, 'no 53300 for the cancelled query');
    b.send(Q('SELECT 43'));
    await b.settle();
    b.core.cancel();
    assert.deepEqual(words(b.received()), [CANCELLED, 'Z I']);
    aCommits(a, shared);
    await b.settle();
    assert.equal(shared.take().length, 0, 'the lease B waited for came unused: back to the pool');
    assert.deepEqual(pool.counts(), { idle: 1, active: 0, resetting: 0, connecting: 0, total: 1, waiting: 0 });
    b.send(Q('SELECT 44'));
    await b.settle();
    assert.match(shared.take().toString('latin1'), /SELECT 44/);
    pool.shutdown();
  });

  test('an admin command\'s answer on its way: a cancel does not overtake it (dropped: nothing runs at a server)', async () => {
    const { pool, a, b, shared } = await aHolds();
    let answer!: (b: Buffer) => void;
    b.host.runAdmin = () => new Promise<Buffer>((r) => { answer = r; });
    b.send(Q('SHOW POOL_NODES'), Q('SELECT 42'));
    await b.settle();
    b.core.cancel();
    assert.equal(b.received().length, 0);
    answer(Buffer.concat([C('SHOW'), Z('I')]));
    await b.settle();
    assert.deepEqual(words(b.received()), ['C SHOW', 'Z I']);
    aCommits(a, shared);
    await b.settle();
    assert.match(shared.take().toString('latin1'), /SELECT 42/);
    pool.shutdown();
  });

  test('extended protocol: the cancelled request\'s error, then what follows up to Sync discarded and answered ReadyForQuery, with no server', async () => {
    const { pool, a, b, shared } = await aHolds();
    // A pipeline cut at Flush (its Execute waits for the lease), the rest of it, then a new one.
    b.send(Buffer.concat([P('SELECT 42'), B(), E(), H()]));
    await b.settle();
    b.core.cancel();
    assert.deepEqual(words(b.received()), [CANCELLED], 'no ReadyForQuery before the client\'s Sync');
    b.send(Buffer.concat([B(), E(), S()]));
    assert.deepEqual(words(b.received()), ['Z I'], 'skipped to Sync here, at once');
    b.send(Buffer.concat([P('SELECT 43'), B(), E(), S()]));
    await b.settle();
    assert.equal(b.received().length, 0);
    aCommits(a, shared);
    await b.settle();
    const sent = shared.take().toString('latin1');
    assert.match(sent, /SELECT 43/);
    assert.doesNotMatch(sent, /SELECT 42/);
    pool.shutdown();
  });

  test('a whole pipeline queued behind the cancelled part: discarded to its Sync; a Query inside it is discarded too (as PostgreSQL does)', async () => {
    const { pool, a, b, shared } = await aHolds();
    b.send(Buffer.concat([P('SELECT 42'), B(), E(), H(), Q('SELECT 44'), B(), E(), S(), Q('SELECT 45')]));
    await b.settle();
    b.core.cancel();
    assert.deepEqual(words(b.received()), [CANCELLED, 'Z I']);
    aCommits(a, shared);
    await b.settle();
    const sent = shared.take().toString('latin1');
    assert.match(sent, /SELECT 45/, 'what follows the Sync runs');
    assert.doesNotMatch(sent, /SELECT 4[24]/);
    pool.shutdown();
  });

  test('inside a transaction block (a BEGIN answered before any lease): the transaction is aborted, ReadyForQuery E; COMMIT rolls back', async () => {
    const { pool, a, b, shared } = await aHolds();
    b.send(Q('BEGIN'));
    assert.deepEqual(words(b.received()), ['C BEGIN', 'Z T']);
    b.send(Q('INSERT INTO t VALUES (1)'));
    await b.settle();
    b.core.cancel();
    assert.deepEqual(words(b.received()), [CANCELLED, 'Z E']);
    b.send(Q('SELECT 1'));
    b.send(Q('COMMIT'));
    aCommits(a, shared);
    await b.settle();
    // (Answered once the lease B still waited for came: requests are answered in order.)
    assert.deepEqual(words(b.received()), ['E 25P02', 'Z E', 'C ROLLBACK', 'Z I'], 'the aborted transaction refuses what follows; COMMIT rolls back');
    assert.equal(shared.take().length, 0, 'nothing of B\'s reached the server');
    assert.deepEqual(pool.counts(), { idle: 1, active: 0, resetting: 0, connecting: 0, total: 1, waiting: 0 });
    pool.shutdown();
  });

  test('a cancel after the request was sent is forwarded as before (and only to its own backend)', async () => {
    const { pool, a, b, shared } = await aHolds();
    b.send(Q('SELECT pg_sleep(10)'));
    await b.settle();
    aCommits(a, shared);
    await b.settle();
    assert.match(shared.take().toString('latin1'), /pg_sleep/);
    b.core.cancel();
    assert.deepEqual(b.host.cancels, [`0:${shared.backendPid}`]);
    assert.deepEqual(b.received().length, 0, 'the server answers it');
    await b.settle();
    pool.shutdown();
  });
});

describe('a cancel while the request waits for a connection (session pooling)', () => {
  test('a read waiting for its standby connection to open: 57014 at once, nothing forwarded; the read never reaches the standby, the next one does', async () => {
    const f = await makeCore({ weights: [0, 1, 0] });
    const primary = f.conns.get(0)!;
    const opening = deferred<BackendPort | null>();
    f.host.openLink = () => opening.promise;
    f.send(Q('SELECT 42'));
    await f.settle();
    assert.equal(f.received().length, 0, 'the read waits for node 1\'s connection');
    f.core.cancel();
    assert.deepEqual(f.host.cancels, []);
    assert.deepEqual(words(f.received()), [CANCELLED, 'Z I']);
    f.send(Q('SELECT 43'));
    const standby = new FakeConn(1, 31);
    f.conns.set(1, standby);
    opening.resolve(standby);
    await f.settle();
    const sent = standby.take().toString('latin1');
    assert.doesNotMatch(sent, /SELECT 42/, 'the cancelled read never reaches the standby');
    assert.match(sent, /SELECT 43/);
    assert.equal(primary.take().length, 0);
  });

  test('inside a transaction block, a statement waiting for a function\'s volatility lookup: 57014, and the transaction on the primary aborted as PostgreSQL\'s would be (ReadyForQuery E)', async () => {
    const f = await makeCore({ weights: [0, 1, 0] });
    const primary = f.conns.get(0)!;
    const looked = deferred();
    const vol = f.host.routing.volatility as { get: (fn: string) => 'v' | 's' | 'i' | undefined; lookup: (fns: readonly string[]) => Promise<void> };
    const get = vol.get;
    vol.get = (fn) => (fn.startsWith('lk_') ? undefined : get(fn));
    vol.lookup = () => looked.promise;
    f.send(Q('BEGIN'));
    assert.match(primary.take().toString('latin1'), /BEGIN/);
    f.answer(0, Buffer.concat([C('BEGIN'), Z('T')]));
    assert.deepEqual(words(f.received()), ['C BEGIN', 'Z T']);
    f.send(Q('SELECT lk_fn()'));
    await f.settle();
    assert.equal(primary.take().length, 0, 'waits for the lookup');
    f.core.cancel();
    assert.deepEqual(f.host.cancels, []);
    assert.match(primary.take().toString('latin1'), /RAISE EXCEPTION/, 'the primary\'s transaction is failed, as PostgreSQL\'s would be');
    f.answer(0, Buffer.concat([msg('E', u8('S'), cstr('ERROR'), u8('C'), cstr('P0001'), u8('M'), cstr('x'), u8(0)), Z('E')]));
    assert.deepEqual(words(f.received()), [CANCELLED, 'Z E']);
    looked.resolve();
    await f.settle();
    assert.equal(primary.take().length, 0, 'the cancelled statement is not sent once the lookup is done');
    f.send(Q('COMMIT'));
    assert.match(primary.take().toString('latin1'), /COMMIT/);
  });
});
