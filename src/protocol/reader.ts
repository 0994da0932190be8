/**
 * BufferReader: a bounds-checked cursor over one frame (or part of one) in a larger Buffer.
 *
 * Decoders construct one per call (or reuse one via `reset`) over `(buf, start, end)` without
 * copying the bytes. Every read checks the end bound and throws ProtocolDecodeError on overrun,
 * so a malformed message from a peer can never surface as a RangeError or a silent garbage value.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-types.html
 */

/** A peer sent bytes that do not form a valid message (overrun, missing NUL, bad length/value). */
export class ProtocolDecodeError extends Error {
  override readonly name = 'ProtocolDecodeError';
}

/** Bounds-checked big-endian cursor over `buf[start, end)`. @see https://www.postgresql.org/docs/current/protocol-message-types.html */
export class BufferReader {
  buf: Buffer;
  pos: number;
  end: number;

  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    if (start < 0 || end > buf.length || start > end) {
      throw new ProtocolDecodeError(`invalid reader bounds [${start}, ${end}) over ${buf.length} bytes`);
    }
  }

  /** Point the cursor at another range (lets a hot caller reuse one reader). */
  reset(buf: Buffer, start: number, end: number): this {
    if (start < 0 || end > buf.length || start > end) {
      throw new ProtocolDecodeError(`invalid reader bounds [${start}, ${end}) over ${buf.length} bytes`);
    }
    this.buf = buf;
    this.pos = start;
    this.end = end;
    return this;
  }

  /** Bytes left before `end`. */
  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.end - this.pos < n) {
      throw new ProtocolDecodeError(`truncated message: need ${n} byte(s) for ${what} at offset ${this.pos}, ${this.end - this.pos} left`);
    }
  }

  /** Signed 8-bit integer. */
  int8(): number {
    this.need(1, 'int8');
    return this.buf.readInt8(this.pos++);
  }

  /** Unsigned byte (type bytes, Describe/Close kinds, status bytes). */
  uint8(): number {
    this.need(1, 'byte');
    return this.buf[this.pos++] as number;
  }

  /** Signed big-endian 16-bit integer. */
  int16(): number {
    this.need(2, 'int16');
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  /** Signed big-endian 32-bit integer. */
  int32(): number {
    this.need(4, 'int32');
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** Unsigned big-endian 32-bit integer (OIDs, pids, cancel secrets). */
  uint32(): number {
    this.need(4, 'uint32');
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** NUL-terminated UTF-8 string; the NUL must lie before `end`. */
  cstring(): string {
    const nul = this.buf.indexOf(0, this.pos);
    if (nul < 0 || nul >= this.end) {
      throw new ProtocolDecodeError(`missing NUL terminator for string at offset ${this.pos}`);
    }
    const s = this.buf.toString('utf8', this.pos, nul);
    this.pos = nul + 1;
    return s;
  }

  /** Skip a NUL-terminated string without decoding it; returns the offset of its first byte. */
  skipCstring(): number {
    const start = this.pos;
    const nul = this.buf.indexOf(0, start);
    if (nul < 0 || nul >= this.end) {
      throw new ProtocolDecodeError(`missing NUL terminator for string at offset ${start}`);
    }
    this.pos = nul + 1;
    return start;
  }

  /** `n` raw bytes as a view (no copy) into the underlying buffer; copy it if you keep it. */
  bytes(n: number): Buffer {
    if (n < 0) throw new ProtocolDecodeError(`negative byte count ${n} at offset ${this.pos}`);
    this.need(n, 'bytes');
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** `n` bytes decoded as UTF-8 (no terminator). */
  string(n: number): string {
    if (n < 0) throw new ProtocolDecodeError(`negative string length ${n} at offset ${this.pos}`);
    this.need(n, 'string');
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  /** Advance `n` bytes. */
  skip(n: number): void {
    if (n < 0) throw new ProtocolDecodeError(`negative skip ${n} at offset ${this.pos}`);
    this.need(n, 'skip');
    this.pos += n;
  }

  /** Throw unless the cursor consumed exactly up to `end` (catches trailing garbage / length lies). */
  expectEnd(what: string): void {
    if (this.pos !== this.end) {
      throw new ProtocolDecodeError(`${what}: ${this.end - this.pos} unexpected trailing byte(s)`);
    }
  }
}

/**
 * Validate a typed frame header at `buf[start]` (1 type byte + int32 length) against `end` and
 * return the body offset. Allocation-free, for hot decoders that walk the body by hand.
 * @see https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
 */
export function checkFrameHeader(buf: Buffer, start: number, end: number, expectedCode: number, what: string): number {
  if (start < 0 || end > buf.length || end - start < 5) {
    throw new ProtocolDecodeError(`${what}: frame shorter than its 5-byte header`);
  }
  if (buf[start] !== expectedCode) {
    throw new ProtocolDecodeError(`${what}: unexpected type byte 0x${(buf[start] as number).toString(16)}`);
  }
  const len = buf.readInt32BE(start + 1);
  if (len !== end - start - 1) {
    throw new ProtocolDecodeError(`${what}: length field ${len} does not match frame size ${end - start - 1}`);
  }
  return start + 5;
}

/**
 * Validate a typed frame header (see checkFrameHeader) and return a reader positioned on the body.
 * @see https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
 */
export function frameReader(buf: Buffer, start: number, end: number, expectedCode: number, what: string): BufferReader {
  return new BufferReader(buf, checkFrameHeader(buf, start, end, expectedCode, what), end);
}

/**
 * Offset of the NUL ending the C string that starts at `pos`, which must lie before `end`.
 * @see https://www.postgresql.org/docs/current/protocol-message-types.html
 */
export function findNul(buf: Buffer, pos: number, end: number, what: string): number {
  const nul = buf.indexOf(0, pos);
  if (nul < 0 || nul >= end) throw new ProtocolDecodeError(`${what}: missing NUL terminator at offset ${pos}`);
  return nul;
}
