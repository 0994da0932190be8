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
import { LinkRefused } from '../../../src/core/core-host';

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

  test('several statements in one Query that write (BEGIN; INSERT; COMMIT): not cancelled, it runs to its end', async () => {
    const idle = [new FakeConn(0, 905)];
    const conn = idle[0]!;
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false, idle });
    f.send(Q('BEGIN; INSERT INTO t VALUES (1); COMMIT'));
    await f.settle();
    assert.match(conn.take().toString('latin1'), /INSERT INTO t/);
    let left = false;
    assert.equal(f.core.leave(() => { left = true; f.core.close(); }), true, 'it may commit: it runs to its end');
    assert.deepEqual(f.host.cancels, [], 'nothing cancelled');
    f.answer(0, Buffer.concat([C('BEGIN'), C('INSERT 0 1'), C('COMMIT'), Z()]));
    await f.settle();
    assert.equal(left, true);
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

describe('a client that leaves: its leases always end (95064)', () => {
  const leaving = async (o: { clientFull?: boolean } = {}) => {
    const idle = [new FakeConn(0, 910)];
    const conn = idle[0]!;
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false, idle });
    f.clientFull = o.clientFull === true;
    let left = false;
    const leave = (): boolean => f.core.leave(() => { left = true; f.core.close(); });
    return { f, conn, leave, left: () => left };
  };

  test('an answer with an error in a transaction block left open: the lease ends (closed) once answered', async () => {
    const { f, conn, leave, left } = await leaving();
    f.send(Q('BEGIN'));
    await f.settle();
    f.send(Q('INSERT INTO nope VALUES (1)'));
    await f.settle();
    assert.match(conn.take().toString('latin1'), /BEGIN.*INSERT/s, 'the BEGIN (deferred) goes with it');
    assert.equal(leave(), true);
    f.answer(0, Buffer.concat([C('BEGIN'), Z('T'), msg('E', u8('S'), cstr('ERROR'), u8('C'), cstr('42P01'), u8('M'), cstr('no'), u8('')), Z('E')]));
    await f.settle();
    assert.equal(left(), true);
    assert.equal(f.host.closed.length, 1, 'the lease ended');
    assert.equal(f.host.closed[0]!.reusable, false, 'a transaction left open: closed');
  });

  test('a transaction block left open by what ran after the leave: the lease ends', async () => {
    const { f, conn, leave, left } = await leaving();
    f.send(Q('BEGIN'), Q('INSERT INTO t VALUES (1)'));
    await f.settle();
    assert.equal(leave(), true);
    f.answer(0, Buffer.concat([C('BEGIN'), Z('T')]));
    await f.settle();
    assert.match(conn.take().toString('latin1'), /INSERT/);
    assert.equal(left(), false);
    f.answer(0, Buffer.concat([C('INSERT 0 1'), Z('T')]));
    await f.settle();
    assert.equal(left(), true);
    assert.deepEqual(f.host.closed.map((c) => c.reusable), [false]);
  });

  test('the client stopped reading, then left: the backends are read again, the answer ends the lease', async () => {
    const { f, conn, leave, left } = await leaving({ clientFull: true });
    f.send(Q('INSERT INTO t VALUES (1)'));
    await f.settle();
    f.answer(0, msg('N', u8('S'), cstr('NOTICE'), u8('M'), cstr('x'), u8('')));
    assert.equal(conn.paused, true, 'paused: the client is full');
    assert.equal(leave(), true);
    // Its socket is gone: no drain will ever come, and a paused backend is never read.
    assert.equal(conn.paused, false, 'read again once the client left');
    f.answer(0, Buffer.concat([C('INSERT 0 1'), Z()]));
    await f.settle();
    assert.equal(left(), true);
    assert.deepEqual(f.host.closed.map((c) => c.reusable), [true]);
  });

  test('a pinned session (LISTEN) that leaves: the lease goes back after its reset', async () => {
    const { f, conn, leave, left } = await leaving();
    f.send(Q('LISTEN ch'), Q('INSERT INTO t VALUES (1)'));
    await f.settle();
    assert.equal(leave(), true);
    f.answer(0, Buffer.concat([C('LISTEN'), Z()]));
    await f.settle();
    assert.match(conn.take().toString('latin1'), /INSERT/);
    f.answer(0, Buffer.concat([C('INSERT 0 1'), Z()]));
    await f.settle();
    assert.equal(left(), true);
    assert.deepEqual(f.host.closed.map((c) => [c.reusable, c.reset]), [[true, true]]);
  });

  test('a leave while a cancel is on its way, a request behind: it runs once the cancel was taken, then the lease ends', async () => {
    let taken!: () => void;
    const cancelTaken = new Promise<void>((r) => { taken = r; });
    const idle = [new FakeConn(0, 911)];
    const conn = idle[0]!;
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false, idle, cancelTaken });
    f.send(Q('SELECT pg_sleep(3)'));
    await f.settle();
    f.core.cancel();
    f.send(Q('INSERT INTO t VALUES (1)'));
    await f.settle();
    let left = false;
    assert.equal(f.core.leave(() => { left = true; f.core.close(); }), true);
    f.answer(0, Buffer.concat([msg('E', u8('S'), cstr('ERROR'), u8('C'), cstr('57014'), u8('M'), cstr('canceled'), u8('')), Z()]));
    await f.settle();
    taken();
    await f.settle();
    assert.match(conn.take().toString('latin1'), /INSERT/);
    f.answer(0, Buffer.concat([C('INSERT 0 1'), Z()]));
    await f.settle();
    assert.equal(left, true);
    assert.deepEqual(f.host.closed.map((c) => c.reusable), [true]);
  });

  test('a second leave while the first waits changes nothing; close() ends it', async () => {
    const { f, leave, left } = await leaving();
    f.send(Q('INSERT INTO t VALUES (1)'));
    await f.settle();
    assert.equal(leave(), true);
    assert.equal(leave(), true);
    f.core.close();
    assert.equal(left(), false);
    assert.deepEqual(f.host.closed.map((c) => c.reusable), [false], 'a request in flight: closed');
  });

  test('a COPY FROM STDIN that runs after the leave: aborted, the lease ends', async () => {
    const { f, leave, left } = await leaving();
    f.send(Q('COPY t FROM STDIN'));
    await f.settle();
    assert.equal(leave(), true);
    f.answer(0, msg('G', u8(''), i16(0)));
    await f.settle();
    assert.equal(left(), true);
    assert.deepEqual(f.host.closed.map((c) => c.reusable), [false]);
  });
  test('a cancel after the leave, the request still waiting for its lease (cancel-disconnect, pool 1): cancelled here, the lease ends', async () => {
    let taken!: () => void;
    const cancelTaken = new Promise<void>((r) => { taken = r; });
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false, cancelTaken });
    let lease!: (c: BackendPort | null) => void;
    f.host.openLink = () => new Promise((r) => { lease = r; });
    f.send(Q('BEGIN'), Q('INSERT INTO t VALUES (1)'), Q('SELECT pg_sleep(3)'));
    await f.settle();
    let left = false;
    assert.equal(f.core.leave(() => { left = true; f.core.close(); }), true);
    f.core.cancel(); // the head request (the INSERT, the deferred BEGIN's first) is cancelled here: it was sent nowhere
    assert.match(f.received().toString('latin1'), /57014/);
    const conn = new FakeConn(0, 912);
    f.conns.set(0, conn);
    lease(conn);
    await f.settle();
    assert.deepEqual(f.host.cancels, [], 'nothing ran at a server: no cancel forwarded');
    assert.equal(conn.take().length, 0, 'the aborted transaction refuses the rest here (25P02): nothing reaches the server');
    assert.equal(left, true);
    assert.deepEqual(f.host.closed.map((c) => c.reusable), [true], 'the lease that came ends clean');
    void taken;
  });

  test('a temporary table created after the leave (pinned): the lease goes back after its reset', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false });
    let lease!: (c: BackendPort | null) => void;
    f.host.openLink = () => new Promise((r) => { lease = r; });
    f.send(Q('CREATE TEMP TABLE tt (a int)'));
    await f.settle();
    let left = false;
    assert.equal(f.core.leave(() => { left = true; f.core.close(); }), true);
    const conn = new FakeConn(0, 913);
    f.conns.set(0, conn);
    lease(conn);
    await f.settle();
    f.answer(0, Buffer.concat([C('CREATE TABLE'), Z()]));
    await f.settle();
    assert.equal(left, true);
    assert.deepEqual(f.host.closed.map((c) => [c.reusable, c.reset]), [[true, true]]);
  });

  test('the lease it waits for is refused (query_wait_timeout): the session ends, nothing leased', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false });
    let refuse!: (e: Error) => void;
    f.host.openLink = () => new Promise((_r, j) => { refuse = j; });
    f.send(Q('INSERT INTO t VALUES (1)'));
    await f.settle();
    let left = false;
    assert.equal(f.core.leave(() => { left = true; f.core.close(); }), true);
    refuse(new LinkRefused('53300', 'timed out waiting for a pooled connection'));
    await f.settle();
    assert.equal(left, true);
    assert.deepEqual(f.host.closed, []);
  });
});

describe('answers that never come are not waited for (the hostile-input fuzz)', () => {
  test('a Flush with nothing before it owes nothing: a read for another node behind it is sent at once', async () => {
    const f = await makeCore({ weights: [0, 1, 0] });
    f.send(H(), Q('SELECT 1'));
    await f.settle();
    assert.equal(f.conns.get(0)!.take().toString('latin1'), H().toString('latin1'), 'the Flush went to the login connection');
    assert.match(f.conns.get(1)?.take().toString('latin1') ?? '', /SELECT 1/, 'the read did not wait for an answer to the Flush');
  });

  test('...and a client that leaves after them: the session ends once the read is answered', async () => {
    const f = await makeCore({ weights: [0, 1, 0] });
    f.send(H(), Q('SELECT 1'));
    await f.settle();
    let left = false;
    const waits = f.core.leave(() => { left = true; f.core.close(); });
    if (waits) {
      f.answer(1, Buffer.concat([msg('T', i16(0)), C('SELECT 1'), Z()]));
      await f.settle();
    }
    assert.equal(!waits || left, true, 'the session ended');
  });

  test('a Parse ended by a stray CopyDone (no Sync, no Flush), then a read for another node: pgmaitre flushes the first node, the read follows its answer', async () => {
    const f = await makeCore({ weights: [0, 1, 0] });
    f.send(P('', 'INSERT INTO t VALUES (1)'), msg('c'), Q('SELECT 2'));
    await f.settle();
    const first = f.conns.get(0)!.take().toString('latin1');
    assert.match(first, /INSERT INTO t/);
    assert.ok(first.endsWith(H().toString('latin1')), 'a Flush of its own after the request, or the ParseComplete would stay in the server');
    assert.equal(f.conns.get(1)?.take().length ?? 0, 0, 'the read waits for the answer owed on node 0');
    f.answer(0, msg('1'));
    await f.settle();
    assert.match(f.conns.get(1)?.take().toString('latin1') ?? '', /SELECT 2/, 'then the read goes');
  });

  test('a Query written while the server skips to Sync (after an earlier error) owes nothing: a read for another node behind it is sent', async () => {
    const f = await makeCore({ weights: [0, 1, 0] });
    f.send(P('', 'INSERT INTO nope VALUES (1)'), H());
    await f.settle();
    f.answer(0, msg('E', u8('S'), cstr('ERROR'), u8('C'), cstr('42P01'), u8('M'), cstr('no'), u8('')));
    await f.settle();
    f.send(Q('INSERT INTO t VALUES (2)'), Q('SELECT 2'));
    await f.settle();
    assert.match(f.conns.get(0)!.take().toString('latin1'), /VALUES \(2\)/, 'the Query went where the sequence is (and is skipped there)');
    assert.match(f.conns.get(1)?.take().toString('latin1') ?? '', /SELECT 2/, 'the read did not wait for an answer that never comes');
    let left = false;
    assert.equal(f.core.leave(() => { left = true; f.core.close(); }) === false || left, true);
  });

  test('a Flush with a body: the server refuses it (08P01) and skips to Sync; a Query behind it is skipped, not owed', async () => {
    const f = await makeCore({ weights: [1, 0, 0] });
    f.send(msg('H', cstr('junk')), Q('INSERT INTO t VALUES (1)'));
    await f.settle();
    assert.match(f.conns.get(0)!.take().toString('latin1'), /junk.*INSERT/s);
    let left = false;
    assert.equal(f.core.leave(() => { left = true; f.core.close(); }), true, 'the INSERT may run: waited for');
    f.answer(0, msg('E', u8('S'), cstr('ERROR'), u8('C'), cstr('08P01'), u8('M'), cstr('invalid message format'), u8('')));
    await f.settle();
    assert.equal(left, true, 'the server skips the Query: nothing more is owed, the session ends');
  });
});
