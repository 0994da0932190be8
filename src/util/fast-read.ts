/**
 * Reading a connected socket without Node's stream machinery.
 *
 * Every byte a proxy relays is read once from each side, so the per-read cost matters more than
 * anything else here: a 'data' event goes through the Readable state machine and allocates a
 * Buffer per read. Node can instead read straight into a buffer the caller owns and call a plain
 * callback (`net.connect({ onread })`), measured on this machine at 10–20 µs less CPU per relayed
 * transaction than 'data' events. That option only exists when a client socket is created;
 * sockets accepted by a net.Server and sockets already connected (after a login) have no public
 * way to switch. Node keeps the option's state in three symbol-keyed properties of every
 * net.Socket (kBuffer, kBufferCb, kBufferGen — the same names since Node 12) and applies it with
 * the handle's useUserBuffer(); switchToReadBuffer() sets those, after checking each exists, and
 * reports false when it cannot (another Node version, a TLS socket): the caller keeps 'data'.
 *
 * Each read is handed on as a copy of its own (the proxy keeps request bytes until they are written,
 * and answers until the client socket takes them). V8 frees such buffers only when its garbage
 * collector runs, and that is driven by the JavaScript heap, which a relay hardly uses: a client
 * streaming large queries made the process hold hundreds of MB of dead buffers between
 * collections. So after every READS_BEFORE_GC bytes copied, a young-generation collection is asked
 * for (cheap: about 0.1 ms here), which frees the buffers that died young; the memory then stays
 * within a few MB of what is really in flight. Buffers still in flight at a young collection
 * (a large query waiting for a slow backend) survive it, reach the old generation and wait for a
 * full collection, which V8 starts late; so every MINORS_PER_MAJOR-th hint is a full collection,
 * run as a task (execution 'async'). Ordinary traffic (a few hundred bytes per transaction) asks
 * for one every 32 MB relayed — a few ms every several seconds at pgbench rates.
 */
import { Buffer } from 'node:buffer';
import type * as net from 'node:net';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

const READS_BEFORE_GC = 4 * 1024 * 1024;
const MINORS_PER_MAJOR = 8;

/** V8's gc(), made reachable once (--expose-gc through v8.setFlagsFromString); null if refused. */
const gc: ((opts: { type: 'minor' | 'major'; execution?: 'async' | 'sync' }) => void) | null = (() => {
  try {
    v8.setFlagsFromString('--expose-gc');
    const f = vm.runInNewContext('gc') as unknown;
    return typeof f === 'function' ? (f as (opts: { type: 'minor' | 'major' }) => void) : null;
  } catch {
    return null;
  }
})();

let copiedSinceGc = 0;
let minorsSinceMajor = 0;
let gcScheduled = false;

function collectSoon(): void {
  if (gcScheduled || gc === null) return;
  gcScheduled = true;
  setImmediate(() => {
    gcScheduled = false;
    copiedSinceGc = 0;
    if (++minorsSinceMajor < MINORS_PER_MAJOR) gc({ type: 'minor' });
    else {
      minorsSinceMajor = 0;
      gc({ type: 'major', execution: 'async' });
    }
  });
}

/** Counts bytes copied out of a read buffer by the caller (for the collection hint above). */
export function countCopied(bytes: number): void {
  copiedSinceGc += bytes;
  if (copiedSinceGc >= READS_BEFORE_GC) collectSoon();
}

/** A copy of `view` that the caller owns (counted for the collection hint above). */
export function copyRead(view: Buffer): Buffer {
  countCopied(view.length);
  return Buffer.from(view);
}

/** Node's own symbols for the onread option, found once on a plain socket. */
let symbols: { buffer: symbol; callback: symbol; generator: symbol } | null | undefined;

function findSymbols(socket: net.Socket): typeof symbols {
  if (symbols !== undefined) return symbols;
  const byName = new Map<string, symbol>();
  for (const s of Object.getOwnPropertySymbols(socket)) if (s.description !== undefined) byName.set(s.description, s);
  const buffer = byName.get('kBuffer');
  const callback = byName.get('kBufferCb');
  const generator = byName.get('kBufferGen');
  symbols = buffer && callback && generator ? { buffer, callback, generator } : null;
  return symbols;
}

/** One read buffer for every socket switched here (reads are delivered one at a time). */
const SHARED = Buffer.allocUnsafe(64 * 1024);

/** Where Node's handles report a read's length (the `stream_wrap` binding), read once. */
const READ_STATE: { state: Int32Array; index: number } | null = (() => {
  try {
    const b = (process as unknown as { binding(name: string): { streamBaseState?: unknown; kReadBytesOrError?: unknown } }).binding('stream_wrap');
    return b.streamBaseState instanceof Int32Array && typeof b.kReadBytesOrError === 'number' ? { state: b.streamBaseState, index: b.kReadBytesOrError } : null;
  } catch {
    return null; // not available in this Node: Node's own onread is kept
  }
})();
const STATE = READ_STATE?.state ?? new Int32Array(8);
const K_READ = READ_STATE?.index ?? 0;

/** What a switched handle reads for (directRead). */
interface DirectReader {
  socket: net.Socket;
  onRead: (view: Buffer) => void;
  /** Node's own onread (stream_base_commons' onStreamRead): end of stream and errors. */
  original: (this: unknown, ab?: ArrayBuffer) => unknown;
}

/**
 * The handle's onread once switched: a read's bytes go straight to the reader. Node's
 * onStreamRead, which it replaces for data, costs per read: the socket's timer refresh through
 * a symbol-keyed walk, the `destroyed` getter (both stream states), three symbol-keyed loads of
 * the onread option and the generator check — about 2 % of a busy proxy's time under pgbench
 * -S at 64 clients (perf, docs/performance.md). What it did for data is kept: the socket's
 * setTimeout() is refreshed when one is set, and a destroyed socket reads nothing (Node's
 * destroy() replaces the handle's onread and closes it). End of stream, errors and a zero-byte
 * read go to Node's own function as before.
 */
function directRead(this: { directReader?: DirectReader }, ab?: ArrayBuffer): unknown {
  const r = this.directReader!;
  const n = STATE[K_READ]!;
  if (n > 0) {
    const s = r.socket as net.Socket & { timeout?: number; _unrefTimer?: () => void };
    if (s.timeout) s._unrefTimer!();
    r.onRead(SHARED.subarray(0, n));
    return undefined;
  }
  return r.original.call(this, ab);
}

/**
 * Makes `socket` read into a shared buffer and call `onRead(view)` for each read (a view valid
 * only during the call) instead of emitting 'data'. End of stream, errors, pause() and resume()
 * keep working as before. Returns false (nothing changed) when the socket cannot be switched.
 */
export function switchToReadBuffer(socket: net.Socket, onRead: (view: Buffer) => void): boolean {
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: (b: Buffer) => void; onread?: unknown; directReader?: DirectReader } | null })._handle;
  if ((socket as { encrypted?: boolean }).encrypted === true || handle == null || typeof handle.useUserBuffer !== 'function') return false;
  const sym = findSymbols(socket);
  if (sym === null || sym === undefined) return false;
  const s = socket as unknown as Record<symbol, unknown>;
  if (!(sym.buffer in s) || s[sym.buffer] !== null) return false;
  s[sym.generator] = null;
  s[sym.buffer] = SHARED;
  s[sym.callback] = (n: number, buf: Buffer): boolean => {
    onRead(buf.subarray(0, n));
    return true;
  };
  handle.useUserBuffer(SHARED);
  socket.removeAllListeners('data');
  const original = handle.onread;
  if (READ_STATE !== null && typeof original === 'function' && typeof (socket as { _unrefTimer?: unknown })._unrefTimer === 'function') {
    handle.directReader = { socket, onRead, original: original as DirectReader['original'] };
    handle.onread = directRead;
  }
  return true;
}
