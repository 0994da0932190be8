/** Server→client codecs: fixtures from the independent byte builder, roundtrips, hostile input. */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodeAuthentication,
  decodeBackendKeyData,
  decodeCommandComplete,
  decodeDataRow,
  decodeErrorFields,
  decodeNegotiateProtocolVersion,
  decodeNotification,
  decodeParameterStatus,
  decodeReadyForQuery,
  decodeRowDescription,
  encodeAuthentication,
  encodeBackendKeyData,
  encodeCommandComplete,
  encodeDataRow,
  encodeEmptyQueryResponse,
  encodeErrorResponse,
  encodeNegotiateProtocolVersion,
  encodeNoticeResponse,
  encodeNotification,
  encodeParameterStatus,
  encodeReadyForQuery,
  encodeResultSet,
  encodeRowDescription,
  type AuthenticationMessage,
} from '../../../src/protocol/backend';
import { TxStatus } from '../../../src/protocol/codes';
import { ErrorFieldCode, ErrorFieldNameByByte, ErrorFieldOrder } from '../../../src/protocol/error-fields';
import { ProtocolDecodeError } from '../../../src/protocol/reader';
import { cstr, i16, i32, lenBytes, msg, u32, u8 } from '../../fixtures/bytes';
import { assertHardened } from '../../fixtures/decode-hardening';

const whole = <T>(decode: (b: Buffer, s: number, e: number) => T, b: Buffer): T => decode(b, 0, b.length);

describe('Authentication', () => {
  const cases: [AuthenticationMessage, Buffer][] = [
    [{ type: 'AuthenticationOk' }, msg('R', i32(0))],
    [{ type: 'AuthenticationCleartextPassword' }, msg('R', i32(3))],
    [{ type: 'AuthenticationMD5Password', salt: Buffer.from([1, 2, 3, 4]) }, msg('R', i32(5), Buffer.from([1, 2, 3, 4]))],
    [{ type: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'] }, msg('R', i32(10), cstr('SCRAM-SHA-256-PLUS'), cstr('SCRAM-SHA-256'), u8(0))],
    [{ type: 'AuthenticationSASLContinue', data: Buffer.from('r=abc,s=xyz,i=4096') }, msg('R', i32(11), Buffer.from('r=abc,s=xyz,i=4096'))],
    [{ type: 'AuthenticationSASLFinal', data: Buffer.from('v=sig') }, msg('R', i32(12), Buffer.from('v=sig'))],
  ];
  it('decodes hand-built fixtures', () => {
    for (const [expected, bytes] of cases) assert.deepEqual(whole(decodeAuthentication, bytes), expected);
  });
  it('encodes to the same bytes and roundtrips', () => {
    for (const [m, bytes] of cases) {
      if (m.type === 'AuthenticationUnsupported') continue;
      const enc = encodeAuthentication(m);
      assert.deepEqual(enc, bytes, m.type);
      assert.deepEqual(whole(decodeAuthentication, enc), m);
    }
  });
  it('reports unsupported methods (GSS, SSPI) instead of failing', () => {
    assert.deepEqual(whole(decodeAuthentication, msg('R', i32(7))), { type: 'AuthenticationUnsupported', code: 7 });
  });
  it('copies salt and SASL data out of the frame', () => {
    const f = msg('R', i32(5), Buffer.from([1, 2, 3, 4]));
    const d = whole(decodeAuthentication, f);
    f.fill(0);
    assert.deepEqual(d, { type: 'AuthenticationMD5Password', salt: Buffer.from([1, 2, 3, 4]) });
  });
  it('rejects malformed frames with ProtocolDecodeError only', () => {
    for (const [, bytes] of cases) assertHardened(decodeAuthentication, bytes);
    assert.throws(() => whole(decodeAuthentication, msg('R', i32(10), cstr('SCRAM-SHA-256'))), /terminator/);
    assert.throws(() => whole(decodeAuthentication, msg('R', i32(5), Buffer.from([1, 2, 3]))), ProtocolDecodeError);
    assert.throws(() => whole(decodeAuthentication, msg('Z', u8('I'))), ProtocolDecodeError);
  });
});

describe('ParameterStatus / BackendKeyData / ReadyForQuery / Notification', () => {
  it('ParameterStatus fixture + roundtrip', () => {
    const f = msg('S', cstr('client_encoding'), cstr('UTF8'));
    assert.deepEqual(whole(decodeParameterStatus, f), { name: 'client_encoding', value: 'UTF8' });
    assert.deepEqual(encodeParameterStatus('client_encoding', 'UTF8'), f);
    assert.deepEqual(whole(decodeParameterStatus, encodeParameterStatus('application_name', 'ünï')), { name: 'application_name', value: 'ünï' });
    assertHardened(decodeParameterStatus, f);
  });
  it('BackendKeyData fixture + roundtrip (unsigned secret)', () => {
    const f = msg('K', i32(4242), u32(0xdeadbeef));
    assert.deepEqual(whole(decodeBackendKeyData, f), { pid: 4242, secret: 0xdeadbeef, key: u32(0xdeadbeef) });
    assert.deepEqual(encodeBackendKeyData(4242, 0xdeadbeef), f);
    assert.deepEqual(encodeBackendKeyData(4242, -559038737), f, 'signed input writes the same bits');
    assertHardened(decodeBackendKeyData, f);
    // Protocol 3.2 keys are 4 to 256 bytes (protocol-3-2.test.ts); 3 bytes is not a key.
    assert.throws(() => whole(decodeBackendKeyData, msg('K', i32(1), u8(1), u8(2), u8(3))), ProtocolDecodeError);
  });
  it('ReadyForQuery fixture + roundtrip, invalid status rejected', () => {
    for (const [ch, code] of [['I', TxStatus.Idle], ['T', TxStatus.InTransaction], ['E', TxStatus.Failed]] as const) {
      const f = msg('Z', u8(ch));
      assert.equal(whole(decodeReadyForQuery, f), code);
      assert.deepEqual(encodeReadyForQuery(ch), f);
      assert.deepEqual(encodeReadyForQuery(code), f);
      assertHardened(decodeReadyForQuery, f);
    }
    assert.throws(() => whole(decodeReadyForQuery, msg('Z', u8('X'))), /invalid transaction status/);
    assert.throws(() => whole(decodeReadyForQuery, msg('Z', u8('I'), u8('I'))), ProtocolDecodeError);
  });
  it('NotificationResponse fixture + roundtrip', () => {
    const f = msg('A', i32(77), cstr('chan'), cstr('payload'));
    assert.deepEqual(whole(decodeNotification, f), { pid: 77, channel: 'chan', payload: 'payload' });
    assert.deepEqual(encodeNotification(77, 'chan', 'payload'), f);
    assertHardened(decodeNotification, f);
  });
});

describe('ErrorResponse / NoticeResponse', () => {
  it('the field map is complete and bijective', () => {
    assert.equal(ErrorFieldOrder.length, 18);
    assert.deepEqual(ErrorFieldOrder.slice(0, 4), ['severity', 'severityNonLocalized', 'code', 'message']);
    const codes = new Set(Object.values(ErrorFieldCode));
    assert.equal(codes.size, 18);
    assert.deepEqual([...codes].sort(), ['C', 'D', 'F', 'H', 'L', 'M', 'P', 'R', 'S', 'V', 'W', 'c', 'd', 'n', 'p', 'q', 's', 't'].sort());
    for (const name of ErrorFieldOrder) assert.equal(ErrorFieldNameByByte[ErrorFieldCode[name].charCodeAt(0)], name);
  });

  it('decodes a PostgreSQL-style error (localized S, unknown field ignored)', () => {
    const f = msg(
      'E',
      u8('S'), cstr('ERREUR'),
      u8('V'), cstr('ERROR'),
      u8('C'), cstr('42P01'),
      u8('M'), cstr('relation "nope" does not exist'),
      u8('P'), cstr('15'),
      u8('Z'), cstr('future field'),
      u8('F'), cstr('parse_relation.c'),
      u8('L'), cstr('1392'),
      u8('R'), cstr('parserOpenTable'),
      u8(0),
    );
    assert.deepEqual(whole(decodeErrorFields, f), {
      severity: 'ERREUR',
      severityNonLocalized: 'ERROR',
      code: '42P01',
      message: 'relation "nope" does not exist',
      position: '15',
      file: 'parse_relation.c',
      line: '1392',
      routine: 'parserOpenTable',
    });
    assertHardened(decodeErrorFields, f);
  });

  it('encodes S and V from severity, then C, M and the optional fields', () => {
    const f = encodeErrorResponse({ severity: 'FATAL', code: '28P01', message: 'password authentication failed for user "bob"', hint: 'check pool_passwd', position: 3 });
    assert.deepEqual(
      f,
      msg('E', u8('S'), cstr('FATAL'), u8('V'), cstr('FATAL'), u8('C'), cstr('28P01'), u8('M'), cstr('password authentication failed for user "bob"'), u8('H'), cstr('check pool_passwd'), u8('P'), cstr('3'), u8(0)),
    );
  });

  it('roundtrips every field for both E and N', () => {
    const fields = {
      severity: 'WARNING', code: '01000', message: 'm', detail: 'd', hint: 'h', position: '1', where: 'w',
      schema: 'public', table: 't', column: 'c', dataType: 'int4', constraint: 'k', file: 'f.c', line: '9', routine: 'r',
    } as const;
    const expected = { ...fields, severityNonLocalized: 'WARNING' };
    assert.deepEqual(whole(decodeErrorFields, encodeErrorResponse(fields)), expected);
    const notice = encodeNoticeResponse(fields);
    assert.equal(notice[0], 'N'.charCodeAt(0));
    assert.deepEqual(whole(decodeErrorFields, notice), expected);
  });

  it('missing terminator or value throws ProtocolDecodeError', () => {
    assert.throws(() => whole(decodeErrorFields, msg('E', u8('S'), cstr('ERROR'))), ProtocolDecodeError);
    assert.throws(() => whole(decodeErrorFields, msg('E', u8('S'), Buffer.from('ERROR'))), /missing NUL/);
    assert.throws(() => whole(decodeErrorFields, msg('E', u8('S'), cstr('ERROR'), u8(0), u8(0))), /trailing/);
  });
});

describe('result sets', () => {
  const rdFixture = msg(
    'T',
    i16(2),
    cstr('node_id'), i32(0), i16(0), i32(25), i16(-1), i32(-1), i16(0),
    cstr('lb_weight'), i32(16384), i16(3), i32(701), i16(8), i32(-1), i16(1),
  );
  const rdDecoded = [
    { name: 'node_id', tableOid: 0, columnAttr: 0, typeOid: 25, typeSize: -1, typeMod: -1, format: 0 },
    { name: 'lb_weight', tableOid: 16384, columnAttr: 3, typeOid: 701, typeSize: 8, typeMod: -1, format: 1 },
  ];

  it('RowDescription fixture, defaults and roundtrip', () => {
    assert.deepEqual(whole(decodeRowDescription, rdFixture), rdDecoded);
    assert.deepEqual(encodeRowDescription([{ name: 'node_id' }, { name: 'lb_weight', tableOid: 16384, columnAttr: 3, typeOid: 701, typeSize: 8, format: 1 }]), rdFixture);
    assert.deepEqual(whole(decodeRowDescription, encodeRowDescription(rdDecoded)), rdDecoded);
    assert.deepEqual(whole(decodeRowDescription, encodeRowDescription([{ name: 'x', typeOid: 0 }]))[0]?.typeOid, 0);
    assertHardened(decodeRowDescription, rdFixture);
  });

  it('DataRow fixture with NULL and multibyte text, roundtrip', () => {
    const f = msg('D', i16(3), lenBytes('0'), lenBytes(null), lenBytes('ünï'));
    assert.deepEqual(whole(decodeDataRow, f), ['0', null, 'ünï']);
    assert.deepEqual(encodeDataRow(['0', null, 'ünï']), f);
    assert.deepEqual(whole(decodeDataRow, encodeDataRow([])), []);
    const big = 'x'.repeat(100_000);
    assert.deepEqual(whole(decodeDataRow, encodeDataRow([big, ''])), [big, '']);
    assertHardened(decodeDataRow, f);
    assert.throws(() => whole(decodeDataRow, msg('D', i16(1), i32(-2))), ProtocolDecodeError);
  });

  it('CommandComplete and EmptyQueryResponse', () => {
    assert.deepEqual(encodeCommandComplete('SELECT 2'), msg('C', cstr('SELECT 2')));
    assert.equal(whole(decodeCommandComplete, msg('C', cstr('INSERT 0 1'))), 'INSERT 0 1');
    assertHardened(decodeCommandComplete, msg('C', cstr('INSERT 0 1')));
    assert.deepEqual(encodeEmptyQueryResponse(), msg('I'));
  });

  it('encodeResultSet = RowDescription + DataRows + CommandComplete in one buffer', () => {
    const out = encodeResultSet([{ name: 'a' }, { name: 'b', typeOid: 23, typeSize: 4 }], [['1', null], ['2', 'x']], 'SELECT 2');
    const expected = Buffer.concat([
      msg('T', i16(2), cstr('a'), i32(0), i16(0), i32(25), i16(-1), i32(-1), i16(0), cstr('b'), i32(0), i16(0), i32(23), i16(4), i32(-1), i16(0)),
      msg('D', i16(2), lenBytes('1'), lenBytes(null)),
      msg('D', i16(2), lenBytes('2'), lenBytes('x')),
      msg('C', cstr('SELECT 2')),
    ]);
    assert.deepEqual(out, expected);
    assert.deepEqual(encodeResultSet([{ name: 'a' }], [], 'SELECT 0'), Buffer.concat([encodeRowDescription([{ name: 'a' }]), msg('C', cstr('SELECT 0'))]));
    assert.throws(() => encodeResultSet([{ name: 'a' }], [['1', '2']], 'SELECT 1'), RangeError);
    // The shared writer is clean after the failure.
    assert.deepEqual(encodeCommandComplete('OK'), msg('C', cstr('OK')));
  });
});

describe('NegotiateProtocolVersion', () => {
  it('fixture + roundtrip', () => {
    const f = msg('v', i32(0x00030000), i32(2), cstr('_pq_.a'), cstr('_pq_.b'));
    assert.deepEqual(whole(decodeNegotiateProtocolVersion, f), { version: 0x00030000, unsupportedOptions: ['_pq_.a', '_pq_.b'] });
    assert.deepEqual(encodeNegotiateProtocolVersion(0x00030000, ['_pq_.a', '_pq_.b']), f);
    assert.deepEqual(whole(decodeNegotiateProtocolVersion, encodeNegotiateProtocolVersion(0x00030000)), { version: 0x00030000, unsupportedOptions: [] });
    assertHardened(decodeNegotiateProtocolVersion, f);
  });
});
