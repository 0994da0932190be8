/**
 * The session core without sockets: what it writes to each backend and to the client for byte
 * streams split at every offset, the order of answers across nodes, pgmaitre's own replies never
 * overtaking a backend answer, session state replayed, retries, lost backends, backpressure.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeCore } from './core-harness';
import { cstr, i16, i32, msg, u8 } from '../../fixtures/bytes';

// Client frames (by hand, not by the encoders under test).
const Q = (sql: string): Buffer => msg('Q', cstr(sql));
const P = (name: string, sql: string): Buffer => Buffer.concat([u8('P'), i32(4 + Buffer.byteLength(name) + 1 + Buffer.byteLength(sql) + 1 + 2), cstr(name), cstr(sql), i16(0)]);
const B = (portal: string, stmt: string): Buffer => msg('B', cstr(portal), cstr(stmt), i16(0), i16(0), i16(0));
const E = (portal = ''): Buffer => msg('E', cstr(portal), i32(0));
const D = (kind: 'S' | 'P', name: string): Buffer => msg('D', u8(kind), cstr(name));
const S = msg('S');
const H = msg('H');
// Backend answers.
const Z = (s = 'I'): Buffer => msg('Z', u8(s));
const C = (tag: string): Buffer => msg('C', cstr(tag));
const T = msg('T', i16(0));
const DR = msg('D', i16(1), i32(1), Buffer.from('1'));
const rows = (tag = 'SELECT 1', s = 'I'): Buffer => Buffer.concat([T, DR, C(tag), Z(s)]);
const fatal = (code: string): Buffer => msg('E', u8('S'), cstr('FATAL'), u8('V'), cstr('FATAL'), u8('C'), cstr(code), u8('M'), cstr('bye'), u8(0));
const hex = (...b: Buffer[]): string => Buffer.concat(b).toString('hex');

describe('SessionCore', () => {
  test('read_your_writes: several statements in one Query that write (BEGIN; INSERT; COMMIT) count as a write', async () => {
    const f = await makeCore({ conf: 'read_your_writes = on\n' });
    f.send(Q('BEGIN; INSERT INTO t VALUES (1); COMMIT'));
    await f.settle();
    assert.match(f.conns.get(0)!.take().toString('latin1'), /INSERT INTO t/);
    f.answer(0, Buffer.concat([C('BEGIN'), C('INSERT 0 1'), C('COMMIT'), Z()]));
    await f.settle();
    f.received();
    f.send(Q('SELECT 1'));
    await f.settle();
    // No standby is known to have replayed the commit (no WAL position here): the read stays on the primary.
    assert.equal(hex(f.conns.get(0)!.take()), hex(Q('SELECT 1')));
  });

  test('a read goes to a standby, its answer back untouched', async () => {
    const f = await makeCore();
    f.send(Q('SELECT 1'));
    await f.settle();
    const node = [1, 2].find((n) => f.conns.has(n))!;
    assert.equal(hex(f.conns.get(node)!.take()), hex(Q('SELECT 1')));
    f.answer(node, rows());
    assert.equal(hex(f.received()), hex(rows()));
    assert.equal(f.core.busy, false);
  });

  test('the same pipeline, its bytes split at every offset, gives the same writes and answers', async () => {
    const pipeline = Buffer.concat([Q('SELECT 1'), P('', 'SELECT 2'), B('', ''), E(), S, Q('SELECT 3')]);
    let ref: string | undefined;
    for (let i = 0; i <= pipeline.length; i++) {
      const f = await makeCore({ weights: [1, 0, 0] });
      const parts = i === 0 || i === pipeline.length ? [pipeline] : [pipeline.subarray(0, i), pipeline.subarray(i)];
      f.send(...parts);
      await f.settle();
      const written = hex(f.conns.get(0)!.take());
      f.answer(0, Buffer.concat([rows(), msg('1'), msg('2'), DR, C('SELECT 1'), Z(), rows()]));
      const got = `${written}|${hex(f.received())}`;
      ref ??= got;
      assert.equal(got, ref, `split at ${i}`);
    }
  });

  test('answers keep request order across nodes: a write waits for the standby\'s answer', async () => {
    const f = await makeCore();
    f.send(Buffer.concat([Q('SELECT 1'), Q("INSERT INTO t VALUES (1)")]));
    await f.settle();
    const node = [1, 2].find((n) => f.conns.has(n))!;
    assert.equal(hex(f.conns.get(node)!.take()), hex(Q('SELECT 1')));
    assert.equal(f.conns.get(0)!.take().length, 0, 'the write waits');
    f.answer(node, rows());
    assert.equal(hex(f.conns.get(0)!.take()), hex(Q('INSERT INTO t VALUES (1)')));
    f.answer(0, Buffer.concat([C('INSERT 0 1'), Z()]));
    assert.equal(hex(f.received()), hex(rows(), C('INSERT 0 1'), Z()));
  });

  test('pgmaitre\'s own reply never overtakes an earlier answer (issue 9 item 9)', async () => {
    const f = await makeCore();
    f.cluster.setStatus(0, 'down', 'test');
    f.cluster.setRole(0, 'unknown', 'test');
    f.send(Buffer.concat([Q('SELECT 1'), Q('INSERT INTO t VALUES (1)')]));
    await f.settle();
    const node = [1, 2].find((n) => f.conns.has(n))!;
    assert.equal(f.received().length, 0, 'no error before the read is answered');
    f.answer(node, T, DR);
    f.answer(node, Buffer.concat([C('SELECT 1'), Z()]));
    const out = f.received();
    assert.equal(hex(out.subarray(0, rows().length)), hex(rows()), 'the read\'s answer first');
    assert.equal(String.fromCharCode(out[rows().length]!), 'E', 'then the 57P03 error');
  });

  test('a Sync request and a Flush request pipelined: the Flush answer reaches the client (item 7)', async () => {
    const f = await makeCore({ weights: [1, 0, 0] });
    f.send(Buffer.concat([P('', 'INSERT INTO t VALUES (1)'), B('', ''), E(), S, P('s2', 'INSERT INTO t VALUES (2)'), D('S', 's2'), H]));
    await f.settle();
    f.answer(0, Buffer.concat([msg('1'), msg('2'), C('INSERT 0 1'), Z()]));
    f.answer(0, Buffer.concat([msg('1'), msg('t', i16(0)), msg('n')]));
    assert.equal(hex(f.received()), hex(msg('1'), msg('2'), C('INSERT 0 1'), Z(), msg('1'), msg('t', i16(0)), msg('n')));
    f.send(Buffer.concat([B('', 's2'), E(), S]));
    assert.equal(hex(f.conns.get(0)!.take().subarray(-S.length)), hex(S), 'the rest of the sequence goes to the same node');
  });

  test('a SET reaches a standby before the next read there, swallowed; the client sees only its answers', async () => {
    const f = await makeCore();
    f.send(Q('SET search_path = s1'));
    await f.settle();
    assert.equal(hex(f.conns.get(0)!.take()), hex(Q('SET search_path = s1')), 'SET runs on the primary');
    f.answer(0, Buffer.concat([C('SET'), Z()]));
    f.send(Q('SELECT 1'));
    await f.settle();
    const node = [1, 2].find((n) => f.conns.has(n))!;
    assert.equal(hex(f.conns.get(node)!.take()), hex(Q('SET search_path = s1'), Q('SELECT 1')));
    f.answer(node, Buffer.concat([C('SET'), Z(), rows()]));
    assert.equal(hex(f.received()), hex(C('SET'), Z(), rows()));
    // Nothing changed: the next read costs no replay.
    f.send(Q('SELECT 2'));
    await f.settle();
    assert.equal(hex(f.conns.get(node)!.take()), hex(Q('SELECT 2')));
  });

  test('a SET rolled back is not replayed; a SET committed is', async () => {
    const f = await makeCore();
    f.send(Q('BEGIN'));
    f.answer(0, Buffer.concat([C('BEGIN'), Z('T')]));
    f.send(Q('SET work_mem = \'1MB\''));
    f.answer(0, Buffer.concat([C('SET'), Z('T')]));
    f.send(Q('ROLLBACK'));
    f.answer(0, Buffer.concat([C('ROLLBACK'), Z('I')]));
    f.send(Q('SELECT 1'));
    await f.settle();
    const node = [1, 2].find((n) => f.conns.has(n))!;
    assert.equal(hex(f.conns.get(node)!.take()), hex(Q('SELECT 1')), 'nothing to replay');
    f.answer(node, rows());
    f.send(Q('BEGIN'));
    f.answer(0, Buffer.concat([C('BEGIN'), Z('T')]));
    f.send(Q('SET work_mem = \'2MB\''));
    f.answer(0, Buffer.concat([C('SET'), Z('T')]));
    f.send(Q('COMMIT'));
    f.answer(0, Buffer.concat([C('COMMIT'), Z('I')]));
    f.send(Q('SELECT 1'));
    await f.settle();
    assert.equal(hex(f.conns.get(node)!.take()), hex(Q('SET work_mem = \'2MB\''), Q('SELECT 1')));
  });

  test('SQL PREPARE then EXECUTE: the statement is re-prepared where EXECUTE runs (item 1)', async () => {
    const f = await makeCore({ conf: 'statement_level_load_balance = on\n' });
    f.send(Q('PREPARE p(int) AS SELECT $1'));
    await f.settle();
    // The standby that got the PREPARE (the other may have a connection too: the session's
    // load-balance node is chosen, and connected, before the statement-level choice).
    const first = [1, 2].find((n) => (f.conns.get(n)?.written.length ?? 0) > 0)!;
    assert.equal(hex(f.conns.get(first)!.take()), hex(Q('PREPARE p(int) AS SELECT $1')));
    f.answer(first, Buffer.concat([C('PREPARE'), Z()]));
    for (let i = 0; i < 8; i++) {
      f.send(Q('EXECUTE p(1)'));
      await f.settle();
      const node = [1, 2].find((n) => (f.conns.get(n)?.written.length ?? 0) > 0)!;
      const w = f.conns.get(node)!.take();
      if (node !== first && i < 8 && w.length > Q('EXECUTE p(1)').length) {
        assert.equal(hex(w), hex(Q('PREPARE p(int) AS SELECT $1'), Q('EXECUTE p(1)')), 're-prepared first');
        f.answer(node, Buffer.concat([C('PREPARE'), Z()]));
      }
      f.answer(node, rows());
    }
    assert.equal(f.received().length, Buffer.concat([C('PREPARE'), Z()]).length + 8 * rows().length, 'the client sees one PREPARE and 8 results');
  });

  test('BackendKeyData is the login connection\'s: cancel reaches the node running the query', async () => {
    const f = await makeCore();
    f.send(Q('SELECT pg_sleep(1)'));
    await f.settle();
    f.core.cancel();
    assert.equal(f.host.cancels.length, 1);
  });

  test('an idle primary connection terminated (57P01) while the node accepts: the client gets that FATAL and the session ends (item 3)', async () => {
    const f = await makeCore();
    f.answer(0, fatal('57P01'));
    f.core.onBackendClosed(0, 'closed by server');
    await f.settle();
    assert.equal(hex(f.received()), hex(fatal('57P01')));
    assert.match(f.host.ended ?? '', /node 0/);
  });

  test('an idle primary connection lost in a shutdown: the session goes on', async () => {
    const f = await makeCore();
    f.host.accepting = false;
    f.answer(0, fatal('57P01'));
    f.core.onBackendClosed(0, 'closed by server');
    await f.settle();
    assert.equal(f.received().length, 0);
    assert.equal(f.host.ended, null);
  });

  test('a backend\'s FATAL inside an answer is not followed by a second one (item 6)', async () => {
    const f = await makeCore({ weights: [1, 0, 0] });
    f.send(Q('SELECT pg_sleep(10)'));
    f.answer(0, fatal('57P01'));
    f.core.onBackendClosed(0, 'closed by server');
    await f.settle();
    assert.equal(hex(f.received()), hex(fatal('57P01')));
    assert.ok(f.host.ended !== null);
  });

  test('a read whose standby goes away before answering runs again on the other one', async () => {
    const f = await makeCore();
    f.send(Q('SELECT 1'));
    await f.settle();
    const node = [1, 2].find((n) => f.conns.has(n))!;
    const other = node === 1 ? 2 : 1;
    f.conns.get(node)!.take();
    f.answer(node, fatal('57P01'));
    f.core.onBackendClosed(node, 'closed by server');
    await f.settle();
    assert.equal(hex(f.conns.get(other)!.take()), hex(Q('SELECT 1')));
    f.answer(other, rows());
    assert.equal(hex(f.received()), hex(rows()));
    assert.equal(f.host.ended, null);
  });

  const shutdownWarning = msg('N', u8('S'), cstr('WARNING'), u8('V'), cstr('WARNING'), u8('C'), cstr('57P01'), u8('M'), cstr('terminating connection due to immediate shutdown command'), u8(0));

  test('a read whose answer comes with a shutdown WARNING in one chunk, no ReadyForQuery: taken back, run on the other standby', async () => {
    const f = await makeCore();
    f.send(Q('SELECT 1'));
    await f.settle();
    const node = [1, 2].find((n) => f.conns.has(n))!;
    const other = node === 1 ? 2 : 1;
    f.conns.get(node)!.take();
    // PostgreSQL flushes the buffered answer with the WARNING and exits.
    f.answer(node, Buffer.concat([T, DR, shutdownWarning]));
    f.core.onBackendClosed(node, 'closed by server');
    await f.settle();
    assert.equal(hex(f.conns.get(other)!.take()), hex(Q('SELECT 1')));
    f.answer(other, rows());
    assert.equal(hex(f.received()), hex(rows()));
    assert.equal(f.host.ended, null);
  });

  test('a read answered whole but for its ReadyForQuery (already forwarded) when its standby shuts down: the ReadyForQuery is pgmaitre\'s, the session goes on', async () => {
    const f = await makeCore();
    f.send(Q('SELECT 1'));
    await f.settle();
    const node = [1, 2].find((n) => f.conns.has(n))!;
    const other = node === 1 ? 2 : 1;
    f.conns.get(node)!.take();
    f.answer(node, Buffer.concat([T, DR, C('SELECT 1')]));
    f.answer(node, shutdownWarning);
    f.core.onBackendClosed(node, 'closed by server');
    await f.settle();
    assert.equal(hex(f.received()), hex(T, DR, C('SELECT 1'), shutdownWarning, Z()));
    assert.equal(f.host.ended, null);
    f.send(Q('SELECT 2'));
    await f.settle();
    assert.equal(hex(f.conns.get(other)!.take()), hex(Q('SELECT 2')), 'not run again: the next read goes to the other standby');
    f.answer(other, rows());
    assert.equal(hex(f.received()), hex(rows()));
  });

  test('a two-statement read cut after its first CommandComplete ends the session (its answer is not whole)', async () => {
    const f = await makeCore();
    f.send(Q('SELECT 1; SELECT 2'));
    await f.settle();
    const node = [1, 2].find((n) => f.conns.has(n))!;
    f.conns.get(node)!.take();
    f.answer(node, Buffer.concat([T, DR, C('SELECT 1')]));
    f.core.onBackendClosed(node, 'closed by server');
    await f.settle();
    assert.doesNotMatch(hex(f.received()), new RegExp(`${hex(Z())}$`));
    assert.ok(f.host.ended !== null);
  });

  test('a read cut before its CommandComplete ends the session', async () => {
    const f = await makeCore();
    f.send(Q('SELECT 1'));
    await f.settle();
    const node = [1, 2].find((n) => f.conns.has(n))!;
    f.conns.get(node)!.take();
    f.answer(node, Buffer.concat([T, DR]));
    f.core.onBackendClosed(node, 'closed by server');
    await f.settle();
    assert.ok(f.host.ended !== null);
  });

  test('backpressure: the client is not read while requests pile up, and is read again once they drain', async () => {
    const f = await makeCore();
    const big = Q(`SELECT '${'x'.repeat(2000)}'`);
    f.send(Q('SELECT 1'));
    await f.settle();
    const node = [1, 2].find((n) => f.conns.has(n))!;
    const conn = f.conns.get(node)!;
    conn.accept = false; // the backend socket is full
    for (let i = 0; i < 200; i++) f.send(big);
    assert.equal(f.host.paused, true, 'paused while the backend socket is full');
    conn.drain();
    assert.equal(f.host.paused, false);
    // Many requests served one after the other never leave the client paused (queue accounting).
    for (let i = 0; i < 2000; i++) {
      f.send(big);
      f.answer(node, rows());
    }
    assert.equal(f.host.paused, false);
  });

  test('a request waiting for another node\'s answers is queued, not lost; the queue is bounded', async () => {
    const f = await makeCore();
    f.send(Q('SELECT 1'));
    await f.settle();
    const node = [1, 2].find((n) => f.conns.has(n))!;
    const w = Q(`INSERT INTO t VALUES ('${'y'.repeat(4000)}')`);
    for (let i = 0; i < 100; i++) f.send(w); // each waits for the standby's answer
    assert.equal(f.host.paused, true, 'over the queue bound: the client is not read');
    f.answer(node, rows());
    assert.equal(f.conns.get(0)!.take().length, 100 * w.length, 'all of them went to the primary at once');
    assert.equal(f.host.paused, false);
  });
});
