/**
 * A minimal memcached client for the query cache's hot path: memcached's meta text protocol
 * (memcached ≥ 1.6: `mg`, `ms`, `md`) over one persistent TCP connection per process.
 *
 * Hand-written on purpose: it is on pgmaitre's hot path. A cache hit with memqcache_method =
 * memcached is one lookup (the answer and the generations of what it read), and with memjs that
 * lookup cost more pgmaitre CPU than forwarding the query to PostgreSQL: on the hot-key bench
 * (bench/query-cache.sh) 115-260 µs of pgmaitre CPU per transaction against 58-95 µs forwarded,
 * ~60 µs per lookup in memjs itself (a promise, a timer and a socket write per get, four gets per
 * lookup); memcache-client measured about the same. With this client, in the same run: 47-56 µs
 * per hit against 58-78 µs forwarded (docs/query-cache.md). Here:
 * - one socket, pipelined: replies come back in request order and are matched to a FIFO of
 *   pending batches, no opaque ids, no per-request timer;
 * - requests queued during one turn of the event loop leave in one write (setImmediate), so the
 *   lookups of every session served in that turn share a syscall, and their replies come back in
 *   one read;
 * - a batch of gets (a lookup) is one queue entry and one callback; values are views of the read
 *   chunk (no copy).
 * Failure is fast and total: a connection error, an unexpected reply or no progress for
 * TIMEOUT_MS with requests outstanding fails every pending batch and closes the socket; the next
 * request reconnects (the query cache bypasses memcached meanwhile, query-cache.ts).
 *
 * Keys must be 1-250 printable ASCII bytes without spaces (metaKey() makes any name one).
 */
import { Socket } from 'node:net';
import { createHash } from 'node:crypto';

/** No reply progress for this long with requests outstanding, or a connect taking this long: failed. */
export const TIMEOUT_MS = 500;

/** One reply: a value (mg hit), null (mg miss), true (HD), false (NS/NF/EX), or an Error (SERVER_ERROR). */
export type MetaReply = Buffer | null | boolean | Error;

/** A batch of requests answered together. */
interface Batch {
  /** Replies still expected. */
  left: number;
  readonly replies: MetaReply[];
  readonly done: (err: Error | null, replies: MetaReply[]) => void;
}

const CR = 0x0d;
const LF = 0x0a;
const SAFE_KEY = /^[\x21-\x7e]{1,250}$/;

/** A memcached key for `name`: itself when it is a valid text-protocol key, else `<prefix>h:<sha1 of the name>`. */
export function metaKey(prefix: string, name: string): string {
  const k = prefix + name;
  return SAFE_KEY.test(k) ? k : `${prefix}h:${createHash('sha1').update(name).digest('hex')}`;
}

/** See the file header. */
export class MetaClient {
  private sock: Socket | null = null;
  private connected = false;
  private readonly queue: Batch[] = [];
  private head = 0;
  /** Requests not written yet: text, with Buffers (stored values) between. */
  private outText = '';
  private outParts: (string | Buffer)[] = [];
  private flushScheduled = false;
  private rbuf: Buffer | null = null;
  /** Replies parsed so far (the watchdog's measure of progress). */
  private progress = 0;
  private watchedAt = -1;
  private watchdog: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly host: string, private readonly port: number) {}

  /** Pending batches (tests). */
  get outstanding(): number {
    return this.queue.length - this.head;
  }

  /**
   * Queues `text` (one or more complete commands, `values` written after the text parts they
   * follow: see store()) expecting `replies` replies, answered by one call of `done`.
   */
  send(text: string, replies: number, done: (err: Error | null, replies: MetaReply[]) => void): void {
    if (this.closed) {
      done(new Error('memcached client closed'), []);
      return;
    }
    this.outText += text;
    this.queue.push({ left: replies, replies: [], done });
    this.schedule();
  }

  /** Queues `ms <key> <len> <flags>` with its value; one reply. */
  store(key: string, value: Buffer, flags: string, done: (err: Error | null, replies: MetaReply[]) => void): void {
    if (this.closed) {
      done(new Error('memcached client closed'), []);
      return;
    }
    this.outText += `ms ${key} ${value.length}${flags === '' ? '' : ' '}${flags}\r\n`;
    this.outParts.push(this.outText, value);
    this.outText = '\r\n';
    this.queue.push({ left: 1, replies: [], done });
    this.schedule();
  }

  /** Promise form of send() (the operations off the hot path). */
  request(text: string, replies: number): Promise<MetaReply[]> {
    return new Promise((resolve, reject) => this.send(text, replies, (err, r) => (err === null ? resolve(r) : reject(err))));
  }

  /** Promise form of store(). */
  storeValue(key: string, value: Buffer, flags: string): Promise<MetaReply> {
    return new Promise((resolve, reject) => this.store(key, value, flags, (err, r) => (err === null ? resolve(r[0]!) : reject(err))));
  }

  close(): void {
    this.closed = true;
    this.fail(new Error('memcached client closed'));
  }

  private schedule(): void {
    if (this.sock === null) this.connect();
    if (!this.flushScheduled && this.connected) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const s = this.sock;
    if (s === null || !this.connected) return;
    let out: string | Buffer;
    if (this.outParts.length === 0) {
      if (this.outText === '') return;
      out = this.outText;
    } else {
      const parts = this.outParts;
      if (this.outText !== '') parts.push(this.outText);
      out = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)));
      this.outParts = [];
    }
    this.outText = '';
    s.write(out as string, 'latin1');
  };

  private connect(): void {
    const s = new Socket();
    this.sock = s;
    this.connected = false;
    s.setNoDelay(true);
    const timer = setTimeout(() => {
      if (this.sock === s && !this.connected) this.reset(s, new Error(`memcached connect timeout (${TIMEOUT_MS} ms)`));
    }, TIMEOUT_MS);
    timer.unref();
    s.on('connect', () => {
      clearTimeout(timer);
      if (this.sock !== s) return;
      this.connected = true;
      s.setKeepAlive(true, 10_000);
      this.startWatchdog();
      this.flush();
    });
    s.on('data', (chunk: Buffer) => {
      if (this.sock === s) this.onData(chunk);
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      this.reset(s, e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      this.reset(s, new Error('memcached connection closed'));
    });
    s.connect(this.port, this.host);
  }

  /** The connection `s` failed: every pending batch fails, the next request reconnects. */
  private reset(s: Socket, e: Error): void {
    if (this.sock !== s) return;
    this.sock = null;
    this.connected = false;
    s.destroy();
    this.fail(e);
  }

  private fail(e: Error): void {
    if (this.sock !== null) {
      const s = this.sock;
      this.sock = null;
      this.connected = false;
      s.destroy();
    }
    if (this.watchdog !== null) {
      clearInterval(this.watchdog);
      this.watchdog = null;
    }
    this.rbuf = null;
    this.outText = '';
    this.outParts = [];
    const pending = this.queue.splice(this.head);
    this.queue.length = 0;
    this.head = 0;
    for (const b of pending) b.done(e, b.replies);
  }

  /** Fails everything when requests are outstanding and no reply came for TIMEOUT_MS (two ticks). */
  private startWatchdog(): void {
    if (this.watchdog !== null) return;
    let stalled = 0;
    this.watchdog = setInterval(() => {
      if (this.head === this.queue.length || this.progress !== this.watchedAt) {
        stalled = 0;
        this.watchedAt = this.progress;
        return;
      }
      if (++stalled >= 2 && this.sock !== null) this.reset(this.sock, new Error(`memcached did not answer within ${TIMEOUT_MS} ms`));
    }, TIMEOUT_MS / 2);
    this.watchdog.unref();
  }

  private onData(chunk: Buffer): void {
    let buf = chunk;
    if (this.rbuf !== null) {
      buf = Buffer.concat([this.rbuf, chunk]);
      this.rbuf = null;
    }
    let pos = 0;
    const len = buf.length;
    while (pos < len) {
      const nl = buf.indexOf(LF, pos);
      if (nl < 0) break;
      const lineEnd = nl > pos && buf[nl - 1] === CR ? nl - 1 : nl;
      const c0 = buf[pos]!;
      const c1 = buf[pos + 1];
      let reply: MetaReply;
      let next = nl + 1;
      if (c0 === 0x56 && c1 === 0x41) { // VA <size> <flags>*
        let n = 0;
        let i = pos + 3;
        for (; i < lineEnd; i++) {
          const d = buf[i]! - 0x30;
          if (d < 0 || d > 9) break;
          n = n * 10 + d;
        }
        if (i === pos + 3) return this.protocolError(buf, pos, lineEnd);
        if (next + n + 2 > len) break; // the value is not all here yet
        reply = buf.subarray(next, next + n);
        next += n + 2;
      } else if (c0 === 0x45 && c1 === 0x4e) { // EN: miss
        reply = null;
      } else if (c0 === 0x48 && c1 === 0x44) { // HD
        reply = true;
      } else if ((c0 === 0x4e && (c1 === 0x53 || c1 === 0x46)) || (c0 === 0x45 && c1 === 0x58)) { // NS, NF, EX
        reply = false;
      } else if (c0 === 0x53 && buf.toString('latin1', pos, pos + 13) === 'SERVER_ERROR ') {
        reply = new Error(`memcached: ${buf.toString('latin1', pos, lineEnd)}`);
      } else {
        return this.protocolError(buf, pos, lineEnd); // CLIENT_ERROR, ERROR, anything else: the stream cannot be trusted
      }
      pos = next;
      this.progress++;
      const b = this.queue[this.head];
      if (b === undefined) return this.protocolError(buf, pos, pos);
      b.replies.push(reply);
      if (--b.left === 0) {
        this.queue[this.head] = undefined as unknown as Batch;
        this.head++;
        if (this.head === this.queue.length) {
          this.queue.length = 0;
          this.head = 0;
        } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
          this.queue.splice(0, this.head);
          this.head = 0;
        }
        b.done(null, b.replies);
        if (this.sock === null) return; // done() closed it
      }
    }
    if (pos < len) this.rbuf = buf.subarray(pos); // an unfinished reply: joined with the next chunk
  }

  private protocolError(buf: Buffer, pos: number, end: number): void {
    const line = buf.toString('latin1', pos, Math.min(end, pos + 200));
    if (this.sock !== null) this.reset(this.sock, new Error(`memcached: unexpected reply ${JSON.stringify(line)}`));
  }
}
