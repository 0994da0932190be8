/**
 * A raw PostgreSQL protocol client for integration tests: sends exact frames and returns every
 * server message, so tests can check what drivers hide (PortalSuspended, skip-until-Sync,
 * FunctionCall, BackendKeyData, NotificationResponse ordering, raw startup garbage).
 */
import * as net from 'node:net';
import { Framer } from '../../src/protocol/framer';
import { decodeAuthentication, decodeBackendKeyData, decodeErrorFields, decodeParameterStatus } from '../../src/protocol/backend';
import { encodePassword } from '../../src/protocol/frontend';
import { encodeStartupMessage } from '../../src/protocol/startup';
import { md5PasswordHash, md5Response } from '../../src/protocol/auth/md5';

/** One server message: its type char and raw frame, with errors decoded. */
export interface ServerMessage {
  readonly type: string;
  readonly frame: Buffer;
  readonly error?: { severity: string; code: string; message: string };
}

/** A raw connection. */
export class RawClient {
  private readonly framer = new Framer(1 << 30);
  private readonly queue: ServerMessage[] = [];
  private waiter: (() => void) | null = null;
  closed = false;
  pid = 0;
  secret = 0;
  readonly params = new Map<string, string>();

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.framer.push(chunk, {
        onFrame: (code, buf, start, end) => {
          const frame = Buffer.from(buf.subarray(start, end));
          const type = String.fromCharCode(code);
          const m: ServerMessage = type === 'E' || type === 'N'
            ? { type, frame, error: decodeErrorFields(frame, 0, frame.length) }
            : { type, frame };
          this.queue.push(m);
        },
      });
      this.wake();
    });
    socket.on('close', () => { this.closed = true; this.wake(); });
    socket.on('error', () => { this.closed = true; this.wake(); });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Opens a TCP connection without sending anything. */
  static open(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port }, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  /** Opens and logs in (trust, cleartext or md5), returning after the first ReadyForQuery. */
  static async connect(port: number, params: Record<string, string>, password?: string): Promise<RawClient> {
    const c = await RawClient.open(port);
    c.send(encodeStartupMessage(params));
    for (;;) {
      const m = await c.next(10_000);
      if (m.type === 'R') {
        const a = decodeAuthentication(m.frame, 0, m.frame.length);
        if (a.type === 'AuthenticationCleartextPassword') c.send(encodePassword(password ?? ''));
        else if (a.type === 'AuthenticationMD5Password') c.send(encodePassword(md5Response(md5PasswordHash(params.user ?? '', password ?? ''), a.salt)));
        else if (a.type !== 'AuthenticationOk') throw new Error(`raw client: unsupported auth ${a.type}`);
      } else if (m.type === 'K') {
        const k = decodeBackendKeyData(m.frame, 0, m.frame.length);
        c.pid = k.pid;
        c.secret = k.secret;
      } else if (m.type === 'S') {
        const p = decodeParameterStatus(m.frame, 0, m.frame.length);
        c.params.set(p.name, p.value);
      } else if (m.type === 'E') {
        throw Object.assign(new Error(m.error?.message), { code: m.error?.code });
      } else if (m.type === 'Z') {
        return c;
      }
    }
  }

  /** Writes raw bytes. */
  send(...bufs: Buffer[]): void {
    this.socket.write(bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs));
  }

  /** Next server message (rejects on timeout or close). */
  async next(timeoutMs = 10_000): Promise<ServerMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.queue.shift();
      if (m !== undefined) return m;
      if (this.closed) throw new Error('raw client: connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('raw client: timed out waiting for a message');
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => { this.waiter = null; resolve(); }, left);
        this.waiter = () => { clearTimeout(t); resolve(); };
      });
    }
  }

  /** Messages up to and including the next ReadyForQuery. */
  async untilReady(timeoutMs = 10_000): Promise<ServerMessage[]> {
    const out: ServerMessage[] = [];
    for (;;) {
      const m = await this.next(timeoutMs);
      out.push(m);
      if (m.type === 'Z') return out;
    }
  }

  /** Resolves when the server closed the connection (or after timeout, rejecting). */
  async waitClosed(timeoutMs = 5000): Promise<ServerMessage[]> {
    const out: ServerMessage[] = [];
    for (;;) {
      try {
        out.push(await this.next(timeoutMs));
      } catch (e) {
        if (this.closed) return out;
        throw e;
      }
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Types of a message list as one string, e.g. "1 2 T D C Z" → "12TDCZ". */
export function types(ms: readonly ServerMessage[]): string {
  return ms.map((m) => m.type).join('');
}
