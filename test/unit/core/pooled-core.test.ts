/**
 * Transaction pooling in the session core, without sockets: a connection is leased per transaction
 * and given back when it is over, session state follows the client onto whichever connection it
 * gets, statement names become server names shared per connection, what cannot be replayed pins
 * the session, statement pooling refuses transaction blocks.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeCore, FakeConn } from './core-harness';
import { cstr, i16, i32, msg, u8 } from '../../fixtures/bytes';

const Q = (sql: string): Buffer => msg('Q', cstr(sql));
const P = (name: string, sql: string): Buffer => msg('P', cstr(name), cstr(sql), i16(0));
const B = (portal: string, stmt: string): Buffer => msg('B', cstr(portal), cstr(stmt), i16(0), i16(0), i16(0));
const E = (): Buffer => msg('E', cstr(''), i32(0));
const S = msg('S');
const Z = (s = 'I'): Buffer => msg('Z', u8(s));
const C = (tag: string): Buffer => msg('C', cstr(tag));
const rows = (s = 'I'): Buffer => Buffer.concat([msg('T', i16(0)), C('SELECT 1'), Z(s)]);
const hex = (...b: Buffer[]): string => Buffer.concat(b).toString('hex');
const names = (b: Buffer): string[] => [...b.toString('latin1').matchAll(/pgmq?_[0-9a-f]+|S_1/g)].map((m) => m[0]);

describe('SessionCore, transaction pooling', () => {
  test('an autocommit statement holds a connection only until its ReadyForQuery', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction' });
    f.send(Q('SELECT 1'));
    await f.settle();
    const conn = f.conns.get(0)!;
    assert.equal(f.host.idle.length, 0, 'leased while the statement runs');
    f.answer(0, rows());
    assert.deepEqual(f.host.idle, [conn], 'given back at ReadyForQuery I');
    f.send(Q('SELECT 2'));
    assert.deepEqual(f.host.idle, [], 'the next statement leases it again at once (no wait)');
    assert.match(conn.take().toString('latin1'), /SELECT 2/);
  });

  test('a transaction keeps its connection until it ends', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction' });
    f.send(Q('BEGIN'));
    f.answer(0, Buffer.concat([C('BEGIN'), Z('T')]));
    assert.equal(f.host.idle.length, 0);
    f.send(Q('INSERT INTO t VALUES (1)'));
    f.answer(0, Buffer.concat([C('INSERT 0 1'), Z('T')]));
    assert.equal(f.host.idle.length, 0, 'still inside the transaction');
    f.send(Q('COMMIT'));
    f.answer(0, Buffer.concat([C('COMMIT'), Z('I')]));
    assert.equal(f.host.idle.length, 1);
  });

  test('item 10: a BEGIN with no connection is answered at once and sent in front of the first statement', async () => {
    const conn = new FakeConn(0, 99);
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction', login: false, idle: [conn] });
    f.send(Q('BEGIN'));
    assert.equal(hex(f.received()), hex(C('BEGIN'), Z('T')));
    assert.equal(f.host.idle.length, 1, 'no lease for BEGIN alone');
    f.send(Q('INSERT INTO t VALUES (1)'));
    await f.settle();
    assert.equal(f.host.idle.length, 0);
    assert.match(conn.take().toString('latin1'), /^Q[^]{4}BEGIN\0Q[^]{4}INSERT INTO t VALUES \(1\)\0$/);
    f.answer(0, Buffer.concat([C('BEGIN'), Z('T'), C('INSERT 0 1'), Z('T')]));
    assert.equal(hex(f.received()), hex(C('INSERT 0 1'), Z('T')), "the BEGIN's own answer is not passed on");
    f.send(Q('COMMIT'));
    assert.match(conn.take().toString('latin1'), /COMMIT/);
    f.answer(0, Buffer.concat([C('COMMIT'), Z('I')]));
    assert.equal(f.host.idle.length, 1);
    f.send(Q('BEGIN'));
    f.send(Q('ROLLBACK'));
    assert.equal(hex(f.received()), hex(C('COMMIT'), Z('I'), C('BEGIN'), Z('T'), C('ROLLBACK'), Z('I')), 'BEGIN; ROLLBACK: no server needed');
    assert.equal(conn.take().length, 0);
  });

  test('SETs follow the client onto a connection another client used (only the differences are replayed)', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction' });
    f.send(Q('SET search_path = s1'));
    f.answer(0, Buffer.concat([C('SET'), Z()]));
    const conn = f.host.idle[0]!;
    conn.take();
    // Another client used it meanwhile and left its own search_path and work_mem there.
    conn.appliedOwner = {};
    conn.applied = new Map([['search_path', 'SET search_path = other'], ['work_mem', "SET work_mem = '8MB'"]]);
    f.send(Q('SELECT 1'));
    assert.match(conn.take().toString('latin1'), /^Q[^]{4}RESET work_mem; SET search_path = s1\0Q[^]{4}SELECT 1\0$/);
  });

  test('protocol statements get server names; a connection that has one answers its Parse in place', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction' });
    f.send(Buffer.concat([P('S_1', 'SELECT 1'), B('', 'S_1'), E(), S]));
    const conn = f.conns.get(0)!;
    const first = conn.take();
    const server = names(first)[0]!;
    assert.match(server, /^pgm_[0-9a-f]{24}$/);
    assert.deepEqual(names(first), [server, server], 'Parse and Bind renamed');
    f.answer(0, Buffer.concat([msg('1'), msg('2'), C('SELECT 1'), Z()]));
    f.received();
    // The same client parses the same statement under another name: the connection has it.
    f.send(Buffer.concat([P('S_2', 'SELECT 1'), B('', 'S_2'), E(), S]));
    const second = conn.take();
    assert.deepEqual(names(second), [server], 'no Parse sent, the Bind uses the shared name');
    assert.equal(hex(f.received()), hex(msg('1')), 'ParseComplete answered at once, in place');
    f.answer(0, Buffer.concat([msg('2'), C('SELECT 1'), Z()]));
    assert.equal(hex(f.received()), hex(msg('2'), C('SELECT 1'), Z()));
  });

  test('a statement needed on a connection that lacks it is parsed there first under its server name', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction' });
    f.send(Buffer.concat([P('S_1', 'SELECT 1'), S]));
    const conn = f.conns.get(0)!;
    const server = names(conn.take())[0]!;
    f.answer(0, Buffer.concat([msg('1'), Z()]));
    f.received();
    // The idle connection is taken by someone else; this client gets a fresh one.
    f.host.idle.length = 0;
    f.host.idle.push(new FakeConn(0, 4242));
    f.send(Buffer.concat([B('', 'S_1'), E(), S]));
    const fresh = f.conns.get(0)!;
    assert.notEqual(fresh, conn);
    const w = fresh.take();
    assert.deepEqual(names(w), [server, server], 're-parsed, then bound, under the server name (in the same Sync)');
    f.answer(0, Buffer.concat([msg('1'), msg('2'), C('SELECT 1'), Z()]));
    assert.equal(hex(f.received()), hex(msg('2'), C('SELECT 1'), Z()), 'the client sees only its own answers');
  });

  test('LISTEN pins the session to its connection until UNLISTEN *', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction' });
    f.send(Q('LISTEN chan'));
    f.answer(0, Buffer.concat([C('LISTEN'), Z()]));
    assert.equal(f.host.idle.length, 0, 'kept');
    assert.deepEqual(f.host.pins, ['LISTEN']);
    f.send(Q('UNLISTEN *'));
    f.answer(0, Buffer.concat([C('UNLISTEN'), Z()]));
    assert.equal(f.host.idle.length, 1, 'given back once nothing is held');
    assert.deepEqual(f.host.pins, ['LISTEN', '']);
  });

  test('SQL PREPARE/EXECUTE are renamed; DEALLOCATE and DISCARD ALL are answered for the client alone', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction' });
    f.send(Q('PREPARE p(int) AS SELECT $1'));
    const conn = f.conns.get(0)!;
    const prep = conn.take().toString('latin1');
    const server = /PREPARE (pgmq_[0-9a-f]+)\(int\) AS SELECT \$1/.exec(prep)?.[1];
    assert.ok(server, prep);
    f.answer(0, Buffer.concat([C('PREPARE'), Z()]));
    f.received();
    f.send(Q('EXECUTE p(1)'));
    assert.match(conn.take().toString('latin1'), new RegExp(`EXECUTE ${server}\\(1\\)`));
    f.answer(0, rows());
    f.received();
    f.send(Q('PREPARE p(int) AS SELECT 2'));
    assert.match(f.received().toString('latin1'), /42P05/, 'a second PREPARE of the name fails as directly');
    f.send(Q('DEALLOCATE p'));
    assert.equal(hex(f.received()), hex(C('DEALLOCATE'), Z()));
    assert.equal(conn.take().length, 0, 'the shared server statement stays');
    f.send(Q('DEALLOCATE p'));
    assert.match(f.received().toString('latin1'), /26000/);
    f.send(Q('DISCARD ALL'));
    assert.equal(hex(f.received()), hex(C('DISCARD ALL'), Z()));
  });

  test('statement pooling refuses transaction blocks', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'statement' });
    f.send(Q('BEGIN'));
    assert.match(f.received().toString('latin1'), /0A000.*statement pool mode/);
    f.send(Q('SELECT 1'));
    f.answer(0, rows());
    assert.equal(hex(f.received()), hex(rows()));
  });

  test('a cancel holds the connection until the server took it', async () => {
    const f = await makeCore({ weights: [1, 0, 0], pooling: 'transaction' });
    f.send(Q('SELECT pg_sleep(10)'));
    f.core.cancel();
    f.answer(0, Buffer.concat([msg('E', u8('S'), cstr('ERROR'), u8('C'), cstr('57014'), u8('M'), cstr('canceled'), u8(0)), Z()]));
    assert.equal(f.host.idle.length, 0, 'not given back while the cancel is on its way');
    await f.settle();
    assert.equal(f.host.idle.length, 1);
  });
});
