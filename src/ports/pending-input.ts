/**
 * Client bytes received before a dedicated-port or replication relay starts (during login).
 *
 * Kept as a list of chunks, never concatenated per read (joining on every read made 50 MB cost
 * 18 s of CPU): a frame is copied out once when complete, the rest joined once when the relay
 * starts. Bounded: while nobody waits for a frame the socket is paused (the login waits for a
 * slot, auth_query, the node), so one read's worth at most is held; `limit` is the backstop.
 */
import type * as net from 'node:net';

/** A typed frame (a copy), 'bad' for an impossible length, null when more bytes are needed. */
export type FrameResult = { code: number; frame: Buffer } | 'bad' | null;

/** See the file header. */
export class PendingInput {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private waiter: (() => void) | null = null;

  /** `socket()`: the client socket now (it changes after a TLS upgrade). */
  constructor(private readonly socket: () => net.Socket, readonly limit: number) {}

  /** Bytes held. */
  get length(): number {
    return this.bytes;
  }

  /** Adds a read; false when more than `limit` bytes are held (the caller ends the client). */
  push(chunk: Buffer): boolean {
    if (chunk.length === 0) return true;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    if (this.waiter !== null) this.wake();
    else this.socket().pause();
    return this.bytes <= this.limit;
  }

  /** Wakes whoever waits (bytes arrived, or the client went away). */
  wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Resolves at the next read (or wake()); the socket is read meanwhile. */
  wait(): Promise<void> {
    this.socket().resume();
    return new Promise<void>((resolve) => { this.waiter = resolve; });
  }

  /** The next typed frame (5-byte header) of at most `maxLength` bytes after its type byte. */
  frame(maxLength: number): FrameResult {
    if (this.bytes < 5) return null;
    const head = this.peek(5);
    const len = head.readInt32BE(1);
    if (len < 4 || len > maxLength) return 'bad';
    if (this.bytes < len + 1) return null;
    const frame = this.take(len + 1);
    return { code: frame[0]!, frame };
  }

  /** Everything held, joined once (the relay's first bytes), and forgotten. */
  takeAll(): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.bytes);
    this.chunks = [];
    this.bytes = 0;
    return all;
  }

  /** The first n bytes (n <= length), without consuming them. */
  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first;
    const head = Buffer.concat(this.chunks.slice(0, this.chunksFor(n)));
    this.chunks.splice(0, this.chunksFor(n), head);
    return head;
  }

  private chunksFor(n: number): number {
    let k = 0;
    for (let got = 0; got < n; k++) got += this.chunks[k]!.length;
    return k;
  }

  /** Removes and returns a copy of the first n bytes (n <= length). */
  private take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const want = n - off;
      if (c.length <= want) {
        c.copy(out, off);
        off += c.length;
        this.chunks.shift();
      } else {
        c.copy(out, off, 0, want);
        off += want;
        this.chunks[0] = c.subarray(want);
      }
    }
    this.bytes -= n;
    return out;
  }
}
