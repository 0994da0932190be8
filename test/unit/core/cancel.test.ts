/**
 * A client's CancelRequest through the core (issue 17, F26): it reaches only the statement the
 * client was running, never its next one nor another client's on a shared connection.
 * PostgreSQL's rule, as a direct connection sees it: a cancel that arrives while a statement runs
 * cancels it; one that arrives while the backend is idle is dropped; libpq's PQcancel returns
 * once the server acted on it (closed the cancel connection).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeCore, FakeConn } from './core-harness';
import { cstr, i16, msg, u8 } from '../../fixtures/bytes';
import type { BackendPort } from '../../../src/core/ports';

const Q = (sql: string): Buffer => msg('Q', cstr(sql));
const Z = (s = 'I'): Buffer => msg('Z', u8(s));
const C = (tag: string): Buffer => msg('C', cstr(tag));
const rows = (s = 'I'): Buffer => Buffer.concat([msg('T', i16(0)), C('SELECT 1'), Z(s)]);

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

  test('a cancel for a statement still waiting for its connection is forwarded once it was sent', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false });
    const lease = deferred<BackendPort | null>();
    f.host.openLink = () => lease.promise;
    f.send(Q('SELECT pg_sleep(20)'));
    await f.settle();
    f.core.cancel();
    assert.deepEqual(f.host.cancels, [], 'nothing runs at a server yet');
    const conn = new FakeConn(0, 777);
    f.conns.set(0, conn);
    lease.resolve(conn);
    await f.settle();
    assert.match(conn.take().toString('latin1'), /pg_sleep/);
    assert.deepEqual(f.host.cancels, ['0:777'], 'cancelled when it runs, as on a direct connection');
    f.answer(0, Buffer.concat([msg('E', u8('S'), cstr('ERROR'), u8('C'), cstr('57014'), u8('M'), cstr('canceling statement due to user request'), u8(0)), Z()]));
    await f.settle();
    // The next statement is not cancelled again.
    f.send(Q('SELECT 2'));
    await f.settle();
    assert.match(conn.take().toString('latin1'), /SELECT 2/);
    assert.deepEqual(f.host.cancels, ['0:777']);
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
