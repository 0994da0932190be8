/**
 * One client connection: startup packet → handshake (handshake.ts) → the relay loop.
 *
 * The relay loop is synchronous per chunk. Client frames are collected as (buffer, start, end)
 * ranges over the received chunks (no copy; contiguous frames coalesce into one range) and cut
 * into requests at each sync point (Query, Sync, FunctionCall), Flush, or CopyDone/CopyFail.
 * At the end of the chunk the dispatcher (dispatcher.ts) routes and sends every complete request,
 * one write per backend. During COPY IN the client's frames go straight to the copying backend,
 * so a large COPY streams instead of being buffered. Server chunks come back untouched
 * (ServerConnection scans only headers). Backpressure both ways: a full socket pauses the other.
 */
import type * as net from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Framer, startupPacketLength, type FrameSink } from '../protocol/framer';
import { FrontendCode, Limits } from '../protocol/codes';
import { encodeErrorResponse } from '../protocol/backend';
import { decodeStartupPacket, encodeCancelRequest } from '../protocol/startup';
import { decodeParse, decodeQuery } from '../protocol/frontend';
import type { ErrorFieldsInput } from '../protocol/error-fields';
import { clientErrors } from '../errors/client-errors';
import type { ServerConnection, ServerSink } from '../backend/server-connection';
import { LogEvent, logLine, pinoLevel, type LogFlags, type Logger } from '../log/logger';
import { createClassifier } from '../classify/classify';
import type { Classifier } from '../classify/types';
import type { SlotLease } from './slots';
import type { FrontendContext } from './context';
import type { RegisteredSession } from './registry';
import { runHandshake, poolKey, type StartupInfo } from './handshake';
import { connect as netConnect } from 'node:net';
import { ServerConnection as ServerConnectionClass } from '../backend/server-connection';
import { credentialAuthenticator, type BackendCredential } from '../backend/backend-auth';
import type { AdminSession, SessionInfo } from '../admin/types';
import { RequestDispatcher, type DispatchHost } from './dispatcher';
import { upgradeClient } from './tls';
import { isUnixSocket } from './listener';

type Phase = 'startup' | 'handshake' | 'ready' | 'closed';

const SSL_NO = Buffer.from('N');
const SSL_YES = Buffer.from('S');

/** A client session; see the file header. */
export class ClientSession implements FrameSink, ServerSink, RegisteredSession, DispatchHost {
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
  /** Node of the session's first backend connection: the primary at login, or a standby when there was none. */
  primaryNode = -1;
  /** Startup parameters other than user/database (sent when logging in to more nodes). */
  startupParams: Record<string, string> = {};
  /** What pgmaitre holds to log this user in to more nodes. */
  credential: BackendCredential = { kind: 'none' };
  /** Routes requests once the session is ready. */
  dispatcher: RequestDispatcher | null = null;
  /** PGPOOL SET overrides of this session. */
  readonly overrides = new Map<string, unknown>();

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
  private copyOut: Buffer[] = [];
  private pausedForQueue = false;
  private pausedForDrain = false;
  private closing = false;
  private closeReason = '';

  /** The client's socket: the accepted one, or the TLSSocket over it after SSL negotiation. */
  socket: net.Socket;
  /** True once the client's connection is encrypted (pool_hba hostssl/hostnossl). */
  tlsActive = false;
  private sslRequests = 0;
  private gssRequests = 0;
  private startupTimer: NodeJS.Timeout | null = null;

  constructor(socket: net.Socket, readonly ctx: FrontendContext) {
    this.socket = socket;
    this.framer = new Framer(ctx.config.max_message_size);
    this.address = socket.remoteAddress ?? '';
    this.port = socket.remotePort ?? 0;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => this.close('client socket error'));
    socket.on('close', () => this.close('client disconnected'));
    this.armStartupTimer();
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
    if (this.phase === 'ready') this.afterChunk();
  }

  /** End of a client chunk: stream COPY data, then route and send complete requests. */
  private afterChunk(): void {
    if (this.copyOut.length > 0) {
      const conn = this.copyConn ?? this.lastCopyConn;
      const out = this.copyOut.length === 1 ? this.copyOut[0]! : Buffer.concat(this.copyOut);
      this.copyOut = [];
      if (conn !== null && !conn.write(out, 0)) {
        this.pauseFor('drain');
        conn.socket.once('drain', () => this.resumeFor('drain'));
      }
    }
    this.dispatcher?.drive();
  }

  private lastCopyConn: ServerConnection | null = null;

  /**
   * authentication_timeout counts from the accept, as in PostgreSQL: a client that never
   * completes its startup packet (slowloris) or its login is cut off.
   */
  private armStartupTimer(): void {
    const sec = this.ctx.config.authentication_timeout;
    if (sec <= 0) return;
    this.startupTimer = setTimeout(() => {
      this.startupTimer = null;
      if (this.phase === 'startup' || this.phase === 'handshake') this.fatal(clientErrors.authenticationTimeout());
    }, sec * 1000);
    this.startupTimer.unref();
    this.socket.once('close', () => this.loginFinished());
  }

  /** The login ended (ready, or failed): the startup deadline and the handshake's message bound go. */
  loginFinished(): void {
    if (this.startupTimer !== null) {
      clearTimeout(this.startupTimer);
      this.startupTimer = null;
    }
  }

  /** Client authenticated: messages up to max_message_size are accepted again. */
  authenticated(): void {
    this.framer.setMaxLength(this.ctx.config.max_message_size);
  }

  /** Answers an SSLRequest: 'S' and the TLS upgrade when TLS is configured (TCP only), else 'N'. */
  private onSslRequest(rest: Buffer): boolean {
    const t = this.ctx.tls;
    if (++this.sslRequests > 1 || this.tlsActive) {
      this.fatal(clientErrors.protocolViolation('duplicate SSLRequest'));
      return false;
    }
    if (t === null || t === undefined || isUnixSocket(this.socket)) {
      this.socket.write(SSL_NO);
      return true;
    }
    if (rest.length > 0) {
      // Bytes after the SSLRequest before our 'S' would be unencrypted data injected into the
      // TLS session (CVE-2021-23214): refuse, as PostgreSQL does.
      this.fatal(clientErrors.protocolViolation('received unencrypted data after SSL request'));
      return false;
    }
    const raw = this.socket;
    raw.write(SSL_YES);
    raw.removeAllListeners('data');
    const secure: TLSSocket = upgradeClient(raw, t);
    this.socket = secure;
    this.tlsActive = true;
    secure.setNoDelay(true);
    secure.on('data', (chunk: Buffer) => this.onData(chunk));
    secure.on('error', () => this.close('client TLS error'));
    secure.on('close', () => this.close('client disconnected'));
    if (t.requestCert) {
      secure.once('secure', () => {
        const cert = secure.getPeerCertificate();
        if (cert !== null && Object.keys(cert).length > 0 && !secure.authorized) {
          this.fatal(clientErrors.clientCertificateInvalid(String(secure.authorizationError ?? 'unknown')));
        }
      });
    }
    return true;
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
          if (!this.onSslRequest(buf)) return;
          if (this.tlsActive) {
            this.startupBytes = null;
            return;
          }
          continue;
        case 'GSSENCRequest':
          if (++this.gssRequests > 1 || this.tlsActive) {
            this.fatal(clientErrors.protocolViolation('unexpected GSSENCRequest'));
            return;
          }
          this.socket.write(SSL_NO);
          continue;
        case 'CancelRequest':
          this.ctx.registry.cancel(msg.pid, msg.secret);
          this.close('cancel request handled');
          return;
        case 'Startup': {
          this.startupBytes = null;
          this.phase = 'handshake';
          // Until the client is authenticated, only small messages (passwords, SASL) are accepted.
          this.framer.setMaxLength(Math.min(Limits.MaxAuthMessage, this.ctx.config.max_message_size));
          const info: StartupInfo = { protocol: msg.protocol, params: msg.params };
          if (buf.length > 0) this.onData(buf);
          runHandshake(this, info).catch((e: unknown) => {
            this.log.error({ err: e, event: 'handshake_crash' }, 'unexpected error during handshake');
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
    if (this.logFlags.statement || this.logFlags.clientMessages) this.logFrame(code, buf, start, end);
    if (this.copyConn !== null && this.rCount === 0) {
      // COPY IN: the client's data goes straight to the copying backend. Sync/Flush sent
      // during COPY IN are ignored by PostgreSQL, so they count for nothing.
      this.copyOut.push(buf.subarray(start, end));
      if (code === FrontendCode.CopyDone || code === FrontendCode.CopyFail) {
        this.lastCopyConn = this.copyConn;
        this.copyConn = null;
      }
      return;
    }
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
      this.cutRequest(false);
    } else if (code === FrontendCode.Flush || code === FrontendCode.CopyDone || code === FrontendCode.CopyFail) {
      this.cutRequest(code === FrontendCode.Flush);
    }
  }

  /** The pending frames form a complete request: hand it to the dispatcher. */
  private cutRequest(flush: boolean): void {
    let data: Buffer;
    if (this.rCount === 1) {
      data = this.rBuf[0]!.subarray(this.rStart[0], this.rEnd[0]);
    } else {
      const parts: Buffer[] = [];
      for (let i = 0; i < this.rCount; i++) parts.push(this.rBuf[i]!.subarray(this.rStart[i], this.rEnd[i]));
      data = Buffer.concat(parts);
    }
    for (let i = 0; i < this.rCount; i++) this.rBuf[i] = undefined as unknown as Buffer;
    this.rCount = 0;
    this.dispatcher!.enqueue({ data, syncs: this.pendingSyncs, flush });
    this.pendingSyncs = 0;
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
    this.dispatcher = new RequestDispatcher(this);
    if (this.ctx.routing.router.loadBalanceMode) this.dispatcher.readNode();
    // Frames that arrived during the handshake after the login exchange: relay them now.
    const early = this.hsQueue;
    this.hsQueue = [];
    for (const f of early) this.onFrame(f.code, f.frame, 0, f.frame.length);
    this.afterChunk();
    this.armIdleLimit(this.ctx.config.client_idle_limit);
  }

  /** client_idle_limit: closes the session after `seconds` without traffic while nothing runs. */
  private armIdleLimit(seconds: number): void {
    this.socket.setTimeout(0);
    this.socket.removeAllListeners('timeout');
    if (seconds <= 0) return;
    this.socket.setTimeout(seconds * 1000, () => {
      if ([...this.conns.values()].every((c) => c.outstanding <= 0)) this.fatal(clientErrors.idleLimit(seconds));
    });
  }

  // ---- DispatchHost -----------------------------------------------------------------------

  /** Logs this session in to another node (a standby for reads), from that node's pool. */
  async connectNode(nodeId: number): Promise<ServerConnection | null> {
    const node = this.ctx.cluster.node(nodeId);
    const pool = this.ctx.pools.get(nodeId);
    if (node === undefined || pool === undefined) return null;
    const key = poolKey(this.user, this.database, this.startupParams);
    try {
      const conn = await pool.acquire(key, () => ServerConnectionClass.connect({
        nodeId, host: node.host, port: node.port, user: this.user, database: this.database, params: this.startupParams,
        connectTimeoutMs: this.ctx.config.connect_timeout, authenticator: credentialAuthenticator(this.user, this.credential), key,
        ...(this.ctx.backendTls !== undefined ? { tls: this.ctx.backendTls } : {}),
      }));
      if (this.phase === 'closed') {
        pool.release(conn, conn.clean);
        return null;
      }
      conn.attach(this);
      this.conns.set(nodeId, conn);
      return conn;
    } catch (e) {
      this.log.warn({ event: LogEvent.BackendConnect, node_id: nodeId, pid: this.pid, err: (e as Error).message },
        `cannot log in to node ${nodeId}; reads go to another node, writes fail until it (or another primary) is reachable`);
      return null;
    }
  }

  /** Writes pgmaitre's own messages to the client. */
  writeClient(buf: Buffer): void {
    if (this.socket.writable) this.socket.write(buf);
  }

  pauseClient(): void {
    this.pauseFor('queue');
  }

  resumeClient(): void {
    this.resumeFor('queue');
  }

  private pauseFor(why: 'queue' | 'drain'): void {
    if (why === 'queue') this.pausedForQueue = true;
    else this.pausedForDrain = true;
    if (!this.socket.isPaused()) this.socket.pause();
  }

  private resumeFor(why: 'queue' | 'drain'): void {
    if (why === 'queue') this.pausedForQueue = false;
    else this.pausedForDrain = false;
    if (!this.pausedForQueue && !this.pausedForDrain && this.phase === 'ready' && this.socket.isPaused()) this.socket.resume();
  }

  /** The asking session for admin commands. */
  adminSession(): AdminSession {
    return {
      pid: this.pid,
      user: this.user,
      database: this.database,
      loadBalanceNode: this.dispatcher?.lbNode ?? -1,
      getParam: (name) => (this.overrides.has(name) ? this.overrides.get(name) : (this.ctx.config as unknown as Record<string, unknown>)[name]),
      setParam: (name, value) => {
        this.overrides.set(name, value);
        this.applyOverrides();
      },
      resetParam: (name) => {
        if (name === '*') this.overrides.clear();
        else this.overrides.delete(name);
        this.applyOverrides();
      },
    };
  }

  // ---- PGPOOL SET: session-scoped parameters --------------------------------------------

  private own: { logFlags?: LogFlags; log?: Logger; notice?: boolean; classifier?: Classifier } = {};

  /** Log switches for this session (its PGPOOL SET overrides, else the live config). */
  get logFlags(): LogFlags {
    return this.own.logFlags ?? this.ctx.logFlags;
  }

  /** Logger for this session (a child with its own level after PGPOOL SET log_min_messages). */
  get log(): Logger {
    return this.own.log ?? this.ctx.log;
  }

  /** notice_per_node_statement for this session. */
  get noticePerNode(): boolean {
    return this.own.notice ?? this.ctx.routing.noticePerNode;
  }

  /** Classifier for this session (allow_sql_comments may be set per session). */
  get classifier(): Classifier {
    return this.own.classifier ?? this.ctx.routing.classifier;
  }

  /** Rebuilds what the session's PGPOOL SET overrides change. */
  private applyOverrides(): void {
    const o = this.overrides;
    const cfg = this.ctx.config;
    const own: typeof this.own = {};
    if (o.has('log_statement') || o.has('log_per_node_statement') || o.has('log_client_messages')) {
      own.logFlags = {
        ...this.ctx.logFlags,
        statement: (o.get('log_statement') as boolean | undefined) ?? cfg.log_statement,
        perNodeStatement: (o.get('log_per_node_statement') as boolean | undefined) ?? cfg.log_per_node_statement,
        clientMessages: (o.get('log_client_messages') as boolean | undefined) ?? cfg.log_client_messages,
      };
    }
    if (o.has('log_min_messages')) own.log = this.ctx.log.child({ pid: this.pid }, { level: pinoLevel(String(o.get('log_min_messages'))) });
    if (o.has('notice_per_node_statement')) own.notice = Boolean(o.get('notice_per_node_statement'));
    if (o.has('allow_sql_comments')) {
      own.classifier = createClassifier({
        writeFunctions: cfg.write_function_list, readOnlyFunctions: cfg.read_only_function_list,
        primaryRoutingPatterns: cfg.primary_routing_query_pattern_list,
        allowSqlComments: Boolean(o.get('allow_sql_comments')), ignoreLeadingWhiteSpace: cfg.ignore_leading_white_space,
      });
    }
    this.own = own;
    const idle = (o.get('client_idle_limit') as number | undefined) ?? cfg.client_idle_limit;
    this.armIdleLimit(idle);
  }

  /** This session as admin commands see it. */
  info(): SessionInfo {
    const busy = [...this.conns.values()].some((c) => c.outstanding > c.discardZ);
    const inTx = this.dispatcher?.route.inTransaction ?? false;
    return {
      pid: this.pid,
      slot: this.slot?.slot ?? -1,
      connectedAt: this.connectedAt,
      user: this.user,
      database: this.database,
      applicationName: this.applicationName,
      address: this.address,
      port: this.port,
      status: this.phase !== 'ready' ? 'Wait for connection' : busy ? 'Execute command' : inTx ? 'Idle in transaction' : 'Idle',
      loadBalanceNode: this.dispatcher?.lbNode ?? -1,
      backends: [...this.conns.values()].map((c) => ({ nodeId: c.nodeId, backendPid: c.backendPid, connectedAt: new Date(c.createdAt), useCount: c.useCount })),
    };
  }

  // ---- relay server → client --------------------------------------------------------------

  /** ServerSink: a chunk from a backend, forwarded untouched. */
  onServerData(conn: ServerConnection, chunk: Buffer, async = false): void {
    if (this.phase !== 'ready') return;
    // Asynchronous messages only from the primary (NOTIFY, notices, ParameterStatus the client tracks).
    if (async && conn.nodeId !== this.ctx.cluster.primaryId()) return;
    if (conn.copyIn && this.copyConn === null && this.lastCopyConn !== conn) this.copyConn = conn;
    if (!this.socket.write(chunk)) {
      conn.pause();
      this.socket.once('drain', () => conn.resume());
    }
  }

  /** ServerSink: a server announced its shutdown; swallow it when the reads in flight can be retried. */
  onServerGoodbye(conn: ServerConnection): boolean {
    return this.phase === 'ready' && this.copyConn !== conn && this.dispatcher !== null && this.dispatcher.canRetry(conn);
  }

  /** ServerSink: ReadyForQuery seen on a backend. */
  onReadyForQuery(conn: ServerConnection): void {
    if (this.copyConn === conn) this.copyConn = null;
    if (this.lastCopyConn === conn) this.lastCopyConn = null;
    this.dispatcher?.onReadyForQuery(conn);
  }

  /** ServerSink: a backend connection died under us. */
  onServerClosed(conn: ServerConnection, reason: string): void {
    this.conns.delete(conn.nodeId);
    this.log.warn({ event: LogEvent.BackendError, node_id: conn.nodeId, pid: this.pid, reason }, 'backend connection lost');
    // failover_on_backend_error is about a connection lost without a word; a FATAL goodbye
    // (57P01/57P02: pg_terminate_backend, a server shutdown) counts only with failover_on_backend_shutdown.
    const shutdown = conn.goodbyeCode === '57P01' || conn.goodbyeCode === '57P02';
    if (conn.goodbyeCode === '' || (shutdown && this.ctx.config.failover_on_backend_shutdown)) this.ctx.onBackendError(conn.nodeId, reason);
    const goOn = this.phase === 'ready' && this.copyConn !== conn && this.dispatcher !== null && this.dispatcher.connectionLost(conn);
    this.releaseConn(conn, false, reason);
    if (!goOn) {
      this.fatal(clientErrors.backendLost(conn.nodeId));
      return;
    }
    // Nothing of the client's was lost: reads retried elsewhere, writes wait for a primary.
    this.dispatcher!.drive();
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
      this.log.info({ event: LogEvent.CancelForwarded, pid: this.pid, node_id: conn.nodeId }, 'cancel request forwarded');
    }
  }

  private logFrame(code: number, buf: Buffer, start: number, end: number): void {
    const f = this.logFlags;
    if (f.clientMessages) logLine(this.log, { event: LogEvent.ClientMessage, pid: this.pid, kind: String.fromCharCode(code), length: end - start - 1 }, 'client message');
    if (!f.statement) return;
    let sql: string | null = null;
    try {
      if (code === FrontendCode.Query) sql = decodeQuery(buf, start, end);
      else if (code === FrontendCode.Parse) sql = decodeParse(buf, start, end).sql;
    } catch {
      sql = '<malformed message>'; // the backend will answer it with its own protocol error
    }
    if (sql === null) return;
    if (f.statement) logLine(this.log, { event: LogEvent.Statement, pid: this.pid, user: this.user, database: this.database }, `statement: ${sql}`);
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
      // Only a connection left idle (no transaction open, nothing in flight) is reset and reused;
      // one left inside a transaction is closed, so its transaction ends with the backend.
      const clean = conn.clean && this.copyConn !== conn;
      if (!clean && conn.outstanding > 0) this.cancel();
      this.releaseConn(conn, clean, clean ? '' : 'client left with a transaction open or a request in flight');
    }
    this.conns.clear();
    if (this.slot !== null) {
      this.slot.release();
      this.slot = null;
    }
    this.ctx.registry.delete(this);
    if (!this.socket.destroyed) this.socket.end();
    if (wasReady && this.logFlags.disconnections) {
      const secs = (Date.now() - this.connectedAt.getTime()) / 1000;
      logLine(this.log, { event: LogEvent.Disconnected, pid: this.pid, user: this.user, database: this.database,
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
