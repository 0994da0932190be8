/** Startup-phase packets: fixtures, roundtrips and the validation PostgreSQL's postmaster applies. */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProtocolDecodeError } from '../../../src/protocol/reader';
import { decodeStartupPacket, encodeCancelRequest, encodeGSSENCRequest, encodeSSLRequest, encodeStartupMessage, replicationMode } from '../../../src/protocol/startup';
import { cstr, i16, i32, startupPacket, u32, u8 } from '../../fixtures/bytes';
import { assertHardened } from '../../fixtures/decode-hardening';

const decode = (b: Buffer) => decodeStartupPacket(b, 0, b.length);

describe('StartupMessage', () => {
  const f = startupPacket(i16(3), i16(0), cstr('user'), cstr('bob'), cstr('database'), cstr('app'), cstr('application_name'), cstr('psql'), cstr('options'), cstr('-c search_path=x'), u8(0));
  const params = { user: 'bob', database: 'app', application_name: 'psql', options: '-c search_path=x' };

  it('decodes a hand-built packet', () => {
    assert.deepEqual(decode(f), { type: 'Startup', protocol: { major: 3, minor: 0 }, params });
  });

  it('encodes the same bytes and roundtrips (incl. 3.2 and unicode)', () => {
    assert.deepEqual(encodeStartupMessage(params), f);
    const params2 = JSON.parse('{"user":"ünï","_pq_.opt":"1","__proto__":"not a prototype"}') as Record<string, string>;
    assert.deepEqual(decode(encodeStartupMessage(params2, { major: 3, minor: 2 })), { type: 'Startup', protocol: { major: 3, minor: 2 }, params: params2 });
  });

  it('rejects what PostgreSQL rejects, always with ProtocolDecodeError', () => {
    assert.throws(() => decode(startupPacket(i16(3), i16(0), cstr('database'), cstr('x'), u8(0))), /no PostgreSQL user name/);
    assert.throws(() => decode(startupPacket(i16(3), i16(0), cstr('user'), cstr(''), u8(0))), /no PostgreSQL user name/);
    assert.throws(() => decode(startupPacket(i16(3), i16(0), cstr('user'), u8(0))), /has no value/);
    assert.throws(() => decode(startupPacket(i16(3), i16(0), cstr('user'), cstr('bob'))), /missing final NUL/);
    assert.throws(() => decode(startupPacket(i16(3), i16(0), cstr('user'), Buffer.from('bob'))), ProtocolDecodeError);
    assert.throws(() => decode(startupPacket(i16(3), i16(0), cstr('user'), cstr('bob'), u8(0), u8(0))), /after the parameter list/);
    assert.throws(() => decode(startupPacket(i16(2), i16(0), cstr('user'), cstr('bob'), u8(0))), /unsupported frontend protocol 2\.0/);
    assert.throws(() => decode(startupPacket(i16(4), i16(0), cstr('user'), cstr('bob'), u8(0))), ProtocolDecodeError);
    const lying = Buffer.from(f);
    lying.writeInt32BE(f.length + 1, 0);
    assert.throws(() => decode(lying), /length field/);
    assert.throws(() => decode(Buffer.alloc(4)), ProtocolDecodeError);
    const huge = startupPacket(i16(3), i16(0), cstr('user'), cstr('x'.repeat(10_000)), u8(0));
    assert.throws(() => decode(huge), /too long/);
    assertHardened(decodeStartupPacket, f, 4);
  });
});

describe('special requests', () => {
  it('SSLRequest / GSSENCRequest fixtures and encoders', () => {
    const ssl = startupPacket(i32(80877103));
    assert.deepEqual(decode(ssl), { type: 'SSLRequest' });
    assert.deepEqual(encodeSSLRequest(), ssl);
    const gss = startupPacket(i32(80877104));
    assert.deepEqual(decode(gss), { type: 'GSSENCRequest' });
    assert.deepEqual(encodeGSSENCRequest(), gss);
    assert.throws(() => decode(startupPacket(i32(80877103), i32(0))), ProtocolDecodeError);
    assertHardened(decodeStartupPacket, ssl, 4);
  });

  it('CancelRequest fixture and roundtrip (unsigned secret)', () => {
    const c = startupPacket(i32(80877102), i32(4242), u32(0xdeadbeef));
    assert.deepEqual(decode(c), { type: 'CancelRequest', pid: 4242, secret: 0xdeadbeef, key: u32(0xdeadbeef) });
    assert.deepEqual(encodeCancelRequest(4242, 0xdeadbeef), c);
    assert.throws(() => decode(startupPacket(i32(80877102), i32(1))), /cancel key of 0 byte\(s\), must be 4 to 256/);
    assertHardened(decodeStartupPacket, c, 4);
  });

  it('unknown 1234.x request codes are reported, not thrown', () => {
    assert.deepEqual(decode(startupPacket(i32((1234 << 16) | 9999))), { type: 'Unknown', code: (1234 << 16) | 9999 });
  });
});

describe('replication parameter (the server\'s parse_bool)', () => {
  const mode = (v?: string) => replicationMode(v === undefined ? { user: 'u' } : { user: 'u', replication: v });
  it('database is logical, exactly', () => {
    assert.equal(mode('database'), 'logical');
    assert.equal(mode('Database'), 'invalid');
  });
  it('true booleans and their unique prefixes are physical', () => {
    for (const v of ['true', 'TRUE', 't', 'tr', 'yes', 'y', 'on', 'ON', '1']) assert.equal(mode(v), 'physical', v);
  });
  it('false booleans (and no parameter) are ordinary connections', () => {
    for (const v of ['false', 'f', 'fa', 'no', 'n', 'off', 'of', 'OFF', '0']) assert.equal(mode(v), null, v);
    assert.equal(mode(), null);
  });
  it('anything else is invalid (the server refuses it with 22023)', () => {
    for (const v of ['', 'o', 'truex', 'onn', '2', '01', ' true', 'logical']) assert.equal(mode(v), 'invalid', JSON.stringify(v));
  });
});
