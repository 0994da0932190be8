/**
 * Accepted TCP connections without net.Socket.
 *
 * A client that connects per request (PHP, serverless, `pgbench -C`) costs a proxy one accepted
 * socket per transaction. Node wraps each accepted handle in a net.Socket: a Duplex stream with
 * its Readable and Writable state, an EventEmitter, a close sequence through the stream's destroy
 * machinery and several ticks. Measured on the 2-core lab VM with `pgbench -C` against a server
 * that answers with canned bytes: 108–144 µs of user CPU per connection through net.Socket,
 * 46–52 µs through the handle directly, as little as PgBouncer's 39 µs (docs/performance.md).
 *
 * RawSocket drives the accepted handle (Node's TCPWrap) itself: reads into an ArrayBuffer per
 * read, or, once switched (useSharedBuffer), into one buffer shared by every RawSocket (reads are
 * delivered one at a time, each a view valid during the call); writes through WriteWrap requests
 * (what socket.write() ends up doing); end() is a shutdown after the pending writes, then the
 * handle is closed when the peer's EOF comes (as net.Socket without allowHalfOpen: the client
 * reads the last bytes, and no reset is sent over them). Callbacks, not events: one owner.
 *
 * The handle API is internal to Node (`tcp_wrap`, `stream_wrap` bindings, unchanged since Node
 * 12). takeOverAccept() checks every piece it uses and declines when one is missing (the server
 * then keeps making net.Sockets); a connection that has to become a net.Socket after all (TLS,
 * a replication connection handed over) is turned into one by toNetSocket(), whose reads then
 * come as copies out of the shared buffer if it was switched to it.
 */
import { Buffer } from 'node:buffer';
import * as net from 'node:net';
import { getSystemErrorName } from 'node:util';

interface WriteReq {
  handle: TcpHandle | null;
  oncomplete: (this: WriteReq, status: number) => void;
  async: boolean;
  bytes: number;
  buffer: Buffer | null;
  owner: RawSocket | null;
}

interface ShutdownReq {
  handle: TcpHandle;
  oncomplete: (this: ShutdownReq, status: number) => void;
  callback: () => void;
  owner: RawSocket | null;
}

interface StreamBinding {
  WriteWrap: new () => WriteReq;
  ShutdownWrap: new () => ShutdownReq;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
  kLastWriteWasAsync: number;
}

/** The accepted handle (Node's TCPWrap), as far as it is used here. */
export interface TcpHandle {
  readStart(): number;
  readStop(): number;
  useUserBuffer(buf: Uint8Array): void;
  writeBuffer(req: WriteReq, buf: Buffer): number;
  shutdown(req: ShutdownReq): number;
  close(cb?: () => void): void;
  getpeername(out: { address?: string; port?: number }): number;
  setNoDelay(on: boolean): number;
  writeQueueSize: number;
  onread: (this: TcpHandle, ab?: ArrayBuffer) => void;
  rawOwner?: RawSocket | null;
}

let binding: StreamBinding | null = null;
let UV_EOF = -4095;
try {
  const b = (process as unknown as { binding(name: string): StreamBinding }).binding('stream_wrap');
  if (typeof b.WriteWrap === 'function' && typeof b.ShutdownWrap === 'function' && b.streamBaseState instanceof Int32Array
    && typeof b.kReadBytesOrError === 'number' && typeof b.kArrayBufferOffset === 'number' && typeof b.kLastWriteWasAsync === 'number') binding = b;
  const uv = (process as unknown as { binding(name: string): { UV_EOF?: number } }).binding('uv');
  if (typeof uv.UV_EOF === 'number') UV_EOF = uv.UV_EOF;
} catch {
  binding = null; // not available in this Node: accepted connections stay net.Sockets
}

/** True when takeOverAccept() can be used on this Node. */
export const rawAcceptAvailable = binding !== null;

// The binding's pieces, read once: a property load on the binding object per read and write
// went through a generic load IC (the binding is not an ordinary object).
const STATE = binding?.streamBaseState ?? new Int32Array(8);
const K_READ = binding?.kReadBytesOrError ?? 0;
const K_AB_OFFSET = binding?.kArrayBufferOffset ?? 0;
const K_LAST_ASYNC = binding?.kLastWriteWasAsync ?? 0;
const WriteWrap = binding?.WriteWrap ?? null;
const ShutdownWrap = binding?.ShutdownWrap ?? null;

const HIGH_WATER = 64 * 1024;
/** One read buffer for every RawSocket switched to it (reads are delivered one at a time). */
const SHARED = Buffer.allocUnsafe(64 * 1024);

const noop = (): void => {};

/**
 * Views of SHARED by length, made once each (lengths up to VIEWS_MAX): a read is delivered as a
 * view valid during the call only, so the same view object can serve every read of that length
 * (a login's reads, a short query, a Terminate: one Buffer object made per read otherwise, ~2 µs
 * of CreateTypedArray and ~100 bytes of young heap for each of a `pgbench -C` connection's reads).
 */
const VIEWS_MAX = 1024;
const views: (Buffer | null)[] = new Array<Buffer | null>(VIEWS_MAX + 1).fill(null);

/** The view of the shared read buffer's first `n` bytes (the same object for the same n ≤ 1 KiB). */
export function sharedView(n: number): Buffer {
  if (n > VIEWS_MAX) return SHARED.subarray(0, n);
  let v = views[n]!;
  if (v === null) views[n] = v = SHARED.subarray(0, n);
  return v;
}

/** A write request object no write holds (see RawSocket.write), or null. */
let spareReq: WriteReq | null = null;

/** How many write request objects RawSockets made (for tests: writes taken whole reuse one). */
export function writeRequestsMade(): number {
  return requestsMade;
}
let requestsMade = 0;

/**
 * onread callback of a net.Socket made by toNetSocket() after useSharedBuffer(): the read, copied,
 * goes into the stream as a read of its own would (false stops reading: the stream is full).
 */
function pushCopy(this: net.Socket, n: number, buf: Buffer): boolean {
  return this.push(Buffer.from(buf.subarray(0, n)));
}

function usableHandle(h: unknown): h is TcpHandle {
  const t = h as Partial<TcpHandle> | null;
  return t != null && typeof t.readStart === 'function' && typeof t.readStop === 'function' && typeof t.useUserBuffer === 'function'
    && typeof t.writeBuffer === 'function' && typeof t.shutdown === 'function' && typeof t.close === 'function'
    && typeof t.getpeername === 'function' && typeof t.setNoDelay === 'function';
}

function errorName(status: number): string {
  try {
    return getSystemErrorName(status);
  } catch {
    return `error ${status}`;
  }
}

/** handle.onread: one read (or EOF, or an error) of the handle's owner. */
function onRead(this: TcpHandle, ab?: ArrayBuffer): void {
  const s = this.rawOwner;
  if (s == null) return;
  const n = STATE[K_READ]!;
  if (n > 0) {
    if (s.idleTimer !== null) s.idleTimer.refresh();
    if (s.shared) s.onRead(sharedView(n));
    else s.onRead(Buffer.from(ab!, STATE[K_AB_OFFSET]!, n));
    return;
  }
  if (n === 0) return;
  s.peerEnded(n === UV_EOF ? null : errorName(n));
}

function afterWrite(this: WriteReq, status: number): void {
  const s = this.owner!;
  this.buffer = null;
  this.owner = null;
  if (status < 0) {
    s.destroy(`client socket error: ${errorName(status)}`);
    return;
  }
  if (!s.destroyed && this.handle!.writeQueueSize === 0) s.onDrain();
}

function afterShutdown(this: ShutdownReq): void {
  const s = this.owner!;
  this.owner = null;
  s.shutdownDone();
}

/** One accepted TCP connection driven through its handle; see the file header. */
export class RawSocket {
  /** The peer's address and port, asked of the kernel when first wanted (getpeername is a system call). */
  private peerAddress: string | null = null;
  private peerPort = 0;
  destroyed = false;
  /** Bytes of a read: an owned Buffer, or after useSharedBuffer() a view valid during the call. */
  onRead: (chunk: Buffer) => void = noop;
  /** The handle's write queue went empty after a write returned false. */
  onDrain: () => void = noop;
  /** The connection ended (`reason` null: the peer closed it; else an error). Called once. */
  onEnd: (reason: string | null) => void = noop;
  /** Reads go to the shared buffer (useSharedBuffer). */
  shared = false;
  /** Inactivity timer (setIdleTimeout), refreshed by every read and write. */
  idleTimer: NodeJS.Timeout | null = null;
  private reading = false;
  private paused = false;
  private ending = false;
  private eof = false;
  private notified = false;
  /** destroy() closed the handle (after toNetSocket() it lives on in the net.Socket). */
  private handleClosed = false;

  /** `noDelaySet`: the handle has TCP_NODELAY already (inherited from its listener: takeOverAccept). */
  constructor(readonly _handle: TcpHandle, noDelaySet = false) {
    if (!noDelaySet) _handle.setNoDelay(true);
    _handle.rawOwner = this;
    _handle.onread = onRead;
  }

  /**
   * The peer's address ('' once the connection is closed, if it was never asked before): most
   * connections never need it (enable_pool_hba = off, no connection logging), and a login that
   * does asks while the connection is open. Whoever needs it after the close reads it before.
   */
  get remoteAddress(): string {
    if (this.peerAddress === null) this.askPeer();
    return this.peerAddress!;
  }

  get remotePort(): number {
    if (this.peerAddress === null) this.askPeer();
    return this.peerPort;
  }

  private askPeer(): void {
    const out: { address?: string; port?: number } = {};
    if (!this.handleClosed) this._handle.getpeername(out);
    this.peerAddress = out.address ?? '';
    this.peerPort = out.port ?? 0;
  }

  /**
   * Everything written so far went out (the kernel took it): a buffer given to write() is no
   * longer referenced and may be reused. False while a write is queued, or once closed.
   */
  get writeDone(): boolean {
    return !this.handleClosed && this._handle.writeQueueSize === 0;
  }

  /** No stream buffer: every write goes to the handle (its queue is `_handle.writeQueueSize`). */
  get writableLength(): number {
    return 0;
  }

  /** Writes are accepted (not ended, not destroyed). */
  get writable(): boolean {
    return !this.ending && !this.destroyed;
  }

  /** Starts reading (pause() stops it until resume()). */
  start(): void {
    this.paused = false;
    this.syncReading();
  }

  pause(): void {
    this.paused = true;
    this.syncReading();
  }

  resume(): void {
    this.paused = false;
    this.syncReading();
  }

  private syncReading(): void {
    const want = !this.destroyed && !this.eof && (!this.paused || this.ending);
    if (want === this.reading) return;
    this.reading = want;
    if (want) this._handle.readStart();
    else this._handle.readStop();
  }

  /**
   * From now on reads land in the buffer shared by every RawSocket (views, valid during onRead):
   * no buffer of Node's (64 KiB malloc, an ArrayBuffer and a Buffer) per read. Can be called
   * from the accept on (the login's reads too); toNetSocket() still works afterwards.
   */
  useSharedBuffer(): void {
    if (this.shared || this.destroyed) return;
    this._handle.useUserBuffer(SHARED);
    this.shared = true;
  }

  /** Writes `buf`; false when the handle's queue is above the high-water mark (onDrain follows). */
  write(buf: Buffer): boolean {
    if (this.ending || this.destroyed) return true;
    if (this.idleTimer !== null) this.idleTimer.refresh();
    // A write the kernel takes whole never uses its request object (Node makes the native
    // WriteWrap only for a write that goes async): the spare one serves again, and a new one (an
    // API object instantiation) is made only after a write went async with it.
    let req = spareReq;
    if (req === null) {
      req = new WriteWrap!();
      requestsMade++;
    } else {
      spareReq = null;
    }
    req.handle = this._handle;
    req.oncomplete = afterWrite;
    req.async = false;
    req.bytes = 0;
    req.buffer = null;
    req.owner = null;
    const err = this._handle.writeBuffer(req, buf);
    if (err !== 0) {
      // (not reused: whatever Node made of it)
      this.destroy(`client socket error: ${errorName(err)}`);
      return false;
    }
    if (STATE[K_LAST_ASYNC] !== 0) {
      // The kernel did not take it all: the handle holds the rest; keep the bytes alive until done.
      req.buffer = buf;
      req.owner = this;
      return this._handle.writeQueueSize < HIGH_WATER;
    }
    req.handle = null;
    spareReq = req;
    return true;
  }

  /**
   * Ends the connection: `last` (if any) is written, the sending side is shut down once the
   * pending writes are out, and the handle is closed when the peer's EOF arrives (what it still
   * sends meanwhile is read and dropped, so that the close is a FIN, not a reset).
   * When the peer has sent everything it will send (its EOF came, or `peerDone`: it said goodbye,
   * a Terminate) and nothing waits to be written, the handle is closed at once, as PostgreSQL
   * closes its socket at a Terminate: no shutdown, no wait for the EOF (a system call, a read
   * and a callback fewer per connection).
   */
  end(last?: Buffer, peerDone = false): void {
    if (this.ending || this.destroyed) return;
    if (last !== undefined) this.write(last);
    if ((peerDone || this.eof) && this._handle.writeQueueSize === 0 && !this.destroyed) {
      this.ending = true;
      this.destroy(null);
      return;
    }
    this.ending = true;
    this.onRead = noop;
    this.setIdleTimeout(0, noop);
    const req = new ShutdownWrap!();
    req.handle = this._handle;
    req.oncomplete = afterShutdown;
    req.callback = noop;
    req.owner = this;
    if (this._handle.shutdown(req) !== 0) {
      this.destroy(null);
      return;
    }
    this.syncReading();
  }

  /** The shutdown went out (after the pending writes). */
  shutdownDone(): void {
    if (this.eof) this.destroy(null);
  }

  /** The peer closed (`error` null) or the connection failed. */
  peerEnded(error: string | null): void {
    this.eof = true;
    this.syncReading();
    if (error !== null) {
      this.destroy(`client socket error: ${error}`);
      return;
    }
    this.notify(null);
    if (this.ending) this.destroy(null);
    // Not ending yet: the owner ends it (end()), which closes once the shutdown is out.
  }

  /** Closes the handle now (pending writes are dropped). */
  destroy(reason: string | null = null): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.reading = false;
    this.setIdleTimeout(0, noop);
    const h = this._handle;
    // (No `h.onread = noop`: onread is an accessor of the handle's, a store a call into V8's
    // runtime, and a closed handle reads nothing; onRead() ignores a handle without its owner.)
    h.rawOwner = null;
    this.handleClosed = true;
    h.close();
    this.notify(reason);
  }

  private notify(reason: string | null): void {
    if (this.notified) return;
    this.notified = true;
    this.onEnd(reason);
  }

  /** Calls `onIdle` after `ms` without a read or a write (0: never), once per idle period. */
  setIdleTimeout(ms: number, onIdle: () => void): void {
    if (this.idleTimer !== null) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
    if (ms <= 0 || this.destroyed) return;
    this.idleTimer = setTimeout(onIdle, ms);
    this.idleTimer.unref();
  }

  /**
   * This connection as a net.Socket (TLS, a handover): its reads and writes go through Node's
   * stream from now on. Only with nothing kept unread and not handed on.
   *
   * After useSharedBuffer() the handle keeps reading into the shared buffer (Node has no way to
   * undo useUserBuffer), so the net.Socket is made with Node's `onread` option over that same
   * buffer, and its callback pushes a copy of each read into the stream: 'data', pause() and
   * resume() behave as on any accepted socket. A TLS upgrade over it is unaffected: the
   * TLSSocket's TLSWrap takes the handle's reads into buffers of its own.
   */
  toNetSocket(): net.Socket {
    const h = this._handle;
    if (this.reading) h.readStop();
    this.reading = false;
    h.onread = noop;
    h.rawOwner = null;
    this.destroyed = true; // this object no longer drives the handle
    this.notified = true;
    this.setIdleTimeout(0, noop);
    const opts: Record<string, unknown> = { handle: h, readable: true, writable: true };
    if (this.shared) opts['onread'] = { buffer: SHARED, callback: pushCopy };
    return new net.Socket(opts as net.SocketConstructorOpts);
  }
}

/** Sets TCP_NODELAY on a listening handle; true when the sockets it accepts inherit it (Linux). */
export function listenerNoDelay(listening: { setNoDelay?: (on: boolean) => number }): boolean {
  if (process.platform !== 'linux' || typeof listening.setNoDelay !== 'function') return false;
  return listening.setNoDelay(true) === 0;
}

/**
 * Makes `server` (listening) hand its accepted connections to `onRaw` as RawSockets instead of
 * making net.Sockets (then `connection` is not emitted and `server.close()` does not wait for
 * them: their owner closes them). A handle that lacks a method used here goes to `onSocket` as a
 * net.Socket. Returns false, changing nothing, when this Node does not allow it.
 */
export function takeOverAccept(server: net.Server, onRaw: (s: RawSocket) => void, onSocket: (s: net.Socket) => void): boolean {
  if (binding === null) return false;
  const h = (server as unknown as { _handle?: { onconnection?: unknown; setNoDelay?: (on: boolean) => number } | null })._handle;
  if (h == null || typeof h.onconnection !== 'function') return false;
  // TCP_NODELAY set once on the listening socket: Linux copies it into every socket accepted
  // from it (a setsockopt system call fewer per connection). Elsewhere each connection sets it.
  const inherited = listenerNoDelay(h);
  h.onconnection = (err: number, client: unknown): void => {
    if (err !== 0 || client == null) return; // accept failed (EMFILE...): the client is retried by the kernel backlog
    if (usableHandle(client)) onRaw(new RawSocket(client, inherited));
    else onSocket(new net.Socket({ handle: client, readable: true, writable: true } as unknown as net.SocketConstructorOpts));
  };
  return true;
}
