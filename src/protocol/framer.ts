/**
 * Incremental framer for typed protocol messages (1-byte type + int32 length + body).
 *
 * Hand-written because it is on the hot path of every client message: it reads only headers,
 * hands out (buffer, start, end) ranges over the bytes it was given (no copy when a chunk holds
 * whole frames), keeps a partial frame until the rest arrives, and reports an impossible length
 * as a protocol violation instead of buffering it. "Not enough data" is never an exception.
 * Copies happen only when a frame straddles chunks: the parts are joined once, when complete
 * (never re-joined per chunk, so a large frame arriving in many pieces costs O(n)).
 *
 * @see https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
 */

/** Receives each complete frame: buf[start] is the type byte, end is exclusive. */
export interface FrameSink {
  onFrame(code: number, buf: Buffer, start: number, end: number): void;
}

/** Outcome of push(): 0 when fine, else the offending declared length (a protocol violation). */
export type FramerResult = number;

const HEADER = 5;

/** Splits a byte stream into typed protocol frames. */
export class Framer {
  private parts: Buffer[] = [];
  private partsLen = 0;
  /** Total size of the frame being assembled, once its header is known; 0 before. */
  private need = 0;
  /** Declared length of the first frame that broke the limit, or 0. */
  violation = 0;

  constructor(private maxLength: number) {}

  /**
   * Changes the largest acceptable frame (e.g. a small bound while a client is unauthenticated).
   * Applies to frames whose header has not been read yet.
   */
  setMaxLength(maxLength: number): void {
    this.maxLength = maxLength;
  }

  /** Bytes held back waiting for the rest of a frame. */
  get buffered(): number {
    return this.partsLen;
  }

  /**
   * Feeds one chunk; calls sink.onFrame for every complete frame, in order.
   * Returns 0, or the declared length that exceeds the limit (the stream is then unusable).
   */
  push(chunk: Buffer, sink: FrameSink): FramerResult {
    if (this.violation !== 0) return this.violation;
    let buf = chunk;
    if (this.partsLen !== 0) {
      this.parts.push(chunk);
      this.partsLen += chunk.length;
      if (this.need === 0) {
        if (this.partsLen < HEADER) return 0;
        const head = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partsLen);
        if (this.parts.length !== 1) this.parts = [head];
        const len = head.readInt32BE(1);
        if (len < 4 || len > this.maxLength) return (this.violation = len < 4 ? -1 : len);
        this.need = len + 1;
      }
      if (this.partsLen < this.need) return 0;
      buf = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partsLen);
      this.parts = [];
      this.partsLen = 0;
      this.need = 0;
    }
    const total = buf.length;
    let pos = 0;
    while (total - pos >= HEADER) {
      const len = buf.readInt32BE(pos + 1);
      if (len < 4 || len > this.maxLength) return (this.violation = len < 4 ? -1 : len);
      const end = pos + 1 + len;
      if (end > total) {
        this.need = len + 1;
        break;
      }
      sink.onFrame(buf[pos]!, buf, pos, end);
      pos = end;
    }
    if (pos < total) {
      this.parts.push(pos === 0 ? buf : buf.subarray(pos));
      this.partsLen = total - pos;
    }
    return 0;
  }

  /** Drops any partial frame (used when a session ends). */
  reset(): void {
    this.parts = [];
    this.partsLen = 0;
    this.need = 0;
  }
}

/**
 * Reads an untyped startup-phase packet (int32 length first, no type byte) from accumulated bytes.
 * Returns the packet length when complete, 0 when more bytes are needed, -1 when the declared
 * length is outside [8, maxLength].
 */
export function startupPacketLength(buf: Buffer, maxLength: number): number {
  if (buf.length < 4) return 0;
  const len = buf.readInt32BE(0);
  if (len < 8 || len > maxLength) return -1;
  return buf.length >= len ? len : 0;
}
