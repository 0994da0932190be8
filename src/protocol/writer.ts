/**
 * BufferWriter: builds one (or several back-to-back) protocol messages in a reusable buffer.
 *
 * Layout: the writer always keeps 5 bytes reserved for the current message's header. Callers
 * write the body, then `frame(code)` back-fills the type byte and the int32 length and returns an
 * exact-size copy, leaving the writer empty and ready for the next message. The internal buffer
 * only grows (doubling), so steady-state encoding allocates just the returned Buffer. The returned
 * Buffer is never a view of the internal one: sockets may hold on to it after `write()` returns.
 *
 * `append(code)` closes the current message and starts another in the same buffer, so a result set
 * (RowDescription + DataRows + CommandComplete) comes out as one Buffer and one socket write.
 *
 * @see https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
 */

import { Buffer } from 'node:buffer';
import { BackendCode, FrontendCode, TxStatus } from './codes';

const HEADER = 5;
/** Strings up to this many UTF-16 units take the hand-copy path in writeUtf8. */
const SHORT_STRING = 64;
/** Frames up to this many bytes are copied out by hand rather than with Buffer#copy. */
const SHORT_FRAME = 96;

/** Upper bound of a string's UTF-8 size: 3 bytes per UTF-16 unit avoids a byteLength pass, except for big strings where over-reserving would cost more. */
function maxUtf8(s: string): number {
  return s.length <= 4096 ? s.length * 3 : Buffer.byteLength(s, 'utf8');
}

/** Growable big-endian message builder with back-filled headers. @see https://www.postgresql.org/docs/current/protocol-message-types.html */
export class BufferWriter {
  private buf: Buffer;
  /** Offset of the current message's (reserved) header. */
  private msgStart = 0;
  private pos = HEADER;

  constructor(initialSize = 1024) {
    this.buf = Buffer.allocUnsafe(Math.max(initialSize, 64));
  }

  private ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Signed (or unsigned) 8-bit integer; only the low 8 bits are written. */
  int8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  /** Big-endian 16-bit integer (signed or unsigned input, low 16 bits written). */
  int16(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16BE(v & 0xffff, this.pos);
    this.pos += 2;
    return this;
  }

  /** Big-endian 32-bit integer (signed or unsigned input, low 32 bits written). */
  int32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }

  /** UTF-8 string followed by a NUL byte. The caller guarantees `s` contains no NUL. */
  cstring(s: string): this {
    this.ensure(maxUtf8(s) + 1);
    this.writeUtf8(s);
    this.buf[this.pos++] = 0;
    return this;
  }

  /** UTF-8 string without terminator. */
  string(s: string): this {
    this.ensure(maxUtf8(s));
    this.writeUtf8(s);
    return this;
  }

  /**
   * Short ASCII strings (the common case: names, tags, numbers) are copied char by char, which is
   * several times cheaper than a Buffer#write call; anything else goes through Buffer#write.
   * Capacity must already be ensured.
   */
  private writeUtf8(s: string): void {
    const n = s.length;
    if (n <= SHORT_STRING) {
      const buf = this.buf;
      let p = this.pos;
      for (let i = 0; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) {
          p = -1;
          break;
        }
        buf[p++] = c;
      }
      if (p >= 0) {
        this.pos = p;
        return;
      }
    }
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  /** Raw bytes. */
  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** Reserve 4 bytes for an int32 that is back-filled later with fillInt32; returns its offset. */
  reserveInt32(): number {
    this.ensure(4);
    const at = this.pos;
    this.pos += 4;
    return at;
  }

  /** Back-fill an int32 at an offset returned by reserveInt32. */
  fillInt32(at: number, v: number): this {
    this.buf.writeUInt32BE(v >>> 0, at);
    return this;
  }

  /** Current write offset (for computing lengths of back-filled fields). */
  get offset(): number {
    return this.pos;
  }

  /** Number of body bytes written to the current message so far. */
  get bodyLength(): number {
    return this.pos - this.msgStart - HEADER;
  }

  private closeMessage(code: number): void {
    this.buf[this.msgStart] = code;
    this.buf.writeUInt32BE(this.pos - this.msgStart - 1, this.msgStart + 1);
  }

  /** Close the current message with type `code` and start a new one in the same output. */
  append(code: number): this {
    this.closeMessage(code);
    this.msgStart = this.pos;
    this.ensure(HEADER);
    this.pos += HEADER;
    return this;
  }

  /** Close the current message with type `code`; return all messages built since the last frame as a new Buffer and reset. */
  frame(code: number): Buffer {
    this.closeMessage(code);
    const n = this.pos;
    const out = Buffer.allocUnsafe(n);
    if (n <= SHORT_FRAME) {
      const buf = this.buf;
      for (let i = 0; i < n; i++) out[i] = buf[i] as number;
    } else {
      this.buf.copy(out, 0, 0, n);
    }
    this.reset();
    return out;
  }

  /** Return the current message as an untyped startup-phase packet (int32 length + body), and reset. */
  startupFrame(): Buffer {
    if (this.msgStart !== 0) throw new Error('startupFrame() cannot follow append()');
    const len = this.pos - 1;
    this.buf.writeUInt32BE(len, 1);
    const out = Buffer.allocUnsafe(len);
    this.buf.copy(out, 0, 1, this.pos);
    this.reset();
    return out;
  }

  /** Discard anything written since the last frame. */
  reset(): void {
    this.msgStart = 0;
    this.pos = HEADER;
  }
}

/** Body-less message: type byte + length 4. */
function emptyFrame(code: number): Buffer {
  const b = Buffer.alloc(5);
  b[0] = code;
  b.writeUInt32BE(4, 1);
  return b;
}

/** ParseComplete ('1'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARSECOMPLETE */
export const ParseCompleteFrame: Buffer = emptyFrame(BackendCode.ParseComplete);
/** BindComplete ('2'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BINDCOMPLETE */
export const BindCompleteFrame: Buffer = emptyFrame(BackendCode.BindComplete);
/** CloseComplete ('3'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-CLOSECOMPLETE */
export const CloseCompleteFrame: Buffer = emptyFrame(BackendCode.CloseComplete);
/** NoData ('n'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NODATA */
export const NoDataFrame: Buffer = emptyFrame(BackendCode.NoData);
/** EmptyQueryResponse ('I'). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-EMPTYQUERYRESPONSE */
export const EmptyQueryResponseFrame: Buffer = emptyFrame(BackendCode.EmptyQueryResponse);
/** Sync ('S', client→server). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-SYNC */
export const SyncFrame: Buffer = emptyFrame(FrontendCode.Sync);
/** Flush ('H', client→server). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-FLUSH */
export const FlushFrame: Buffer = emptyFrame(FrontendCode.Flush);
/** Terminate ('X', client→server). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-TERMINATE */
export const TerminateFrame: Buffer = emptyFrame(FrontendCode.Terminate);
/** CopyDone ('c'; same byte in both directions). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COPYDONE */
export const CopyDoneFrame: Buffer = emptyFrame(FrontendCode.CopyDone);

/** AuthenticationOk ('R', int32 0). @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONOK */
export const AuthOkFrame: Buffer = (() => {
  const b = Buffer.alloc(9);
  b[0] = BackendCode.Authentication;
  b.writeUInt32BE(8, 1);
  return b;
})();

function readyFrame(status: number): Buffer {
  const b = Buffer.alloc(6);
  b[0] = BackendCode.ReadyForQuery;
  b.writeUInt32BE(5, 1);
  b[5] = status;
  return b;
}

/** ReadyForQuery ('Z') for each transaction status. @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-READYFORQUERY */
export const ReadyForQueryFrames = {
  I: readyFrame(TxStatus.Idle),
  T: readyFrame(TxStatus.InTransaction),
  E: readyFrame(TxStatus.Failed),
} as const;

/** The single byte 'N' answering an SSLRequest/GSSENCRequest with "not supported". @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL */
export const SslNoFrame: Buffer = Buffer.from('N', 'latin1');
/** The single byte 'S' accepting an SSLRequest (TLS handshake follows). @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL */
export const SslYesFrame: Buffer = Buffer.from('S', 'latin1');
