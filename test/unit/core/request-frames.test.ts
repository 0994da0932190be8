/** request-frames.ts alone: what a request's frames mean, on byte sequences built by hand. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { afterFirstExecute, endsWhole, failsFirstWhenAborted, frontRefusedWhenAborted, leadingCloses } from '../../../src/core/request-frames';
import { newRequest, type Request } from '../../../src/core/request';
import { Statements } from '../../../src/core/statements';
import { Term } from '../../../src/core/link';
import type { QueryClass } from '../../../src/classify/types';
import { cstr, i16, i32, lenBytes, msg, str, u8 } from '../../fixtures/bytes';

const parse = (name: string, sql: string, types: number[] = []): Buffer => msg('P', cstr(name), cstr(sql), i16(types.length), ...types.map(i32));
const bind = (stmt: string, params: string[] = [], portal = ''): Buffer =>
  msg('B', cstr(portal), cstr(stmt), i16(0), i16(params.length), ...params.map(lenBytes), i16(0));
const describeS = (name: string): Buffer => msg('D', u8('S'), cstr(name));
const describeP = (name: string): Buffer => msg('D', u8('P'), cstr(name));
const closeS = (name: string): Buffer => msg('C', u8('S'), cstr(name));
const execute = (): Buffer => msg('E', cstr(''), i32(0));
const sync = (): Buffer => msg('S');
const copyData = (s: string): Buffer => msg('d', str(s));
const cat = (...b: Buffer[]): Buffer => Buffer.concat(b);

const cls = (kind: QueryClass['kind']): QueryClass =>
  ({ kind, readOnly: kind === 'read', statements: 1, functions: [], relations: [], flags: { parsedBy: 'lexer' } });

/** A session whose client has defined `defs` (name → SQL) with Parse. */
function statements(defs: Record<string, string>): Statements {
  const s = new Statements();
  for (const [name, sql] of Object.entries(defs)) s.parsed(name, parse(name, sql), sql, cls('read'), 0);
  return s;
}

function request(data: Buffer, term: Term, copyOnly = false): Request {
  const r = newRequest();
  r.data = data;
  r.term = term;
  r.copyOnly = copyOnly;
  return r;
}

describe('endsWhole', () => {
  test('a request cut at Sync or Query ends whole; one cut at a Flush or early does not', () => {
    assert.equal(endsWhole(request(cat(parse('', 'SELECT 1'), sync()), Term.Sync)), true);
    assert.equal(endsWhole(request(msg('Q', cstr('SELECT 1')), Term.Query)), true);
    assert.equal(endsWhole(request(cat(parse('', 'SELECT 1'), msg('H')), Term.None)), false);
  });
  test('COPY data ends whole only with its CopyDone or CopyFail last', () => {
    assert.equal(endsWhole(request(cat(copyData('1\n'), copyData('2\n')), Term.None, true)), false);
    assert.equal(endsWhole(request(cat(copyData('1\n'), msg('c')), Term.None, true)), true);
    assert.equal(endsWhole(request(cat(copyData('1\n'), msg('f', cstr('stop'))), Term.None, true)), true);
    assert.equal(endsWhole(request(Buffer.alloc(0), Term.None, true)), false);
  });
});

describe('leadingCloses', () => {
  test('the end of the Close frames a request begins with, and their count', () => {
    const closes = cat(closeS('a'), closeS('b'));
    assert.deepEqual(leadingCloses(cat(closes, bind('a'), execute(), sync())), [closes.length, 2]);
    assert.deepEqual(leadingCloses(cat(bind('a'), closeS('a'))), [0, 0]);
    assert.deepEqual(leadingCloses(closes), [closes.length, 2]);
    assert.deepEqual(leadingCloses(Buffer.alloc(0)), [0, 0]);
  });
  test('a truncated last frame ends at the data', () => {
    const data = cat(closeS('a'), closeS('b').subarray(0, 6));
    assert.deepEqual(leadingCloses(data), [data.length, 2]);
  });
});

describe('afterFirstExecute', () => {
  test('split after the first Execute when a Bind, Describe or Parse follows it', () => {
    const head = cat(closeS('x'), bind('a'), execute());
    assert.deepEqual(afterFirstExecute(cat(head, bind('b'), execute(), sync())), [head.length, 3]);
    assert.deepEqual(afterFirstExecute(cat(head, parse('c', 'SELECT 2'), sync())), [head.length, 3]);
    assert.deepEqual(afterFirstExecute(cat(head, describeP(''), sync())), [head.length, 3]);
  });
  test('no split when nothing but a Sync or a Close follows, or there is no Execute', () => {
    assert.deepEqual(afterFirstExecute(cat(bind('a'), execute(), sync())), [0, 0]);
    assert.deepEqual(afterFirstExecute(cat(bind('a'), execute(), closeS('a'), sync())), [0, 0]);
    assert.deepEqual(afterFirstExecute(cat(parse('', 'SELECT 1'), bind(''), sync())), [0, 0]);
  });
});

describe('frontRefusedWhenAborted', () => {
  const st = statements({ s0: 'SELECT 1', s1: 'SELECT $1', done: 'COMMIT', upd: 'UPDATE t SET a = 1' });
  test('a Parse is refused first; a Close, an Execute or a short request is not', () => {
    assert.equal(frontRefusedWhenAborted(cat(parse('n', 'COMMIT'), sync()), st), true);
    assert.equal(frontRefusedWhenAborted(cat(closeS('s0'), sync()), st), false);
    assert.equal(frontRefusedWhenAborted(cat(execute(), sync()), st), false);
    assert.equal(frontRefusedWhenAborted(msg('S'), st), false);
  });
  test('a Bind of a statement the client has: 25P02 first unless its parameters do not match (08P01)', () => {
    assert.equal(frontRefusedWhenAborted(cat(bind('s0'), execute(), sync()), st), true);
    assert.equal(frontRefusedWhenAborted(cat(bind('s1', ['7']), execute(), sync()), st), true);
    assert.equal(frontRefusedWhenAborted(cat(bind('s1'), execute(), sync()), st), false);
    assert.equal(frontRefusedWhenAborted(cat(bind('done', ['x']), execute(), sync()), st), true, 'an exit statement is bound there');
  });
  test('a Bind of a statement the client lacks fails 26000 first', () => {
    assert.equal(frontRefusedWhenAborted(cat(bind('nope'), execute(), sync()), st), false);
  });
  test('a Describe of a statement returning rows is refused; one without rows is described; a portal is not judged', () => {
    assert.equal(frontRefusedWhenAborted(cat(describeS('s0'), sync()), st), true);
    assert.equal(frontRefusedWhenAborted(cat(describeS('upd'), sync()), st), false);
    assert.equal(frontRefusedWhenAborted(cat(describeS('nope'), sync()), st), false);
    assert.equal(frontRefusedWhenAborted(cat(describeP(''), sync()), st), false);
  });
});

describe('failsFirstWhenAborted', () => {
  const st = statements({ s0: 'SELECT 1', done: 'ROLLBACK' });
  test('a Parse of a statement other than a transaction exit, after any Closes', () => {
    assert.equal(failsFirstWhenAborted(cat(parse('n', 'SELECT 1'), sync()), st), true);
    assert.equal(failsFirstWhenAborted(cat(closeS('a'), closeS('b'), parse('n', 'SELECT 1'), sync()), st), true);
    assert.equal(failsFirstWhenAborted(cat(parse('n', 'ROLLBACK'), sync()), st), false);
  });
  test('a Bind or Describe of a statement the client lacks (26000), unless a Close of that name comes first', () => {
    assert.equal(failsFirstWhenAborted(cat(bind('nope'), execute(), sync()), st), true);
    assert.equal(failsFirstWhenAborted(cat(describeS('nope'), sync()), st), true);
    assert.equal(failsFirstWhenAborted(cat(describeS('s0'), sync()), st), false);
    assert.equal(failsFirstWhenAborted(cat(closeS('nope'), describeS('nope'), sync()), st), false);
  });
  test('a Bind of a non-exit statement the client has, whose parameter count is sure', () => {
    assert.equal(failsFirstWhenAborted(cat(bind('s0'), execute(), sync()), st), true);
    assert.equal(failsFirstWhenAborted(cat(bind('done'), execute(), sync()), st), false);
    assert.equal(failsFirstWhenAborted(cat(closeS('s0'), bind('s0'), execute(), sync()), st), false);
  });
  test('nothing but Closes, an Execute first, or a truncated frame: not sure', () => {
    assert.equal(failsFirstWhenAborted(cat(closeS('s0'), sync()), st), false);
    assert.equal(failsFirstWhenAborted(closeS('s0'), st), false);
    assert.equal(failsFirstWhenAborted(cat(execute(), sync()), st), false);
    assert.equal(failsFirstWhenAborted(bind('s0').subarray(0, 8), st), false);
  });
});
