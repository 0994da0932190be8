/**
 * Writing to a socket without Node's Writable machinery.
 *
 * socket.write() goes through the Writable state machine (buffering state, a callback scheduled
 * on the next tick, an object per write) before the handle's writeBuffer(); a proxy writes every
 * relayed chunk once, so that overhead is paid twice per query. Writing through the handle
 * directly — what socket.write() ends up doing — was measured at 3–4 µs less CPU per relayed
 * transaction. The handle's request type (WriteWrap) and its completion flag are internal to
 * Node (the `stream_wrap` binding, unchanged since Node 12); when they are not available, or the
 * socket is not a plain connected TCP/Unix socket, or the Writable already holds queued data (so
 * order is kept), fastWrite() falls back to socket.write().
 *
 * Backpressure is kept: fastWrite() returns false when the handle's queue (bytes the kernel did
 * not take yet) is above the high-water mark, and the socket emits 'drain' once it is empty, as
 * with socket.write().
 *
 * A failed write destroys the socket, as socket.write() does, unless the caller passes
 * `onError`: then the socket is left open (its reading goes on: a peer that closed may have
 * sent its last words before, and they are still in the kernel's buffer) and the caller decides.
 */
import type * as net from 'node:net';
import * as util from 'node:util';

interface StreamWrapBinding {
  WriteWrap: new () => WriteReq;
  streamBaseState: Int32Array;
  kLastWriteWasAsync: number;
}

interface WriteReq {
  handle: unknown;
  onError?: ((e: Error) => void) | undefined;
  oncomplete: (this: WriteReq, status: number) => void;
  async: boolean;
  bytes: number;
  buffer: Buffer | null;
  socket?: net.Socket;
}

interface Handle {
  writeBuffer(req: WriteReq, buf: Buffer): number;
  writeQueueSize: number;
}

let binding: StreamWrapBinding | null = null;
try {
  // process.binding is how user code reaches an internal binding; it stays behind a feature check.
  const b = (process as unknown as { binding(name: string): StreamWrapBinding }).binding('stream_wrap');
  if (typeof b.WriteWrap === 'function' && b.streamBaseState instanceof Int32Array && typeof b.kLastWriteWasAsync === 'number') binding = b;
} catch {
  binding = null; // not available in this Node: socket.write() is used
}

const HIGH_WATER = 64 * 1024;

// The binding's pieces, read once: a property load on the binding object (not an ordinary
// object) went through V8's generic load IC on every write — three per write (the constructor,
// the state array, the index), ~2 % of a busy proxy's time under pgbench -S at 64 clients.
const WriteWrap = binding?.WriteWrap ?? null;
const STATE = binding?.streamBaseState ?? new Int32Array(8);
const K_LAST_ASYNC = binding?.kLastWriteWasAsync ?? 0;

function afterAsyncWrite(this: WriteReq, status: number): void {
  const socket = this.socket!;
  this.buffer = null;
  if (status < 0) {
    const e = writeError(status);
    if (this.onError !== undefined) this.onError(e);
    else socket.destroy(e);
    return;
  }
  const h = (socket as unknown as { _handle: Handle | null })._handle;
  if (h !== null && h.writeQueueSize === 0) socket.emit('drain');
}

/** The error of a failed write: its errno name as `code` (EPIPE, ECONNRESET) when known. */
function writeError(status: number): NodeJS.ErrnoException {
  let name = '';
  try {
    name = util.getSystemErrorName(status);
  } catch {
    name = ''; // not an errno: the message keeps the number
  }
  const e: NodeJS.ErrnoException = new Error(`write failed (${name || status})`);
  if (name !== '') e.code = name;
  return e;
}

/**
 * Writes `buf` to `socket`; false when its output is above the high-water mark (then 'drain'
 * follows). `onError`: called instead of destroying the socket when the write fails (see the
 * file header); the plain socket.write() fallback keeps Node's behaviour (destroy).
 */
export function fastWrite(socket: net.Socket, buf: Buffer, onError?: (e: Error) => void): boolean {
  const h = (socket as unknown as { _handle: Handle | null })._handle;
  // (A destroyed socket has no handle any more: net.Socket's _destroy() closes it and sets
  // _handle to null at once, so h === null stands for `destroyed`, whose getter reads both
  // stream states — one more object touched per write.)
  if (WriteWrap === null || h === null || typeof h.writeBuffer !== 'function' || socket.writableLength > 0
    || socket.connecting || !socket.writable || (socket as { encrypted?: boolean }).encrypted === true) {
    return socket.write(buf);
  }
  // A write the kernel takes whole never uses its request object (Node makes the native WriteWrap
  // only for a write that goes async): the spare one serves again; a new one (an API object
  // instantiation, ~1 µs) is made only after a write went async with it.
  let req = spareReq;
  if (req === null) {
    req = new WriteWrap();
    requestsMade++;
  } else {
    spareReq = null;
  }
  req.handle = h;
  req.oncomplete = afterAsyncWrite;
  req.async = false;
  req.bytes = 0;
  req.buffer = null;
  req.onError = onError;
  const err = h.writeBuffer(req, buf);
  if (err !== 0) {
    const e = writeError(err);
    if (onError !== undefined) onError(e);
    else socket.destroy(e);
    return false;
  }
  if (STATE[K_LAST_ASYNC] !== 0) {
    // The kernel did not take it all: the handle holds the rest; keep the bytes alive until done.
    req.buffer = buf;
    req.socket = socket;
    return h.writeQueueSize < HIGH_WATER;
  }
  req.handle = null;
  req.onError = undefined;
  spareReq = req;
  return true;
}

/** A write request object no write holds (see fastWrite), or null. */
let spareReq: WriteReq | null = null;
let requestsMade = 0;

/** How many write request objects fastWrite() made (for tests: writes taken whole reuse one). */
export function fastWriteRequestsMade(): number {
  return requestsMade;
}

/** True when fastWrite() bypasses socket.write() on this Node. */
export const fastWriteAvailable = binding !== null;
