/**
 * Protocol 3.2 (PostgreSQL 18) byte sequences, built by the independent byte builder
 * (test/fixtures/bytes.ts) as PostgreSQL 18 and libpq 18 send them: a 3.2 StartupMessage,
 * BackendKeyData and CancelRequest with variable-length cancel keys (PostgreSQL 18 issues 32
 * bytes; the protocol allows up to 256), and the NegotiateProtocolVersion a 3.0 server answers.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProtocolDecodeError } from '../../../src/protocol/reader';
import { decodeBackendKeyData, decodeNegotiateProtocolVersion, encodeBackendKeyData, encodeNegotiateProtocolVersion } from '../../../src/protocol/backend';
import { decodeStartupPacket, encodeCancelRequest, negotiateProtocol } from '../../../src/protocol/startup';
import { cstr, hex, i16, i32, msg, startupPacket, u8 } from '../../fixtures/bytes';

const CANCEL_REQUEST_CODE = 80877102; // 1234 << 16 | 5678
/** A cancel key of n bytes: 0x00, 0x01, ... (mod 256), like a random key but recognisable. */
const keyOf = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => i & 0xff));

describe('protocol 3.2 StartupMessage', () => {
  it('decodes the minor version 2 and the _pq_ options libpq sends', () => {
    const bytes = startupPacket(i16(3), i16(2), cstr('user'), cstr('alice'), cstr('database'), cstr('app'), cstr('_pq_.test_option'), cstr('on'), u8(0));
    const p = decodeStartupPacket(bytes, 0, bytes.length);
    assert.equal(p.type, 'Startup');
    if (p.type !== 'Startup') return;
    assert.deepEqual(p.protocol, { major: 3, minor: 2 });
    assert.equal(p.params['_pq_.test_option'], 'on');
    // pgmaitre's answer: PostgreSQL 15's NegotiateProtocolVersion, byte for byte.
    const answer = negotiateProtocol(p);
    assert.equal(hex(answer!), hex(msg('v', i32(0x00030000), i32(1), cstr('_pq_.test_option'))));
    assert.equal(negotiateProtocol({ protocol: { major: 3, minor: 0 }, params: { user: 'alice' } }), null);
    assert.equal(hex(negotiateProtocol({ protocol: { major: 3, minor: 2 }, params: { user: 'alice' } })!), hex(msg('v', i32(196608), i32(0))));
  });
});

describe('NegotiateProtocolVersion', () => {
  it('encodes and decodes what a 3.0 server sends', () => {
    const bytes = msg('v', i32(196608), i32(2), cstr('_pq_.a'), cstr('_pq_.b'));
    assert.equal(hex(encodeNegotiateProtocolVersion(196608, ['_pq_.a', '_pq_.b'])), hex(bytes));
    assert.deepEqual(decodeNegotiateProtocolVersion(bytes, 0, bytes.length), { version: 196608, unsupportedOptions: ['_pq_.a', '_pq_.b'] });
  });
});

describe('BackendKeyData with variable-length keys', () => {
  for (const n of [4, 32, 256]) {
    it(`a ${n}-byte key: decoded as sent, encoded back to the same bytes`, () => {
      const bytes = msg('K', i32(4242), keyOf(n));
      const k = decodeBackendKeyData(bytes, 0, bytes.length);
      assert.equal(k.pid, 4242);
      assert.equal(hex(k.key), hex(keyOf(n)));
      assert.equal(k.secret, n === 4 ? 0x00010203 : -1);
      assert.equal(hex(encodeBackendKeyData(4242, keyOf(n))), hex(bytes));
    });
  }
  it('3.0 form: a 32-bit secret number', () => {
    const bytes = msg('K', i32(7), i32(-559038737));
    assert.equal(hex(encodeBackendKeyData(7, 0xdeadbeef)), hex(bytes));
    assert.equal(decodeBackendKeyData(bytes, 0, bytes.length).secret, 0xdeadbeef);
  });
  it('a key shorter than 4 or longer than 256 bytes is a protocol error', () => {
    for (const n of [0, 3, 257]) {
      const bytes = msg('K', i32(1), keyOf(n));
      assert.throws(() => decodeBackendKeyData(bytes, 0, bytes.length), ProtocolDecodeError, `${n} bytes`);
    }
    assert.throws(() => encodeBackendKeyData(1, keyOf(257)), RangeError);
  });
});

describe('CancelRequest with variable-length keys', () => {
  for (const n of [4, 32, 256]) {
    it(`a ${n}-byte key (${12 + n}-byte packet)`, () => {
      const bytes = startupPacket(i32(CANCEL_REQUEST_CODE), i32(4242), keyOf(n));
      const p = decodeStartupPacket(bytes, 0, bytes.length);
      assert.equal(p.type, 'CancelRequest');
      if (p.type !== 'CancelRequest') return;
      assert.equal(p.pid, 4242);
      assert.equal(hex(p.key), hex(keyOf(n)));
      assert.equal(p.secret, n === 4 ? 0x00010203 : -1);
      assert.equal(hex(encodeCancelRequest(4242, keyOf(n))), hex(bytes));
    });
  }
  it('3.0 form still a 16-byte packet with a 32-bit secret', () => {
    assert.equal(hex(encodeCancelRequest(1, 2)), hex(startupPacket(i32(CANCEL_REQUEST_CODE), i32(1), i32(2))));
  });
  it('a key shorter than 4 or longer than 256 bytes is refused', () => {
    for (const n of [0, 3, 257]) {
      const bytes = startupPacket(i32(CANCEL_REQUEST_CODE), i32(1), keyOf(n));
      assert.throws(() => decodeStartupPacket(bytes, 0, bytes.length), ProtocolDecodeError, `${n} bytes`);
    }
  });
});
