/**
 * A PCP client (what pgpool's libpcp does), for the `pgmaitre <command>` subcommands and tests:
 * connect over TCP or the Unix socket, md5-authenticate, send one request at a time and collect
 * its reply packets up to the final one.
 */
import * as net from 'node:net';
import * as path from 'node:path';
import { PcpFramer, decodeError, encodePacket, encodeStrings, splitStrings, type PcpPacket } from './codec';
import { pcpAuthResponse } from './auth';

/** An 'E' packet from the server. */
export class PcpServerError extends Error {
  constructor(readonly severity: string, message: string, readonly detail: string | undefined) {
    super(message);
  }
}

/** Connection parameters. */
export interface PcpConnectOptions {
  /** Host name or IP; undefined or starting with '/' = Unix socket directory (default /tmp). */
  readonly host?: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly timeoutMs?: number;
}

/** One authenticated PCP connection. */
export class PcpClient {
  private readonly framer = new PcpFramer();
  private queue: PcpPacket[] = [];
  private waiter: (() => void) | null = null;
  private ended: Error | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.queue.push(...this.framer.push(chunk));
      this.wake();
    });
    socket.on('close', () => {
      this.ended ??= new Error('server closed the connection');
      this.wake();
    });
    socket.on('error', (err) => {
      this.ended = err;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private async next(): Promise<PcpPacket> {
    for (;;) {
      const p = this.queue.shift();
      if (p !== undefined) return p;
      if (this.ended !== null) throw this.ended;
      await new Promise<void>((resolve) => { this.waiter = resolve; });
    }
  }

  /** Connects and authenticates. */
  static async connect(o: PcpConnectOptions): Promise<PcpClient> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const unix = o.host === undefined || o.host === '' || o.host.startsWith('/');
      const s = unix
        ? net.connect({ path: path.join(o.host === undefined || o.host === '' ? '/tmp' : o.host, `.s.PGSQL.${o.port}`) })
        : net.connect({ host: o.host, port: o.port });
      s.setTimeout(o.timeoutMs ?? 30_000, () => s.destroy(new Error('timeout talking to the PCP server')));
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
    const c = new PcpClient(socket);
    try {
      socket.write(encodePacket('M'));
      const salt = await c.expect('m');
      socket.write(encodeStrings('R', o.user, pcpAuthResponse(o.user, o.password, salt.payload.subarray(0, 4))));
      const ok = await c.expect('r');
      if (splitStrings(ok.payload)[0] !== 'AuthenticationOK') throw new PcpServerError('FATAL', 'authentication failed', splitStrings(ok.payload)[0]);
    } catch (err) {
      socket.destroy();
      throw err;
    }
    return c;
  }

  private async expect(type: string): Promise<PcpPacket> {
    for (;;) {
      const p = await this.next();
      if (p.type === 'N') continue;
      if (p.type === 'E') {
        const f = decodeError(p.payload);
        throw new PcpServerError(f.get('S') ?? 'ERROR', f.get('M') ?? 'unknown error', f.get('D'));
      }
      if (p.type !== type) throw new Error(`unexpected PCP packet "${p.type}" (expected "${type}")`);
      return p;
    }
  }

  /**
   * Sends a request and returns the string fields of every reply packet up to and including
   * the one that starts with CommandComplete (a binary ArraySize is returned as its number).
   */
  async request(type: string, payload: Buffer, replyType: string): Promise<string[][]> {
    this.socket.write(encodePacket(type, payload));
    const out: string[][] = [];
    for (;;) {
      const p = await this.expect(replyType);
      const head = splitStrings(p.payload)[0] ?? '';
      if (head === 'ArraySize' && replyType === 'b') {
        out.push(['ArraySize', String(p.payload.readInt32BE('ArraySize'.length + 1))]);
        continue;
      }
      const fields = splitStrings(p.payload);
      out.push(fields);
      if (head === 'CommandComplete') return out;
    }
  }

  /** Sends X and closes. */
  close(): void {
    if (!this.socket.destroyed) this.socket.end(encodePacket('X'));
  }
}
