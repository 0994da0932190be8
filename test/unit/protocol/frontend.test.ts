/** Client→server codecs: fixtures from the independent byte builder, roundtrips, hostile input. */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodeBind,
  decodeBindFull,
  decodeClose,
  decodeCopyFail,
  decodeDescribe,
  decodeExecute,
  decodeFunctionCall,
  decodeParse,
  decodePassword,
  decodeQuery,
  decodeSASLInitialResponse,
  decodeSASLResponse,
  encodeBind,
  encodeClose,
  encodeCopyData,
  encodeCopyDone,
  encodeCopyFail,
  encodeDescribe,
  encodeExecute,
  encodeFlush,
  encodeFunctionCall,
  encodeParse,
  encodePassword,
  encodeQuery,
  encodeSASLInitialResponse,
  encodeSASLResponse,
  encodeSync,
  encodeTerminate,
} from '../../../src/protocol/frontend';
import { ProtocolDecodeError } from '../../../src/protocol/reader';
import { cstr, i16, i32, lenBytes, msg, u32, u8 } from '../../fixtures/bytes';
import { assertHardened } from '../../fixtures/decode-hardening';

const whole = <T>(decode: (b: Buffer, s: number, e: number) => T, b: Buffer): T => decode(b, 0, b.length);

describe('Query', () => {
  it('fixture, roundtrip, hostile input', () => {
    const f = msg('Q', cstr('select 1'));
    assert.equal(whole(decodeQuery, f), 'select 1');
    assert.deepEqual(encodeQuery('select 1'), f);
    assert.equal(whole(decodeQuery, encodeQuery("select 'ünï' -- ✓")), "select 'ünï' -- ✓");
    assert.equal(whole(decodeQuery, encodeQuery('')), '');
    assertHardened(decodeQuery, f);
    assert.throws(() => whole(decodeQuery, msg('Q', Buffer.from('select 1'))), /missing NUL/);
    assert.throws(() => whole(decodeQuery, msg('Q', cstr('a'), cstr('b'))), /trailing/);
  });
});

describe('Parse', () => {
  it('fixture (pgbench-style), roundtrip, hostile input', () => {
    const sql = 'UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;';
    const f = msg('P', cstr('P0_1'), cstr(sql), i16(2), i32(23), u32(0xfffffff0));
    assert.deepEqual(whole(decodeParse, f), { name: 'P0_1', sql, paramTypes: [23, 0xfffffff0] });
    assert.deepEqual(encodeParse('P0_1', sql, [23, 0xfffffff0]), f);
    assert.deepEqual(whole(decodeParse, encodeParse('', 'select 1')), { name: '', sql: 'select 1', paramTypes: [] });
    assertHardened(decodeParse, f);
    assert.throws(() => whole(decodeParse, msg('P', cstr(''), cstr('x'), i16(1))), ProtocolDecodeError);
    assert.throws(() => whole(decodeParse, msg('P', cstr(''), cstr('x'), i16(-1))), ProtocolDecodeError);
  });
});

describe('Bind', () => {
  const f = msg(
    'B',
    cstr('portal'),
    cstr('stmt'),
    i16(3), i16(0), i16(1), i16(0),
    i16(3), lenBytes('42'), lenBytes(Buffer.from([0, 0, 0, 7])), lenBytes(null),
    i16(1), i16(1),
  );

  it('decodeBind reads names only; decodeBindFull reads everything', () => {
    assert.deepEqual(whole(decodeBind, f), { portal: 'portal', statement: 'stmt' });
    assert.deepEqual(whole(decodeBindFull, f), {
      portal: 'portal',
      statement: 'stmt',
      paramFormats: [0, 1, 0],
      params: [Buffer.from('42'), Buffer.from([0, 0, 0, 7]), null],
      resultFormats: [1],
    });
  });

  it('encodeBind matches the fixture; text-only binds send no format codes', () => {
    assert.deepEqual(encodeBind('portal', 'stmt', ['42', Buffer.from([0, 0, 0, 7]), null], [1]), f);
    const text = encodeBind('', 'P0_1', ['1', 'ünï']);
    assert.deepEqual(text, msg('B', cstr(''), cstr('P0_1'), i16(0), i16(2), lenBytes('1'), lenBytes('ünï'), i16(0)));
    assert.deepEqual(whole(decodeBind, text), { portal: '', statement: 'P0_1' });
    assert.deepEqual(whole(decodeBindFull, encodeBind('', '')), { portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] });
  });

  it('hostile input', () => {
    assertHardened(decodeBind, f);
    assertHardened(decodeBindFull, f);
    assert.throws(() => whole(decodeBindFull, msg('B', cstr(''), cstr(''), i16(0), i16(1), i32(-5), i16(0))), ProtocolDecodeError);
  });
});

describe('Describe / Close / Execute', () => {
  it('Describe and Close fixtures and roundtrips', () => {
    const d = msg('D', u8('S'), cstr('P0_1'));
    assert.deepEqual(whole(decodeDescribe, d), { kind: 'S', name: 'P0_1' });
    assert.deepEqual(encodeDescribe('S', 'P0_1'), d);
    assert.deepEqual(whole(decodeDescribe, encodeDescribe('P', '')), { kind: 'P', name: '' });
    const c = msg('C', u8('P'), cstr('cur'));
    assert.deepEqual(whole(decodeClose, c), { kind: 'P', name: 'cur' });
    assert.deepEqual(encodeClose('P', 'cur'), c);
    assert.deepEqual(whole(decodeClose, encodeClose('S', 's1')), { kind: 'S', name: 's1' });
    assertHardened(decodeDescribe, d);
    assertHardened(decodeClose, c);
    assert.throws(() => whole(decodeDescribe, msg('D', u8('X'), cstr('a'))), /invalid target kind/);
  });

  it('Execute fixture and roundtrip', () => {
    const e = msg('E', cstr(''), i32(0));
    assert.deepEqual(whole(decodeExecute, e), { portal: '', maxRows: 0 });
    assert.deepEqual(encodeExecute(), e);
    assert.deepEqual(whole(decodeExecute, encodeExecute('c1', 50)), { portal: 'c1', maxRows: 50 });
    assertHardened(decodeExecute, e);
  });

  it('Sync, Flush, Terminate, CopyDone constants', () => {
    assert.deepEqual(encodeSync(), msg('S'));
    assert.deepEqual(encodeFlush(), msg('H'));
    assert.deepEqual(encodeTerminate(), msg('X'));
    assert.deepEqual(encodeCopyDone(), msg('c'));
  });
});

describe('authentication responses', () => {
  it('PasswordMessage fixture and roundtrip', () => {
    const f = msg('p', cstr('md5a3576f1ae039b8996bc4fc2720f9c71a'));
    assert.equal(whole(decodePassword, f), 'md5a3576f1ae039b8996bc4fc2720f9c71a');
    assert.deepEqual(encodePassword('md5a3576f1ae039b8996bc4fc2720f9c71a'), f);
    assert.equal(whole(decodePassword, encodePassword('clear text ✓')), 'clear text ✓');
    assertHardened(decodePassword, f);
  });

  it('SASLInitialResponse fixture, roundtrip, absent data', () => {
    const first = 'n,,n=,r=rOprNGfwEbeRWgbNEkqO';
    const f = msg('p', cstr('SCRAM-SHA-256'), lenBytes(first));
    assert.deepEqual(whole(decodeSASLInitialResponse, f), { mechanism: 'SCRAM-SHA-256', data: Buffer.from(first) });
    assert.deepEqual(encodeSASLInitialResponse('SCRAM-SHA-256', first), f);
    assert.deepEqual(encodeSASLInitialResponse('SCRAM-SHA-256', Buffer.from(first)), f);
    const none = msg('p', cstr('SCRAM-SHA-256'), i32(-1));
    assert.deepEqual(encodeSASLInitialResponse('SCRAM-SHA-256', null), none);
    assert.deepEqual(whole(decodeSASLInitialResponse, none), { mechanism: 'SCRAM-SHA-256', data: Buffer.alloc(0) });
    assertHardened(decodeSASLInitialResponse, f);
    assert.throws(() => whole(decodeSASLInitialResponse, msg('p', cstr('X'), i32(-2))), ProtocolDecodeError);
  });

  it('SASLResponse fixture and roundtrip', () => {
    const f = msg('p', Buffer.from('c=biws,r=abc,p=xyz'));
    assert.deepEqual(whole(decodeSASLResponse, f), Buffer.from('c=biws,r=abc,p=xyz'));
    assert.deepEqual(encodeSASLResponse('c=biws,r=abc,p=xyz'), f);
    assertHardened(decodeSASLResponse, f);
  });
});

describe('COPY and FunctionCall', () => {
  it('CopyData / CopyFail', () => {
    assert.deepEqual(encodeCopyData('1\tfoo\n'), msg('d', Buffer.from('1\tfoo\n')));
    assert.deepEqual(encodeCopyData(Buffer.from([0, 1])), msg('d', Buffer.from([0, 1])));
    const fail = msg('f', cstr('aborted by user'));
    assert.deepEqual(encodeCopyFail('aborted by user'), fail);
    assert.equal(whole(decodeCopyFail, fail), 'aborted by user');
    assertHardened(decodeCopyFail, fail);
  });

  it('FunctionCall fixture and roundtrip (oid only)', () => {
    const f = msg('F', i32(1598), i16(2), i16(0), i16(1), i16(2), lenBytes('x'), lenBytes(Buffer.from([1])), i16(0));
    assert.deepEqual(whole(decodeFunctionCall, f), { oid: 1598 });
    assert.deepEqual(encodeFunctionCall(1598, ['x', Buffer.from([1])]), f);
    assert.deepEqual(whole(decodeFunctionCall, encodeFunctionCall(2000)), { oid: 2000 });
    assertHardened(decodeFunctionCall, f);
  });
});
