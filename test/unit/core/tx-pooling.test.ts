/** tx-pooling.ts (lease fate, pins, untracked session state) and server-statements.ts, alone. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Fate, leaseFate, Pins, allSetConfigLocal, parsedWhenAborted, bodyChangesSession, untrackedChange, statementParameters, abortedBindError, abortedDescribe, type LeaseSession } from '../../../src/core/tx-pooling';
import { encodeBind, encodeParse } from '../../../src/protocol/frontend';
import { ServerStatements } from '../../../src/protocol/server-statements';
import { ExpectKind, Link, Term } from '../../../src/core/link';
import { TxStatus } from '../../../src/protocol/codes';
import type { QueryClass } from '../../../src/classify/types';

const session = (o: Partial<{ pin: string; cancel: boolean; sticky: number }> = {}): LeaseSession => ({
  copyLink: null, stickyNode: o.sticky ?? -1, cancelInFlight: () => o.cancel ?? false, pinReason: () => o.pin ?? '',
});
const cls = (kind: QueryClass['kind'], functions: string[] = [], createsTemp = false): QueryClass =>
  ({ kind, readOnly: kind === 'read', statements: 1, functions, relations: [], flags: { parsedBy: 'lexer', createsTemp } });

describe('leaseFate', () => {
  test('at the end of a transaction: clean when at rest and not pinned, else kept', () => {
    const l = new Link(0);
    assert.equal(leaseFate(l, session(), false), Fate.Clean);
    assert.equal(leaseFate(l, session({ pin: 'LISTEN' }), false), Fate.Keep);
    assert.equal(leaseFate(l, session({ cancel: true }), false), Fate.Keep);
    assert.equal(leaseFate(l, session({ sticky: 0 }), false), Fate.Keep);
    l.txStatus = TxStatus.InTransaction;
    assert.equal(leaseFate(l, session(), false), Fate.Keep);
  });
  test('when the lease must end: reset when pinned or state lost, closed when not at rest, held while a cancel is in flight', () => {
    const l = new Link(0);
    assert.equal(leaseFate(l, session(), true), Fate.Clean);
    assert.equal(leaseFate(l, session({ pin: 'a temporary table' }), true), Fate.Reset);
    assert.equal(leaseFate(l, session(), true, true), Fate.Reset);
    assert.equal(leaseFate(l, session({ cancel: true }), true), Fate.Hold);
    l.expect(ExpectKind.Client, false, 0, Term.Query);
    assert.equal(leaseFate(l, session({ pin: 'LISTEN' }), true), Fate.Close);
  });
});

describe('Pins', () => {
  test('temporary tables pin from CREATE TEMP; a DROP makes a probe due', () => {
    const p = new Pins();
    p.noteStatement(cls('temp_table', [], true), 'CREATE TEMP TABLE t (x int)');
    assert.equal(p.temp, true);
    assert.equal(p.tempProbeDue, false);
    p.noteStatement(cls('ddl'), 'DROP TABLE t');
    assert.equal(p.tempProbeDue, true);
    p.noteStatement(cls('temp_table', [], true), 'CREATE TEMP TABLE u (x int) ON COMMIT DROP');
    assert.equal(p.tempGeneration, 2);
  });
  test('untracked session state pins, failing closed', () => {
    assert.equal(untrackedChange(cls('read', ['set_config']), "SELECT set_config('a.b', 'x', false)"), 'set_config(..., false)');
    assert.equal(untrackedChange(cls('read', ['set_config']), "SELECT set_config('a.b', 'x', true)"), '');
    assert.equal(untrackedChange(cls('read', ['set_config']), "SELECT set_config('a.b', f(1, 2), $1)"), 'set_config(..., false)');
    assert.equal(untrackedChange(cls('write'), "/* x */ DO $$BEGIN SET work_mem = '8MB'; END$$"), 'SET inside a DO block');
    assert.equal(untrackedChange(cls('write'), 'DO $$BEGIN PERFORM 1; END$$'), '');
    assert.equal(untrackedChange(cls('write'), 'DOMAIN_THING'), '');
    assert.equal(allSetConfigLocal("SELECT set_config('a', 'b,c)', true), set_config('d', 'e', 'on')"), true);
  });
});

describe('ServerStatements', () => {
  test('tentative until confirmed; a failed Parse leaves nothing, a failed request leaves the name unsure', () => {
    const s = new ServerStatements();
    s.begin('a');
    assert.equal(s.pending('a'), true);
    assert.equal(s.has('a'), true, 'requests behind it may use it');
    s.failed('a', true);
    assert.equal(s.has('a'), false);
    s.begin('b');
    s.failed('b', false);
    assert.deepEqual([...s.unsure], ['b']);
    s.begin('c');
    s.confirm('c');
    s.failed('c', false);
    assert.equal(s.has('c'), true, 'a confirmed name is not undone by a later failure');
    s.clear();
    assert.equal(s.size, 0);
  });
  test('the cap evicts the least recently used, never a tentative name or one the current request uses', () => {
    const s = new ServerStatements(2);
    for (const n of ['a', 'b']) { s.nextRequest(); s.begin(n); s.confirm(n); }
    s.nextRequest();
    s.has('a'); // used: most recent
    s.begin('c');
    assert.deepEqual(s.evict(), ['b']);
    assert.deepEqual(s.list(), ['a', 'c']);
    s.nextRequest();
    s.begin('d');
    assert.deepEqual(s.evict(), ['a'], 'c and d are tentative: a goes');
    s.nextRequest();
    s.begin('e');
    assert.equal(s.evict(), null, 'only tentative names left: none evicted yet');
  });
});

describe('parsedWhenAborted (IsTransactionExitStmt)', () => {
  test('transaction-exit statements and empty queries are parsed in an aborted transaction, nothing else', () => {
    for (const sql of ['ROLLBACK', 'rollback to savepoint a', 'ROLLBACK TO a', 'abort', 'END', 'COMMIT AND CHAIN', '/* c */ commit',
      '-- x\n  Rollback', 'PREPARE TRANSACTION \'t\'', '', ' ; ', '/* only */']) assert.equal(parsedWhenAborted(sql), true, sql);
    for (const sql of ['COMMIT PREPARED \'t\'', 'ROLLBACK PREPARED \'t\'', 'PREPARE p AS SELECT 1', 'SELECT 1', 'BEGIN',
      'SAVEPOINT a', 'RELEASE a', 'ending', 'commits']) assert.equal(parsedWhenAborted(sql), false, sql);
  });
});

describe('statementParameters and abortedBindError (exec_bind_message in an aborted transaction, seed 31078)', () => {
  const params = (sql: string, types: number[] = []): number => statementParameters(encodeParse('s', sql, types), sql);
  test('declared types, extended to the highest $n referenced', () => {
    assert.equal(params('SELECT 1'), 0);
    assert.equal(params('SELECT $1::int'), 1);
    assert.equal(params('SELECT $2::int, $1::text'), 2);
    assert.equal(params('SELECT 1', [23, 25]), 2);
    assert.equal(params('SELECT $1::int', [23, 25, 25]), 3);
    assert.equal(params("SELECT '$1', $$ $3 $$, \"$2\" FROM t -- $4\n"), 0);
    assert.equal(params('INSERT INTO t VALUES ($1)'), 1);
  });
  test('not sure: an unterminated literal, $n in a utility statement', () => {
    assert.equal(params("SELECT 'x"), -1);
    assert.equal(params('PREPARE q AS SELECT $1'), -1);
    assert.equal(params('SET work_mem = 1', []), 0);
  });
  test('the parameter formats, then the count (08P01), then the aborted state (25P02)', () => {
    const err = (bind: Buffer, p: number): string => { const e = abortedBindError(bind, 0, bind.length, 's1', p); return `${e?.code} ${e?.message}`; };
    assert.equal(err(encodeBind('', 's1', []), 1), '08P01 bind message supplies 0 parameters, but prepared statement "s1" requires 1');
    assert.equal(err(encodeBind('p', 's1', ['1', '2']), 1), '08P01 bind message supplies 2 parameters, but prepared statement "s1" requires 1');
    assert.equal(err(encodeBind('p', 's1', ['1']), 1), '25P02 current transaction is aborted, commands ignored until end of transaction block');
    assert.equal(err(encodeBind('p', 's1', [Buffer.from([0, 0, 0, 1]), '2']), 2), '25P02 current transaction is aborted, commands ignored until end of transaction block');
    // two parameter formats, one parameter
    const b = encodeBind('p', 's1', [Buffer.from([0, 0, 0, 1]), '2']);
    const odd = Buffer.concat([b.subarray(0, 10), Buffer.from([0, 2, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 7, 0, 0])]);
    odd.writeInt32BE(odd.length - 1, 1);
    assert.equal(err(odd, 1), '08P01 bind message has 2 parameter formats but 1 parameters');
  });
});

describe('abortedDescribe (exec_describe_statement_message in an aborted transaction, seed 60067)', () => {
  const d = (sql: string, types: number[] = []): string => {
    const r = abortedDescribe(encodeParse('s', sql, types), sql);
    return r === null ? 'unsure' : r === 'rows' ? 'rows' : r.toString('hex');
  };
  test('rows: refused; no rows: its parameter types and NoData; unsure otherwise', () => {
    assert.equal(d('SELECT $1::int'), 'rows');
    assert.equal(d('DELETE FROM t WHERE v = $1 RETURNING v'), 'rows');
    assert.equal(d("SET work_mem = '4MB'"), '7400000006' + '0000' + '6e00000004');
    assert.equal(d('INSERT INTO t VALUES ($1)', [23]), '740000000a' + '0001' + '00000017' + '6e00000004');
    assert.equal(d('INSERT INTO t VALUES ($1::int)'), 'unsure'); // (an inferred type)
    assert.equal(d('SELECT 1 INTO t2'), 'unsure');
    assert.equal(d('WITH x AS (DELETE FROM t) SELECT 1'), 'unsure');
    assert.equal(d('CREATE TABLE t3 (v int)'), 'unsure');
  });
});

describe('bodyChangesSession (function bodies, transaction pooling)', () => {
  test('session-state statements in a body pin; transaction-scoped ones and DML do not', () => {
    const pins = [
      "BEGIN PERFORM set_config('search_path', 'x', false); END",
      'BEGIN\n  SET search_path = x;\nEND',
      "SET work_mem = '8MB'; SELECT 1",
      'BEGIN IF true THEN RESET ALL; END IF; END',
      "BEGIN EXECUTE 'SET statement_timeout = 5'; END",
      'BEGIN EXECUTE sql_text; END',
      'BEGIN PERFORM pg_advisory_lock(1); END',
      'BEGIN PERFORM pg_try_advisory_lock_shared(1); END',
      'BEGIN CREATE TEMP TABLE t (x int); END',
      'BEGIN CREATE TEMPORARY TABLE IF NOT EXISTS t (x int); END',
      'BEGIN LISTEN ch; END',
      'PREPARE p AS SELECT 1',
      '-- a comment\nSET x.y = 1',
    ];
    for (const b of pins) assert.notEqual(bodyChangesSession(b), '', b);
    assert.notEqual(bodyChangesSession(null), '', 'another language: unknown');
    const clean = [
      'SELECT i + 1',
      'BEGIN UPDATE t SET x = 1; INSERT INTO t VALUES (1) ON CONFLICT (x) DO UPDATE SET x = 2; END',
      "BEGIN PERFORM set_config('app.user', 'u', true); END",
      'BEGIN SET LOCAL search_path = x; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; END',
      'BEGIN PERFORM pg_advisory_xact_lock(1); END',
      "BEGIN EXECUTE format('UPDATE %I SET x = 1', tbl); END",
      'BEGIN ALTER TABLE t SET (fillfactor = 70); RETURN settings; END',
    ];
    for (const b of clean) assert.equal(bodyChangesSession(b), '', b);
  });
});
