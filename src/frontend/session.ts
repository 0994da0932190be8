/**
 * One client connection: startup packet → handshake (handshake.ts) → the relay loop.
 *
 * The relay loop is synchronous per chunk. Client frames are collected as (buffer, start, end)
 * ranges over the received chunks (no copy; contiguous frames coalesce into one range) and cut
 * into requests at each sync point (Query, Sync, FunctionCall) or Flush. Each complete request
 * is routed once and its ranges are written to the chosen backend; at the end of a chunk all
 * dispatched bytes go out with one write per backend. During COPY IN every frame is a request of
 * its own, so a large COPY streams instead of being buffered. Server chunks come back untouched
 * (ServerConnection scans only headers). Backpressure both ways: a full socket pauses the other.
 */
import type * as net from 'node:net';
import { Framer, startupPacketLength, type FrameSink } from '../protocol/framer';
import { FrontendCode, Limits, StartupCode } from '../protocol/codes';
import { encodeErrorResponse } from '../protocol/backend';
import { decodeStartupPacket, encodeCancelRequest } from '../protocol/startup';
import { decodeParse, decodeQuery } from '../protocol/frontend';
import type { ErrorFieldsInput } from '../protocol/error-fields';
import { clientErrors } from '../errors/client-errors';
import type { ServerConnection, ServerSink } from '../backend/server-connection';
import { LogEvent } from '../log/logger';
import type { SlotLease } from './slots';
import type { FrontendContext } from './context';
import type { RegisteredSession } from './registry';
import { runHandshake, type StartupInfo } from './handshake';
import { connect as netConnect } from 'node:net';

type Phase = 'startup' | 'handshake' | 'ready' | 'closed';

const SSL_NO = Buffer.from('N');

/** A client session; see the file header. */
export class ClientSession implements FrameSink, ServerSink, RegisteredSession {
  pid = 0;
  secret = 0;
  readonly connectedAt = new Date();
  readonly address: string;
  readonly port: number;
  user = '';
  database = '';
  applicationName = '';
  slot: SlotLease | null = null;
  /** Backend connections held by this session, by node id. */
  readonly conns = new Map<number, ServerConnection>();
  /** Node that takes this session's statements (the primary, in this version). */
  primaryNode = -1;

  private phase: Phase = 'startup';
  private startupBytes: Buffer | null = null;
  private readonly framer: Framer;
  // Handshake: frames are queued for the async login flow.
  private hsQueue: { code: number; frame: Buffer }[] = [];
  private hsWaiter: ((v: { code: number; frame: Buffer } | null) => void) | null = null;
  // Relay: undispatched ranges of client bytes, and where requests end among them.
  private rBuf: Buffer[] = [];
  private rStart: number[] = [];
  private rEnd: number[] = [];
  private rCount = 0;
  private pendingSyncs = 0;
  private copyConn: ServerConnection | null = null;
  private closing = false;
  private closeReason = '';

  constructor(readonly socket: net.Socket, readonly ctx: FrontendContext) {
    this.framer = new Framer(ctx.config.max_message_size);
    this.address = socket.remoteAddress ?? '';
    this.port = socket.remotePort ?? 0;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => this.close('client socket error'));
    socket.on('close', () => this.close('client disconnected'));
  }

  // ---- input ------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    if (this.phase === 'startup') {
      this.onStartupData(chunk);
      return;
    }
    const bad = this.framer.push(chunk, this);
    if (bad !== 0) {
      this.fatal(clientErrors.protocolViolation(bad < 0 ? 'invalid message length' : `invalid message length ${bad} (max_message_size is ${this.ctx.config.max_message_size})`));
      return;
    }
    if (this.phase === 'ready') this.flushRequests();
  }

  private onStartupData(chunk: Buffer): void {
    let buf = this.startupBytes === null ? chunk : Buffer.concat([this.startupBytes, chunk]);
    for (;;) {
      const len = startupPacketLength(buf, Limits.MaxStartupPacket);
      if (len < 0) {
        this.fatal(clientErrors.protocolViolation('invalid length of startup packet'));
        return;
      }
      if (len === 0) {
        this.startupBytes = buf.length > 0 ? buf : null;
        return;
      }
      const packet = buf.subarray(0, len);
      buf = buf.subarray(len);
      let msg: ReturnType<typeof decodeStartupPacket>;
      try {
        msg = decodeStartupPacket(packet, 0, len);
      } catch (e) {
        this.fatal(clientErrors.protocolViolation(`invalid startup packet: ${(e as Error).message}`));
        return;
      }
      switch (msg.type) {
        case 'SSLRequest':
        case 'GSSENCRequest':
          this.socket.write(SSL_NO);
          continue;
        case 'CancelRequest':
          this.ctx.registry.cancel(msg.pid, msg.secret);
          this.close('cancel request handled');
          return;
        case 'Startup': {
          this.startupBytes = null;
          this.phase = 'handshake';
          const info: StartupInfo = { protocol: msg.protocol, params: msg.params };
          if (buf.length > 0) this.onData(buf);
          runHandshake(this, info).catch((e: unknown) => {
            this.ctx.log.error({ err: e, event: 'handshake_crash' }, 'unexpected error during handshake');
            this.fatal(clientErrors.internal());
          });
          return;
        }
        default:
          this.fatal(clientErrors.protocolViolation(`unsupported startup request code ${msg.code}`));
          return;
      }
    }
  }

  /** FrameSink: one complete client frame. */
  onFrame(code: number, buf: Buffer, start: number, end: number): void {
    if (this.phase === 'handshake') {
      const item = { code, frame: Buffer.from(buf.subarray(start, end)) };
      if (this.hsWaiter !== null) {
        const w = this.hsWaiter;
        this.hsWaiter = null;
        w(item);
      } else {
        this.hsQueue.push(item);
      }
      return;
    }
    if (this.phase !== 'ready') return;
    if (code === FrontendCode.Terminate) {
      this.close('client sent Terminate');
      return;
    }
    if (this.ctx.logFlags.statement || this.ctx.logFlags.clientMessages) this.logFrame(code, buf, start, end);
    // Append the frame to the pending ranges (coalescing contiguous frames of one chunk).
    const n = this.rCount;
    if (n > 0 && this.rBuf[n - 1] === buf && this.rEnd[n - 1] === start) {
      this.rEnd[n - 1] = end;
    } else {
      this.rBuf[n] = buf;
      this.rStart[n] = start;
      this.rEnd[n] = end;
      this.rCount = n + 1;
    }
    if (code === FrontendCode.Query || code === FrontendCode.Sync || code === FrontendCode.FunctionCall) {
      this.pendingSyncs++;
    }
    // Requests are dispatched at the end of the chunk (flushRequests), one write per backend.
  }

  /** Handshake side: next frame from the client, or null when it disconnected. */
  nextHandshakeFrame(): Promise<{ code: number; frame: Buffer } | null> {
    const queued = this.hsQueue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.phase === 'closed') return Promise.resolve(null);
    return new Promise((resolve) => { this.hsWaiter = resolve; });
  }

  /** Called by the handshake once the client got ReadyForQuery. */
  enterReady(): void {
    if (this.phase !== 'handshake') return;
    this.phase = 'ready';
    // Frames that arrived during the handshake after the login exchange: relay them now.
    const early = this.hsQueue;
    this.hsQueue = [];
    for (const f of early) this.onFrame(f.code, f.frame, 0, f.frame.length);
    this.flushRequests();
    const idle = this.ctx.config.client_idle_limit;
    if (idle > 0) {
      this.socket.setTimeout(idle * 1000, () => {
        if ([...this.conns.values()].every((c) => c.outstanding <= 0)) this.fatal(clientErrors.idleLimit(idle));
      });
    }
  }

  // ---- relay client → server --------------------------------------------------------------

  /**
   * Sends every complete request. The route here is the session's primary connection; the
   * read/write router plugs in at `routeRequest`.
   */
  private flushRequests(): void {
    if (this.rCount === 0) return;
    const conn = this.copyConn ?? this.routeRequest();
    if (conn === null) return;
    // Everything pending goes to one backend: it is one request, or several to the same node.
    const syncs = this.pendingSyncs;
    let out: Buffer;
    if (this.rCount === 1) {
      out = this.rBuf[0]!.subarray(this.rStart[0], this.rEnd[0]);
    } else {
      const parts: Buffer[] = [];
      for (let i = 0; i < this.rCount; i++) parts.push(this.rBuf[i]!.subarray(this.rStart[i], this.rEnd[i]));
      out = Buffer.concat(parts);
    }
    for (let i = 0; i < this.rCount; i++) this.rBuf[i] = undefined as unknown as Buffer;
    this.rCount = 0;
    this.pendingSyncs = 0;
    if (!conn.write(out, syncs)) {
      this.socket.pause();
      conn.socket.once('drain', () => { if (this.phase === 'ready') this.socket.resume(); });
    }
  }

  private routeRequest(): ServerConnection | null {
    const conn = this.conns.get(this.primaryNode);
    if (conn === undefined) {
      this.fatal(clientErrors.noPrimary());
      return null;
    }
    if (conn.copyIn) this.copyConn = conn;
    return conn;
  }

  // ---- relay server → client --------------------------------------------------------------

  /** ServerSink: a chunk from a backend, forwarded untouched. */
  onServerData(conn: ServerConnection, chunk: Buffer): void {
    if (this.phase !== 'ready') return;
    if (conn.copyIn) this.copyConn = conn;
    if (!this.socket.write(chunk)) {
      conn.pause();
      this.socket.once('drain', () => conn.resume());
    }
  }

  /** ServerSink: ReadyForQuery seen on a backend. */
  onReadyForQuery(conn: ServerConnection): void {
    if (this.copyConn === conn) this.copyConn = null;
  }

  /** ServerSink: a backend connection died under us. */
  onServerClosed(conn: ServerConnection, reason: string): void {
    this.conns.delete(conn.nodeId);
    this.ctx.log.warn({ event: LogEvent.BackendError, node_id: conn.nodeId, pid: this.pid, reason }, 'backend connection lost');
    this.releaseConn(conn, false, reason);
    this.fatal(clientErrors.backendLost(conn.nodeId));
  }

  // ---- cancel, logging, close -------------------------------------------------------------

  /** Forwards a CancelRequest to each backend running a query for this session. */
  cancel(): void {
    for (const conn of this.conns.values()) {
      if (conn.outstanding <= 0) continue;
      const node = this.ctx.cluster.node(conn.nodeId);
      if (node === undefined) continue;
      const s = netConnect({ host: node.host, port: node.port }, () => s.end(encodeCancelRequest(conn.backendPid, conn.backendSecret)));
      s.on('error', () => s.destroy());
      s.setTimeout(5000, () => s.destroy());
      this.ctx.log.info({ event: LogEvent.CancelForwarded, pid: this.pid, node_id: conn.nodeId }, 'cancel request forwarded');
    }
  }

  private logFrame(code: number, buf: Buffer, start: number, end: number): void {
    const f = this.ctx.logFlags;
    if (f.clientMessages) this.ctx.log.info({ event: LogEvent.ClientMessage, pid: this.pid, kind: String.fromCharCode(code), length: end - start - 1 }, 'client message');
    if (!f.statement && !f.perNodeStatement) return;
    let sql: string | null = null;
    if (code === FrontendCode.Query) sql = decodeQuery(buf, start, end);
    else if (code === FrontendCode.Parse) sql = decodeParse(buf, start, end).sql;
    if (sql === null) return;
    if (f.statement) this.ctx.log.info({ event: LogEvent.Statement, pid: this.pid, user: this.user, database: this.database }, `statement: ${sql}`);
    if (f.perNodeStatement) this.ctx.log.info({ event: LogEvent.NodeStatement, pid: this.pid, node_id: this.primaryNode }, `DB node id: ${this.primaryNode} statement: ${sql}`);
  }

  /** Sends a FATAL error and closes. */
  fatal(fields: ErrorFieldsInput): void {
    if (this.phase === 'closed') return;
    if (this.socket.writable) this.socket.write(encodeErrorResponse(fields));
    this.close(`${fields.code}: ${fields.message}`);
  }

  /** RegisteredSession: ends the session (shutdown). */
  terminate(): void {
    this.fatal(clientErrors.shuttingDown());
  }

  /** Gives a connection back to its node's pool. */
  releaseConn(conn: ServerConnection, reusable: boolean, why: string): void {
    conn.detach();
    const pool = this.ctx.pools.get(conn.nodeId);
    if (pool === undefined) conn.destroy(why);
    else pool.release(conn, reusable, why);
  }

  /** Ends the session: releases backend connections (reusable when nothing is in flight) and the slot. */
  close(reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.closeReason = reason;
    const wasReady = this.phase === 'ready';
    this.phase = 'closed';
    this.framer.reset();
    if (this.hsWaiter !== null) {
      const w = this.hsWaiter;
      this.hsWaiter = null;
      w(null);
    }
    this.socket.setTimeout(0);
    for (const conn of this.conns.values()) {
      // A transaction the client left open is not a reason to drop the connection: the pool's
      // reset (reset_query_list, 'ABORT; DISCARD ALL' as in pgpool) rolls it back.
      const clean = conn.resettable && this.copyConn !== conn;
      if (!clean && conn.outstanding > 0) this.cancel();
      this.releaseConn(conn, clean, clean ? '' : 'client left with a request in flight or a COPY unfinished');
    }
    this.conns.clear();
    if (this.slot !== null) {
      this.slot.release();
      this.slot = null;
    }
    this.ctx.registry.delete(this);
    if (!this.socket.destroyed) this.socket.end();
    if (wasReady && this.ctx.logFlags.disconnections) {
      const secs = (Date.now() - this.connectedAt.getTime()) / 1000;
      this.ctx.log.info({ event: LogEvent.Disconnected, pid: this.pid, user: this.user, database: this.database,
        host: this.address, port: this.port, session_time: secs, reason },
      `frontend disconnected: session time: ${secs.toFixed(3)} s user=${this.user} database=${this.database} host=${this.address} port=${this.port}`);
    }
  }

  /** Why the session ended (for logs/tests). */
  get endReason(): string {
    return this.closeReason;
  }

  /** True once close() ran. */
  get closed(): boolean {
    return this.phase === 'closed';
  }
}
