/** BufferReader bounds checks and BufferWriter framing, constant frames against the independent byte builder. */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BufferReader, ProtocolDecodeError, checkFrameHeader } from '../../../src/protocol/reader';
import {
  AuthOkFrame,
  BindCompleteFrame,
  BufferWriter,
  CloseCompleteFrame,
  FlushFrame,
  NoDataFrame,
  ParseCompleteFrame,
  ReadyForQueryFrames,
  SslNoFrame,
  SyncFrame,
  TerminateFrame,
} from '../../../src/protocol/writer';
import { cstr, i16, i32, msg, startupPacket, u32, u8 } from '../../fixtures/bytes';

describe('BufferReader', () => {
  it('reads primitives from hand-built bytes', () => {
    const b = Buffer.concat([u8(0xfe), i16(-2), i32(-3), u32(0xfffffff0), cstr('héllo'), Buffer.from([1, 2, 3])]);
    const r = new BufferReader(b, 0, b.length);
    assert.equal(r.int8(), -2);
    assert.equal(r.int16(), -2);
    assert.equal(r.int32(), -3);
    assert.equal(r.uint32(), 0xfffffff0);
    assert.equal(r.cstring(), 'héllo');
    assert.equal(r.remaining, 3);
    assert.deepEqual([...r.bytes(3)], [1, 2, 3]);
    assert.equal(r.remaining, 0);
    r.expectEnd('x');
  });

  it('respects start/end inside a larger buffer', () => {
    const b = Buffer.concat([cstr('skip'), cstr('abc'), cstr('after')]);
    const r = new BufferReader(b, 5, 9);
    assert.equal(r.cstring(), 'abc');
    assert.throws(() => r.uint8(), ProtocolDecodeError);
  });

  it('throws ProtocolDecodeError on every overrun and on a NUL beyond end', () => {
    const b = Buffer.concat([str4('abc'), Buffer.from([0])]);
    assert.throws(() => new BufferReader(b, 0, 0).int8(), ProtocolDecodeError);
    assert.throws(() => new BufferReader(b, 0, 1).int16(), ProtocolDecodeError);
    for (const read of [(r: BufferReader) => r.int32(), (r: BufferReader) => r.uint32(), (r: BufferReader) => r.bytes(4), (r: BufferReader) => r.string(4)]) {
      assert.throws(() => read(new BufferReader(b, 0, 3)), ProtocolDecodeError);
    }
    // The NUL at index 3 lies outside [0, 3).
    assert.throws(() => new BufferReader(b, 0, 3).cstring(), /missing NUL/);
    assert.throws(() => new BufferReader(b, 0, 4).bytes(-1), ProtocolDecodeError);
    assert.throws(() => new BufferReader(b, 0, 99), ProtocolDecodeError);
    assert.throws(() => new BufferReader(b, 0, 4).expectEnd('t'), ProtocolDecodeError);
  });

  it('checkFrameHeader validates type byte and length', () => {
    const f = msg('Q', cstr('x'));
    assert.equal(checkFrameHeader(f, 0, f.length, 0x51, 'Q'), 5);
    assert.throws(() => checkFrameHeader(f, 0, f.length, 0x50, 'P'), ProtocolDecodeError);
    assert.throws(() => checkFrameHeader(f, 0, f.length - 1, 0x51, 'Q'), /length field/);
    assert.throws(() => checkFrameHeader(f, 0, 4, 0x51, 'Q'), /5-byte header/);
  });
});

function str4(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

describe('BufferWriter', () => {
  it('frames a typed message with a back-filled length', () => {
    const w = new BufferWriter(8);
    const out = w.int8(1).int16(-2).int32(-3).cstring('héllo').string('ab').bytes(Buffer.from([9])).frame(0x58);
    assert.deepEqual(out, msg('X', u8(1), i16(-2), i32(-3), cstr('héllo'), Buffer.from('ab'), Buffer.from([9])));
  });

  it('is reusable: each frame is independent and not a view of the internal buffer', () => {
    const w = new BufferWriter(16);
    const a = w.cstring('first').frame(0x51);
    const b = w.cstring('second message that forces growth '.repeat(10)).frame(0x51);
    const c = w.cstring('third').frame(0x51);
    assert.deepEqual(a, msg('Q', cstr('first')));
    assert.deepEqual(b, msg('Q', cstr('second message that forces growth '.repeat(10))));
    assert.deepEqual(c, msg('Q', cstr('third')));
  });

  it('handles long, non-ASCII and mixed strings on both string paths', () => {
    const w = new BufferWriter(8);
    for (const s of ['a'.repeat(63) + 'é', 'é'.repeat(200), 'x'.repeat(5000) + '✓', '✓'.repeat(5000), '🐘 emoji', '']) {
      assert.deepEqual(w.cstring(s).string(s).frame(0x51), msg('Q', cstr(s), Buffer.from(s, 'utf8')), s.slice(0, 10));
    }
  });

  it('builds an untyped startup packet', () => {
    const w = new BufferWriter();
    assert.deepEqual(w.int32(80877103).startupFrame(), startupPacket(i32(80877103)));
  });

  it('append() chains several messages into one buffer', () => {
    const w = new BufferWriter(8);
    const out = w.cstring('a').append(0x51).append(0x53).cstring('b').frame(0x51);
    assert.deepEqual(out, Buffer.concat([msg('Q', cstr('a')), msg('S'), msg('Q', cstr('b'))]));
  });

  it('reserveInt32/fillInt32 back-fill a length', () => {
    const w = new BufferWriter(8);
    const at = w.reserveInt32();
    w.string('ünï');
    w.fillInt32(at, w.offset - at - 4);
    assert.deepEqual(w.frame(0x44), msg('D', i32(Buffer.byteLength('ünï')), Buffer.from('ünï')));
  });
});

describe('constant frames', () => {
  it('match hand-built bytes', () => {
    assert.deepEqual(ParseCompleteFrame, msg('1'));
    assert.deepEqual(BindCompleteFrame, msg('2'));
    assert.deepEqual(CloseCompleteFrame, msg('3'));
    assert.deepEqual(NoDataFrame, msg('n'));
    assert.deepEqual(SyncFrame, msg('S'));
    assert.deepEqual(FlushFrame, msg('H'));
    assert.deepEqual(TerminateFrame, msg('X'));
    assert.deepEqual(AuthOkFrame, msg('R', i32(0)));
    assert.deepEqual(ReadyForQueryFrames.I, msg('Z', u8('I')));
    assert.deepEqual(ReadyForQueryFrames.T, msg('Z', u8('T')));
    assert.deepEqual(ReadyForQueryFrames.E, msg('Z', u8('E')));
    assert.deepEqual(SslNoFrame, Buffer.from([0x4e]));
  });
});
