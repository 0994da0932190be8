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
import { Buffer } from 'node:buffer';

/** Receives each complete frame: buf[start] is the type byte, end is exclusive. */
export interface FrameSink {
  onFrame(code: number, buf: Buffer, start: number, end: number): void;
}

/** Outcome of push(): 0 when fine, else the offending declared length (a protocol violation). */
export type FramerResult = number;

const HEADER = 5;

/**
 * pushView() assembles a frame straddling reads in one buffer of its exact size when the frame is
 * at most this large (allocated from the declared length, so a hostile length cannot make it
 * allocate more than this); larger frames are kept as copied pieces and joined once.
 */
const ASSEMBLY_MAX = 8 * 1024 * 1024;

/** Called with the bytes pushView() copied (fast-read's collection hint counts them). */
export type CopyCounter = (bytes: number) => void;

/** Splits a byte stream into typed protocol frames. */
export class Framer {
  private parts: Buffer[] = [];
  private partsLen = 0;
  /** Total size of the frame being assembled, once its header is known; 0 before. */
  private need = 0;
  /** Declared length of the first frame that broke the limit, or 0. */
  violation = 0;

  /** No frame begun and not finished, no violation: the next byte read starts a frame. */
  get atBoundary(): boolean {
    return this.assembly === null && this.partsLen === 0 && this.violation === 0;
  }
  /** pushView(): the straddling frame being filled in place, and how much of it is there. */
  private assembly: Buffer | null = null;
  private filled = 0;

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
    return this.partsLen + this.filled;
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

  /**
   * Like push(), for a `view` valid only during the call (a shared read buffer): every byte that
   * must outlive the call is copied exactly once — the complete frames of the view as one region,
   * a frame straddling reads straight into a buffer of its own size. With push() on copies, a
   * large query arriving in many reads was copied twice (each read, then the join) and left twice
   * its size of garbage.
   */
  pushView(view: Buffer, sink: FrameSink, counted: CopyCounter): FramerResult {
    if (this.violation !== 0) return this.violation;
    let pos = 0;
    const total = view.length;
    if (this.assembly !== null) {
      // Continue the frame being assembled.
      const a = this.assembly;
      const n = Math.min(a.length - this.filled, total);
      view.copy(a, this.filled, 0, n);
      counted(n);
      this.filled += n;
      if (this.filled < a.length) return 0;
      this.assembly = null;
      this.filled = 0;
      sink.onFrame(a[0]!, a, 0, a.length);
      pos = n;
    } else if (this.partsLen !== 0) {
      // A header split across reads, or a frame above ASSEMBLY_MAX: the general path.
      counted(total);
      return this.push(Buffer.from(view), sink);
    }
    // The complete frames of this read: one copy of their region.
    let end = pos;
    let partial = 0;
    let bad = 0;
    while (total - end >= HEADER) {
      const len = view.readInt32BE(end + 1);
      if (len < 4 || len > this.maxLength) {
        bad = len < 4 ? -1 : len;
        break;
      }
      if (end + 1 + len > total) {
        partial = len + 1;
        break;
      }
      end += 1 + len;
    }
    if (end > pos) {
      // (The whole view, the common case, is copied as it is: no second view made of it.)
      const region = Buffer.from(pos === 0 && end === total ? view : view.subarray(pos, end));
      counted(end - pos);
      let at = 0;
      const size = end - pos;
      while (at < size) {
        const stop = at + 1 + region.readInt32BE(at + 1);
        sink.onFrame(region[at]!, region, at, stop);
        at = stop;
      }
    }
    if (bad !== 0) return (this.violation = bad);
    if (end === total) return 0;
    const rest = total - end;
    counted(rest);
    if (partial !== 0 && partial <= ASSEMBLY_MAX) {
      const a = Buffer.allocUnsafe(partial);
      view.copy(a, 0, end, total);
      this.assembly = a;
      this.filled = rest;
      return 0;
    }
    this.parts.push(Buffer.from(view.subarray(end)));
    this.partsLen = rest;
    this.need = partial;
    return 0;
  }

  /** Drops any partial frame (used when a session ends). */
  reset(): void {
    this.parts = [];
    this.partsLen = 0;
    this.need = 0;
    this.assembly = null;
    this.filled = 0;
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
