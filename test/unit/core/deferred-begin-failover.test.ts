/**
 * Transaction pooling: a BEGIN answered here (deferred) whose transaction cannot start because
 * there is no primary (detached during a failover) or the primary's connection just failed.
 * Before the fix, deferredStep opened a link to node -1 (or to the failed primary) again and again:
 * with no primary the open settled at once, so the session looped in microtasks and starved the
 * whole process (found under 16 node-postgres clients with the primary stopped: pgmaitre froze).
 * Now the request gets 57P03 and the transaction is aborted, as PostgreSQL leaves it after an
 * error: 25P02 until ROLLBACK/COMMIT, which end it here.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeCore, FakeConn, type CoreFixture } from './core-harness';
import { cstr, i16, i32, msg, u8 } from '../../fixtures/bytes';
import { NodeStatus } from '../../../src/cluster/cluster';
import type { BackendPort } from '../../../src/core/ports';

const Q = (sql: string): Buffer => msg('Q', cstr(sql));
const Z = (s = 'I'): Buffer => msg('Z', u8(s));
const C = (tag: string): Buffer => msg('C', cstr(tag));
const hex = (...b: Buffer[]): string => Buffer.concat(b).toString('hex');

/** The SQLSTATEs of the ErrorResponses in `b`, and the ReadyForQuery statuses, in order. */
function codes(b: Buffer): string[] {
  const out: string[] = [];
  for (let i = 0; i < b.length;) {
    const t = String.fromCharCode(b[i]!);
    const len = b.readInt32BE(i + 1);
    const body = b.subarray(i + 5, i + 1 + len);
    if (t === 'E') out.push(/C([0-9A-Z]{5})\0/.exec(body.toString('latin1'))![1]!);
    else if (t === 'Z') out.push(`Z${String.fromCharCode(body[0]!)}`);
    else if (t === 'C') out.push(body.toString('latin1', 0, body.length - 1));
    i += 1 + len;
  }
  return out;
}

/** The real openLink gives null for a node that does not exist or cannot be logged in to; counts calls (a loop is a failure, not a hang). */
function failingOpens(f: CoreFixture): { calls: number } {
  const seen = { calls: 0 };
  (f.host as { openLink: (node: number) => Promise<BackendPort | null> }).openLink = async () => {
    if (++seen.calls > 20) throw new Error('openLink called in a loop');
    return null;
  };
  return seen;
}

describe('transaction pooling: a deferred BEGIN with no primary', () => {
  test('the primary detached: the first statement gets 57P03, then 25P02 until ROLLBACK; no loop', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false, idle: [] });
    const opens = failingOpens(f);
    f.send(Q('BEGIN'));
    assert.equal(hex(f.received()), hex(C('BEGIN'), Z('T')));
    f.cluster.setStatus(0, NodeStatus.Down, 'test: primary stopped');
    assert.equal(f.cluster.primaryId(), -1);
    f.send(Q('INSERT INTO t VALUES (1)'));
    await f.settle();
    assert.equal(f.host.ended, null, 'the session goes on');
    assert.deepEqual(codes(f.received()), ['57P03', 'ZE']);
    f.send(Q('SELECT 1'));
    await f.settle();
    assert.deepEqual(codes(f.received()), ['25P02', 'ZE']);
    f.send(Q('COMMIT'));
    assert.deepEqual(codes(f.received()), ['ROLLBACK', 'ZI'], 'COMMIT of an aborted transaction rolls back');
    assert.equal(opens.calls, 0, 'no open of node -1');
    // Outside a transaction the session is as before the failover: a write gets 57P03 and stays idle.
    f.send(Q('INSERT INTO t VALUES (2)'));
    await f.settle();
    assert.deepEqual(codes(f.received()), ['57P03', 'ZI']);
  });

  test('the primary\'s connection fails (not detached yet): one attempt, then 57P03; served again once it is back', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false, idle: [] });
    const opens = failingOpens(f);
    f.send(Q('BEGIN'));
    f.received();
    f.send(Q('INSERT INTO t VALUES (1)'));
    await f.settle();
    assert.equal(opens.calls, 1, 'one connection attempt');
    assert.deepEqual(codes(f.received()), ['57P03', 'ZE']);
    f.send(Q('ROLLBACK'));
    assert.deepEqual(codes(f.received()), ['ROLLBACK', 'ZI']);
    // The primary is reachable again (its retry delay is over): the next transaction runs there.
    f.core.planner.failedAt.clear();
    const conn = new FakeConn(0, 77);
    f.host.idle.push(conn);
    f.send(Q('BEGIN'));
    f.send(Q('INSERT INTO t VALUES (3)'));
    await f.settle();
    assert.match(conn.take().toString('latin1'), /BEGIN\0Q[^]{4}INSERT INTO t VALUES \(3\)/);
    f.answer(0, Buffer.concat([C('BEGIN'), Z('T'), C('INSERT 0 1'), Z('T')]));
    assert.deepEqual(codes(f.received()), ['BEGIN', 'ZT', 'INSERT 0 1', 'ZT']);
  });

  test('an extended-protocol ROLLBACK of the aborted transaction, once a primary is back: the server\'s transaction is aborted first, then it runs there', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false, idle: [] });
    failingOpens(f);
    f.send(Q('BEGIN'));
    f.received();
    f.send(Q('INSERT INTO t VALUES (1)'));
    await f.settle();
    assert.deepEqual(codes(f.received()), ['57P03', 'ZE']);
    f.core.planner.failedAt.clear();
    const conn = new FakeConn(0, 78);
    f.host.idle.push(conn);
    f.send(msg('P', cstr(''), cstr('ROLLBACK'), i16(0)), msg('B', cstr(''), cstr(''), i16(0), i16(0), i16(0)), msg('E', cstr(''), i32(0)), msg('S'));
    await f.settle();
    const sent = conn.take().toString('latin1');
    assert.match(sent, /^Q[^]{4}BEGIN\0Q[^]{4}DO \$pgmaitre\$[^]*P[^]{4}\0ROLLBACK\0/, 'BEGIN, the abort, then the client\'s request');
    const err = msg('E', Buffer.from('SERROR\0CP0001\0Mpgmaitre\0\0', 'latin1'));
    f.answer(0, Buffer.concat([C('BEGIN'), Z('T'), err, Z('E'), msg('1'), msg('2'), C('ROLLBACK'), Z('I')]));
    assert.deepEqual(codes(f.received()), ['ROLLBACK', 'ZI'], 'the abort\'s error is swallowed; the ROLLBACK\'s answer reaches the client');
  });
});
