/**
 * A client that leaves (EOF, Terminate) with requests it sent whole (seed 70118): PostgreSQL runs
 * every complete message it read before the EOF, and commits what a Query or Sync commits there;
 * only then does the EOF roll back a transaction block left open. SessionCore.leave: those
 * requests still run (waiting for their lease), nothing is cancelled, and the leases end after.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeCore, FakeConn } from './core-harness';
import { cstr, i16, i32, msg, u8 } from '../../fixtures/bytes';
import type { BackendPort } from '../../../src/core/ports';

const Q = (sql: string): Buffer => msg('Q', cstr(sql));
const Z = (s = 'I'): Buffer => msg('Z', u8(s));
const C = (tag: string): Buffer => msg('C', cstr(tag));
const P = (name: string, sql: string): Buffer => msg('P', cstr(name), cstr(sql), i16(0));
const B = (): Buffer => msg('B', cstr(''), cstr(''), i16(0), i16(0), i16(0));
const E = (): Buffer => msg('E', cstr(''), i32(0));
const H = (): Buffer => msg('H');

describe('a client that leaves with requests sent whole (70118)', () => {
  test('a Query waiting for its lease still runs; the lease ends once it is answered', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false });
    let lease!: (c: BackendPort | null) => void;
    f.host.openLink = () => new Promise((r) => { lease = r; });
    f.send(Q('INSERT INTO t VALUES (1)'));
    await f.settle();
    let left = false;
    assert.equal(f.core.leave(() => { left = true; f.core.close(); }), true, 'something is left to run');
    const conn = new FakeConn(0, 901);
    f.conns.set(0, conn);
    lease(conn);
    await f.settle();
    assert.match(conn.take().toString('latin1'), /INSERT INTO t VALUES \(1\)/);
    assert.equal(left, false);
    f.answer(0, Buffer.concat([C('INSERT 0 1'), Z()]));
    await f.settle();
    assert.equal(left, true);
    assert.deepEqual(f.host.cancels, [], 'nothing cancelled');
    assert.deepEqual(f.host.closed.map((c) => c.reusable), [true], 'the connection goes back');
  });

  test('a Query in flight behind an unsynced pipeline is not cancelled; nothing read after the leave is sent', async () => {
    const idle = [new FakeConn(0, 902)];
    const conn = idle[0]!;
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false, idle });
    f.send(P('', 'INSERT INTO t VALUES ($1::int)'), B(), E(), H());
    await f.settle();
    conn.take();
    f.answer(0, Buffer.concat([msg('1'), msg('2'), C('INSERT 0 1')]));
    await f.settle();
    // the Query (it commits the pipeline's implicit transaction), then a Parse + Flush with no Sync after it
    f.send(Q('SELECT pg_sleep(1)'), P('', 'SELECT 2'), H());
    await f.settle();
    let left = false;
    assert.equal(f.core.leave(() => { left = true; f.core.close(); }), true);
    f.send(Q('SELECT 3'));
    await f.settle();
    assert.deepEqual(f.host.cancels, []);
    f.answer(0, Buffer.concat([msg('T', i16(0)), C('SELECT 1'), Z()]));
    await f.settle();
    // (the Parse + Flush after it is still in flight: it matters not, the EOF rolls it back)
    assert.equal(left, true);
    assert.doesNotMatch(conn.take().toString('latin1'), /SELECT 3/, 'nothing read after the client left is sent');
    assert.deepEqual(f.host.closed.map((c) => c.reusable), [false], 'closed: a sequence left open');
  });

  test('only a read in flight (nothing it could leave): cancelled as before, the session ends at once', async () => {
    const idle = [new FakeConn(0, 904)];
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false, idle });
    f.send(Q('SELECT pg_sleep(30)'));
    await f.settle();
    assert.equal(f.core.leave(() => assert.fail('not called')), false);
  });

  test('nothing sent whole to finish: the session ends at once (leave answers false)', async () => {
    const idle = [new FakeConn(0, 903)];
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false, idle });
    f.send(P('', 'INSERT INTO t VALUES ($1::int)'), B(), E(), H());
    await f.settle();
    assert.equal(f.core.leave(() => assert.fail('not called')), false, 'an unsynced pipeline: the EOF rolls it back');
  });
});
