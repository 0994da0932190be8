/**
 * One client connection: its socket, startup packet (SSL/GSS negotiation, CancelRequest), login
 * (handshake.ts), then the session core (core/session-core.ts), which owns every request.
 *
 * This file is the socket side only: it frames the client's bytes (protocol/framer.ts: header
 * scan, ranges over the received chunk, no copy) and hands each frame to the core; it hands each
 * backend chunk to the core untouched; and it implements what the core asks for through its host
 * interface (open or give back a backend connection from the node's pool, run an admin command,
 * pause a socket, end the session). Backpressure both ways: the core pauses the client while its
 * backends' sockets are full and the backends while the client's is.
 */
import { Buffer } from 'node:buffer';
import { SessionCache } from '../cache/session-cache';
import type * as net from 'node:net';
import { connect as netConnect } from 'node:net';
import { Framer, startupPacketLength, type FrameSink } from '../protocol/framer';
import { BackendCode, FrontendCode, Limits, TxStatus } from '../protocol/codes';
import {
  encodeAuthentication, encodeErrorResponse, encodeParameterStatus,
} from '../protocol/backend';
import { decodeStartupPacket, encodeCancelRequest, replicationMode, type StartupPacket } from '../protocol/startup';
import { LruCache } from '../util/lru-cache';
import { decodeParse, decodeQuery } from '../protocol/frontend';
import type { ErrorFieldsInput } from '../protocol/error-fields';
import { clientErrors, startupRefusal } from '../errors/client-errors';
import { ServerConnection, ServerParams, type ServerSink } from '../backend/server-connection';
import { credentialAuthenticator, type BackendCredential } from '../backend/backend-auth';
import { probeAccepting } from '../backend/accepting-probe';
import { backendAddress } from '../backend/tls-negotiate';
import { LogEvent, logLine, pinoLevel, type LogFlags, type Logger } from '../log/logger';
import { createClassifier } from '../classify/classify';
import type { Classifier } from '../classify/types';
import type { AdminSession, SessionInfo } from '../admin/types';
import { nodeLatency } from '../admin/latency';
import { SessionCore } from '../core/session-core';
import type { CoreHost } from '../core/core-host';
import type { BackendPort } from '../core/ports';
import { adminReply, errorReply } from '../core/local-replies';
import type { SlotLease } from './slots';
import type { FrontendContext } from './context';
import type { RegisteredSession } from './registry';
import { leaseLimit, login, poolKey, type LoginFailed, type LoginIO, type LoginOk, type StartupInfo } from './handshake';
import { LeaseTimeout, type LeaseCallback } from '../pool/node-pool';
import type { PoolMode } from '../config/pool-mode';
import { LinkRefused } from '../core/core-host';
import { ProxyErrorCode, type ProxyError } from '../errors/proxy-error';
import { answerSslRequest } from './tls';
import { copyRead, countCopied, switchToReadBuffer } from '../util/fast-read';
import { fastWrite } from '../util/fast-write';
import { isUnixSocket } from './listener';
import { RawSocket } from '../util/raw-socket';
import { TimeoutLists, type TimeoutEntry } from '../util/timeout-lists';
import { lbCandidates } from './lb-candidates';
import type { LbCandidate } from '../router/lb-select';

type Phase = 'startup' | 'handshake' | 'ready' | 'closed';

/**
 * Bytes of frames a client may have queued before its login is done: the socket is paused as
 * soon as a frame waits (so one read's worth at most), this is the backstop (08P01 beyond it).
 */
const HANDSHAKE_QUEUE_LIMIT = 2 * Limits.MaxAuthMessage;

const SSL_NO = Buffer.from('N');

/** What a session's PGPOOL SET overrides change (applyOverrides). */
interface OwnSettings {
  readonly logFlags?: LogFlags;
  readonly log?: Logger;
  readonly notice?: boolean;
  readonly classifier?: Classifier;
}

// A new session's starting values, shared (never changed; each is replaced, not modified).
const NO_OWN: OwnSettings = Object.freeze({});
const NO_PARAMS: Record<string, string> = Object.freeze({}) as Record<string, string>;
const NO_CREDENTIAL: BackendCredential = Object.freeze({ kind: 'none' });
/** What follows a startup packet that filled its read. */
const NOTHING = Buffer.alloc(0);
const noop = (): void => {};

/** leaseLater() for a node without a pool: no connection, reported in a microtask. */
function noLease(done: (conn: BackendPort | null, refused: LinkRefused | null) => void): void {
  queueMicrotask(() => done(null, null));
}
/** Logins of a leased connection tried when the server terminates them (creator()). */
const LOGIN_TERMINATED_TRIES = 5;

/** authentication_timeout of every connection, without a Node timer each (util/timeout-lists.ts). */
const startupTimeouts = new TimeoutLists();

/**
 * AuthenticationOk and the ParameterStatus messages of a greeting, encoded once per cached
 * greeting (transaction pooling: ctx.greetings holds maps never changed once stored), so a login
 * like one already answered does not encode its ~14 ParameterStatus messages again. A login
 * connection's own parameters (session pooling) can change: encoded again when their version
 * moved, from ParameterStatus messages encoded once per (name, value) (bounded).
 */
const encodedGreetings = new WeakMap<ReadonlyMap<string, string>, Buffer>();
const encodedParams = new Map<string, Buffer>();
const ENCODED_PARAMS_MAX = 4096;
const AUTH_OK = encodeAuthentication({ type: 'AuthenticationOk' });

function parameterStatus(name: string, value: string): Buffer {
  const key = `${name}\u0000${value}`;
  let b = encodedParams.get(key);
  if (b === undefined) {
    if (encodedParams.size >= ENCODED_PARAMS_MAX) encodedParams.clear();
    b = encodeParameterStatus(name, value);
    encodedParams.set(key, b);
  }
  return b;
}

/** Session pooling: the greeting of a login connection, as long as its parameters stay the same. */
const ownGreetings = new WeakMap<ServerParams, { readonly version: number; readonly bytes: Buffer }>();

function greetingBytes(r: LoginOk): Buffer {
  const cacheable = r.conn === null;
  const own = r.params instanceof ServerParams ? r.params : null;
  if (cacheable) {
    const known = encodedGreetings.get(r.params);
    if (known !== undefined) return known;
  } else if (own !== null) {
    const known = ownGreetings.get(own);
    if (known !== undefined && known.version === own.version) return known.bytes;
  }
  const parts: Buffer[] = [AUTH_OK];
  for (const [name, value] of r.params) parts.push(parameterStatus(name, value));
  const bytes = Buffer.concat(parts);
  if (cacheable) encodedGreetings.set(r.params, bytes);
  else if (own !== null) ownGreetings.set(own, { version: own.version, bytes });
  return bytes;
}

/**
 * The whole answer to a login in one buffer: AuthenticationOk and the ParameterStatus messages
 * (`greeting`), BackendKeyData, ReadyForQuery.
 */
function loginReply(greeting: Buffer, pid: number, secret: number, txStatus: number): Buffer {
  const out = Buffer.allocUnsafe(greeting.length + 13 + 6);
  greeting.copy(out, 0);
  return fillKey(out, greeting.length, pid, secret, txStatus);
}

/**
 * Writes BackendKeyData and ReadyForQuery at `at` of `out` (bytes stored directly: `out` is
 * long enough by construction, and writeInt32BE's argument checks were most of this function).
 */
function fillKey(out: Buffer, at: number, pid: number, secret: number, txStatus: number): Buffer {
  out[at] = BackendCode.BackendKeyData;
  out[at + 1] = 0;
  out[at + 2] = 0;
  out[at + 3] = 0;
  out[at + 4] = 12;
  put32(out, at + 5, pid);
  put32(out, at + 9, secret);
  out[at + 13] = BackendCode.ReadyForQuery;
  out[at + 14] = 0;
  out[at + 15] = 0;
  out[at + 16] = 0;
  out[at + 17] = 5;
  out[at + 18] = txStatus;
  return out;
}

/** A 32-bit integer, big-endian, at `at` of `out`. */
function put32(out: Buffer, at: number, v: number): void {
  out[at] = v >>> 24;
  out[at + 1] = (v >>> 16) & 0xff;
  out[at + 2] = (v >>> 8) & 0xff;
  out[at + 3] = v & 0xff;
}

/**
 * A login reply buffer per greeting, reused: a connection per request gets the same greeting
 * each time, and its reply differs in the last 13 bytes only (pid, secret, status). A buffer is
 * taken out while it is written and put back when the kernel took the write whole (a write that
 * went async keeps its bytes until done, and must not see them change): no allocation and no
 * copy of the ~400-byte greeting per login.
 */
const replyBuffers = new WeakMap<Buffer, { free: Buffer | null }>();

function writeLoginReply(socket: RawSocket, greeting: Buffer, pid: number, secret: number, txStatus: number): void {
  let slot = replyBuffers.get(greeting);
  if (slot === undefined) replyBuffers.set(greeting, (slot = { free: null }));
  let out = slot.free;
  slot.free = null;
  if (out === null) {
    out = Buffer.allocUnsafeSlow(greeting.length + 13 + 6);
    greeting.copy(out, 0);
  }
  fillKey(out, greeting.length, pid, secret, txStatus);
  socket.write(out);
  if (socket.writeDone) slot.free = out;
}

/**
 * Decoded StartupMessages by their bytes (bounded): a client that connects per request sends the
 * same one each time, and the login derives its keys once per params object (handshake.ts). The
 * params of a cached message are frozen: shared by every session that sent those bytes.
 */
const startups = new LruCache<StartupPacket>(256);
const CACHED_STARTUP_MAX = 1024;

/**
 * The last StartupMessage decoded or found, by its bytes: most clients that connect per request
 * send the very same one as the client before them, recognised by a compare of the bytes (no key
 * string made and hashed, no move in the LRU's order).
 */
let lastStartupBytes: Buffer | null = null;
let lastStartup: StartupPacket | null = null;

export function decodeStartup(packet: Buffer, len: number): StartupPacket {
  // (SSLRequest, GSSENCRequest: 8 bytes, CancelRequest: 16; a StartupMessage is longer.)
  if (len > CACHED_STARTUP_MAX || len <= 16) return decodeStartupPacket(packet, 0, len);
  const last = lastStartupBytes;
  if (last !== null && last.length === len && packet.equals(last)) return lastStartup!;
  const key = packet.toString('latin1', 4, len);
  let msg = startups.get(key);
  if (msg === undefined) {
    msg = decodeStartupPacket(packet, 0, len);
    if (msg.type !== 'Startup') return msg;
    Object.freeze(msg.params);
    startups.set(key, msg);
  }
  lastStartupBytes = Buffer.from(packet.subarray(0, len));
  lastStartup = msg;
  return msg;
}

/** A client session; see the file header. */

/** Frame types a logged-in client may send (Terminate is handled before the core). */
const KNOWN_AFTER_LOGIN: boolean[] = (() => {
  const t: boolean[] = [];
  for (const ch of 'BCdcfDEHFPQSX') t[ch.charCodeAt(0)] = true;
  return t;
})();

export class ClientSession implements FrameSink, ServerSink, RegisteredSession, CoreHost, LoginIO {
  /** The pid the client was given: its login connection's backend pid. */
  pid = 0;
  secret = 0;
  /** When the client connected (a time; the Date is made when asked, by admin commands). */
  private readonly connectedMs = Date.now();
  get connectedAt(): Date {
    return new Date(this.connectedMs);
  }
  /** The accepted socket (its peer's address is asked for when first wanted). */
  private readonly accepted: net.Socket | RawSocket;
  private peerAddress: string | null = null;
  private peerPort = 0;
  /** The client's address ('' for a Unix-domain socket). */
  get address(): string {
    if (this.peerAddress === null) this.askPeer();
    return this.peerAddress!;
  }
  get port(): number {
    if (this.peerAddress === null) this.askPeer();
    return this.peerPort;
  }
  private askPeer(): void {
    this.peerAddress = this.accepted.remoteAddress ?? '';
    this.peerPort = this.accepted.remotePort ?? 0;
  }
  user = '';
  database = '';
  applicationName = '';
  slot: SlotLease | null = null;
  /** Startup parameters other than user/database (sent when logging in to more nodes). */
  private startupParams: Record<string, string> = NO_PARAMS;
  /** What pgmaitre holds to log this user in to more nodes. */
  private credential: BackendCredential = NO_CREDENTIAL;
  /** pool_mode of this session. */
  pooling: PoolMode = 'session';
  /** Transaction pooling: the pool key shared by the clients of this (user, database). */
  private leaseKey = '';
  /** The core, once the session is ready. */
  core: SessionCore | null = null;
  /** PGPOOL SET overrides of this session (made when first used: most sessions set none). */
  get overrides(): Map<string, unknown> {
    return this.ownOverrides ??= new Map<string, unknown>();
  }
  private ownOverrides: Map<string, unknown> | null = null;

  private phase: Phase = 'startup';
  private startupBytes: Buffer | null = null;
  private readonly framer: Framer;
  // Handshake: frames are queued for the async login flow.
  private hsQueue: { code: number; frame: Buffer }[] | null = null;
  private hsWaiter: ((v: { code: number; frame: Buffer } | null) => void) | null = null;
  private hsBytes = 0;
  private closing = false;
  /** The client sent Terminate: it sends nothing more, and its socket can be closed at once. */
  private peerDone = false;
  private closeReason = '';
  private goneResolve: (() => void) | null = null;
  private gonePromise: Promise<void> | null = null;

  /** Resolves when the client goes away (made on first use: most logins never wait for anything). */
  get goneSignal(): Promise<void> {
    if (this.gonePromise === null) {
      this.gonePromise = this.phase === 'closed' ? Promise.resolve() : new Promise<void>((resolve) => { this.goneResolve = resolve; });
    }
    return this.gonePromise;
  }

  /**
   * The client's socket: the accepted one (a RawSocket, util/raw-socket.ts, when the listener
   * hands handles over; else a net.Socket), or the TLSSocket over it after SSL negotiation.
   */
  socket: net.Socket | RawSocket;
  /** True once the client's connection is encrypted (pool_hba hostssl/hostnossl). */
  tlsActive = false;
  private sslRequests = 0;
  private gssRequests = 0;
  private startupTimer: TimeoutEntry | null = null;

  constructor(socket: net.Socket | RawSocket, readonly ctx: FrontendContext) {
    this.socket = socket;
    this.accepted = socket;
    this.framer = new Framer(ctx.config.max_message_size);
    this.listen(socket);
    this.armStartupTimer();
  }

  private listen(socket: net.Socket | RawSocket): void {
    if (socket instanceof RawSocket) {
      // Every read, the login's too, lands in the shared read buffer (no 64 KiB buffer of Node's
      // per read): onView copies what it keeps.
      socket.onRead = (view) => this.onView(view);
      socket.useSharedBuffer();
      socket.onDrain = () => this.core?.guard(() => this.core!.onClientDrain());
      socket.onEnd = (reason) => this.clientLeft(reason ?? 'client disconnected');
      socket.start();
      return;
    }
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.core?.guard(() => this.core!.onClientDrain()));
    socket.on('error', (e: NodeJS.ErrnoException) => this.clientLeft(`client socket error: ${e.code ?? e.message}`));
    socket.on('close', () => this.clientLeft('client disconnected'));
  }

  // ---- input ------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.phase === 'ready') {
      // The boundary where client bytes enter the core: a throw ends this session only.
      try {
        if (this.framer.push(chunk, this) !== 0) this.badLength();
        else this.core?.endOfInput();
      } catch (e) {
        this.crashed(e);
      }
      return;
    }
    if (this.phase === 'startup') this.onStartupData(chunk);
    else if (this.phase === 'handshake' && this.framer.push(chunk, this) !== 0) this.badLength();
  }

  /**
   * A read in a shared read buffer (util/fast-read.ts, util/raw-socket.ts), valid during the call:
   * the framer copies what it keeps, once. Before the login, the startup packet is decoded from
   * the view (onStartupData copies what it keeps); the login's messages are copied.
   */
  private onView(view: Buffer): void {
    if (this.phase !== 'ready') {
      if (this.phase === 'startup') this.onStartupData(view);
      else this.onData(copyRead(view));
      return;
    }
    // The boundary where client bytes enter the core: a throw ends this session only.
    try {
      // A read that is, whole, a request the query cache answers from its bytes (nothing else
      // under way): answered before it is framed — no copy, no request queued (core/cache-glue.ts).
      if (this.framer.atBoundary && !this.logFlags.statement && !this.logFlags.clientMessages && this.core?.quickRead(view) === true) return;
      // A read that is, whole, a Query like the session's last one, when nothing its plan read
      // changed: sent on that plan, not framed, queued or planned (SessionCore.quickForward).
      if (this.framer.atBoundary && this.core?.quickForward(view, this.ctx.config.max_message_size) === true) return;
      if (this.framer.pushView(view, this, countCopied) !== 0) this.badLength();
      else this.core?.endOfInput();
    } catch (e) {
      this.crashed(e);
    }
  }

  /** An exception escaped the core (a bug): FATAL XX000 for this session, its connections closed. */
  private crashed(e: unknown): void {
    if (this.core !== null) this.core.crash(e, 'session');
    else {
      this.log.error({ event: 'session_crash', pid: this.pid, err: e }, 'internal error in a session; ending it');
      this.fatal(clientErrors.internal());
    }
  }

  private badLength(): void {
    const bad = this.framer.violation;
    this.fatal(clientErrors.protocolViolation(bad < 0 ? 'invalid message length' : `invalid message length ${bad} (max_message_size is ${this.ctx.config.max_message_size})`));
  }

  /** FrameSink: one complete client frame. */
  onFrame(code: number, buf: Buffer, start: number, end: number): void {
    if (this.phase === 'ready') {
      if (code === FrontendCode.Terminate) {
        this.peerDone = true;
        this.clientLeft('client sent Terminate');
        return;
      }
      if (this.logFlags.statement || this.logFlags.clientMessages) this.logFrame(code, buf, start, end);
      if (!KNOWN_AFTER_LOGIN[code]) {
        this.unknownFrame(code);
        return;
      }
      this.core!.onFrame(code, buf, start, end);
      return;
    }
    if (this.phase !== 'handshake') return;
    const item = { code, frame: Buffer.from(buf.subarray(start, end)) };
    if (this.hsWaiter !== null) {
      const w = this.hsWaiter;
      this.hsWaiter = null;
      w(item);
      return;
    }
    // Nobody reads yet (the login waits for a slot, auth_query, a backend login): the socket is
    // not read until someone does, and what one read brought is bounded.
    (this.hsQueue ??= []).push(item);
    this.hsBytes += item.frame.length;
    this.socket.pause();
    if (this.hsBytes > HANDSHAKE_QUEUE_LIMIT) {
      this.fatal(clientErrors.protocolViolation(`more than ${HANDSHAKE_QUEUE_LIMIT} bytes sent before authentication completed`));
    }
  }

  /**
   * authentication_timeout counts from the accept, as in PostgreSQL: a client that never
   * completes its startup packet (slowloris) or its login is cut off.
   */
  private armStartupTimer(): void {
    const sec = this.ctx.config.authentication_timeout;
    if (sec <= 0) return;
    this.startupTimer = startupTimeouts.schedule(sec * 1000, () => {
      this.startupTimer = null;
      if (this.phase === 'startup' || this.phase === 'handshake') this.fatal(clientErrors.authenticationTimeout());
    });
  }

  private loginFinished(): void {
    if (this.startupTimer !== null) {
      startupTimeouts.cancel(this.startupTimer);
      this.startupTimer = null;
    }
  }

  /** Answers an SSLRequest: 'S' and the TLS upgrade when TLS is configured (TCP only), else 'N'. */
  private onSslRequest(rest: Buffer): boolean {
    if (this.socket instanceof RawSocket) {
      if (this.ctx.tls === null || this.ctx.tls === undefined) {
        if (++this.sslRequests > 1) {
          this.fatal(clientErrors.protocolViolation('duplicate SSLRequest'));
          return false;
        }
        this.socket.write(SSL_NO);
        return true;
      }
      // TLS: Node's TLSSocket works over a net.Socket.
      this.socket = this.socket.toNetSocket();
      this.listen(this.socket);
    }
    const answer = answerSslRequest(this.socket, this.ctx.tls, {
      again: ++this.sslRequests > 1 || this.tlsActive, unencryptedAfter: rest.length > 0, detach: ['data', 'drain'],
      badCertificate: (e) => this.fatal(e),
    });
    if (answer.kind === 'refused') {
      this.fatal(answer.error);
      return false;
    }
    if (answer.kind === 'tls') {
      this.socket = answer.socket;
      this.tlsActive = true;
      this.listen(answer.socket);
    }
    return true;
  }

  /** Startup-phase bytes; `chunk` may be a view of a shared read buffer: what is kept is copied. */
  private onStartupData(chunk: Buffer): void {
    let buf = this.startupBytes === null ? chunk : Buffer.concat([this.startupBytes, chunk]);
    for (;;) {
      const len = startupPacketLength(buf, Limits.MaxStartupPacket);
      if (len < 0) {
        // PostgreSQL logs "invalid length of startup packet" and closes without a word (a client
        // that sends Terminate before its startup packet, a port scanner): so do we.
        logLine(this.log, { event: LogEvent.ProtocolViolation, host: this.address, port: this.port }, 'invalid length of startup packet');
        this.close('invalid length of startup packet');
        return;
      }
      if (len === 0) {
        this.startupBytes = buf.length > 0 ? Buffer.from(buf) : null;
        return;
      }
      // (A read that is one whole packet, the usual case, is used as it is: no views made.)
      const whole = len === buf.length;
      const packet = whole ? buf : buf.subarray(0, len);
      buf = whole ? NOTHING : buf.subarray(len);
      let msg: ReturnType<typeof decodeStartupPacket>;
      try {
        msg = decodeStartup(packet, len);
      } catch (e) {
        this.fatal(startupRefusal(e));
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
          if (this.ctx.replication !== undefined && replicationMode(msg.params) !== null) {
            this.handOverReplication(packet, buf, msg.params);
            return;
          }
          this.startupBytes = null;
          this.phase = 'handshake';
          // Until the client is authenticated, only small messages (passwords, SASL) are accepted.
          this.framer.setMaxLength(Math.min(Limits.MaxAuthMessage, this.ctx.config.max_message_size));
          this.user = msg.params.user ?? '';
          this.database = msg.params.database || this.user;
          const info: StartupInfo = { protocol: msg.protocol, params: msg.params };
          if (buf.length > 0) this.onData(Buffer.from(buf));
          const r = login(this, info);
          if (r instanceof Promise) r.then((x) => this.loggedIn(x), (e: unknown) => this.loginCrashed(e));
          else {
            // Answered at once (nothing to wait for): still inside this read's callback, where
            // an exception must end this session only.
            try {
              this.loggedIn(r);
            } catch (e) {
              this.loginCrashed(e);
            }
          }
          return;
        }
        default:
          this.fatal(clientErrors.protocolViolation(`unsupported startup request code ${msg.code}`));
          return;
      }
    }
  }

  private loggedIn(r: LoginOk | LoginFailed): void {
    this.loginFinished();
    if (r.ok) this.enterReady(r);
    else if (r.fatal !== null) this.fatal(r.fatal);
    else this.close(r.reason);
  }

  private loginCrashed(e: unknown): void {
    this.log.error({ err: e, event: 'handshake_crash' }, 'unexpected error during handshake');
    this.fatal(clientErrors.internal());
  }

  /**
   * A replication connection: the socket goes to the replication relay as it is (no login here),
   * and this session ends without closing it. Its remaining socket listeners see a closed session.
   */
  private handOverReplication(packet: Buffer, rest: Buffer, params: Record<string, string>): void {
    const socket = this.socket instanceof RawSocket ? this.socket.toNetSocket() : this.socket;
    this.socket = socket;
    socket.removeAllListeners('data');
    socket.removeAllListeners('drain');
    this.closing = true;
    this.closeReason = 'replication connection handed over';
    this.phase = 'closed';
    this.startupBytes = null;
    this.loginFinished();
    this.goneResolve?.();
    this.ctx.replication!({
      socket, tlsActive: this.tlsActive, unixSocket: isUnixSocket(socket), address: this.address, port: this.port,
      connectedAt: this.connectedAt, packet: Buffer.from(packet), params, rest: Buffer.from(rest),
    });
  }

  // ---- LoginIO ----------------------------------------------------------------------------

  get gone(): boolean {
    return this.phase === 'closed';
  }

  get unixSocket(): boolean {
    return !(this.socket instanceof RawSocket) && isUnixSocket(this.socket);
  }

  send(buf: Buffer): void {
    if (this.socket.writable) this.socket.write(buf);
  }

  nextFrame(): Promise<{ code: number; frame: Buffer } | null> {
    const queued = this.hsQueue?.shift();
    if (queued !== undefined) {
      this.hsBytes -= queued.frame.length;
      return Promise.resolve(queued);
    }
    if (this.phase === 'closed') return Promise.resolve(null);
    this.socket.resume();
    return new Promise((resolve) => { this.hsWaiter = resolve; });
  }

  /** Client authenticated: messages up to max_message_size are accepted again. */
  authenticated(): void {
    this.framer.setMaxLength(this.ctx.config.max_message_size);
  }

  /** Login done: the client gets its parameters and key, and the core takes over. */
  private enterReady(r: LoginOk): void {
    if (this.phase !== 'handshake') {
      if (r.conn !== null) {
        r.conn.detach();
        const pool = this.ctx.pools.get(r.node);
        // A connection leased in transaction pooling goes back as a lease (handshake.ts does the same).
        if (r.mode !== 'session') pool?.giveBack(r.conn, r.conn.clean, 'client disconnected during login', leaseLimit(this.ctx.config));
        else pool?.release(r.conn, r.conn.clean);
      }
      r.slot.release();
      return;
    }
    this.user = r.user;
    this.database = r.database;
    this.applicationName = r.applicationName;
    this.startupParams = r.startupParams;
    this.credential = r.credential;
    this.slot = r.slot;
    this.pooling = r.mode;
    this.leaseKey = r.leaseKey;
    // The client's key: its primary backend's pid (pg_backend_pid(), NOTIFY pids agree with it)
    // and pgmaitre's own secret, so that its cancel requests come through pgmaitre. With
    // transaction pooling it has no backend of its own: a pid of pgmaitre's.
    this.pid = r.mode === 'session' && r.conn !== null ? r.conn.backendPid : this.ctx.registry.issuePid();
    this.secret = this.ctx.registry.issueSecret();
    this.ctx.registry.add(this);
    this.phase = 'ready';
    // From now on reads go into the shared read buffer (util/fast-read.ts), copied once: the
    // core keeps request bytes until they are written (and reads retried).
    if (this.socket instanceof RawSocket) {
      this.socket.useSharedBuffer(); // (since the accept: listen())
    } else if (!this.tlsActive) {
      switchToReadBuffer(this.socket, (view) => this.onView(view));
    }
    const qc = this.ctx.queryCache ?? null;
    if (qc !== null) {
      this.cache = new SessionCache(qc, { user: this.user, database: this.database, startupParams: this.startupParams },
        () => this.classifier, () => this.ctx.routing.volatility);
    }
    const core = new SessionCore(this, this);
    this.core = core;
    if (r.base.size > 0) core.state.setBase(r.base);
    // (A connection's own map changes with it: a copy. A greeting without one is shared and fixed.)
    if (this.pooling !== 'session') core.loginParams = r.conn === null ? r.params : new Map(r.params);
    if (r.conn !== null) {
      r.conn.attach(this);
      core.attachLogin(r.node, r.conn);
    } else {
      core.loginNode(r.node); // logged in without a connection: the first request leases one
    }
    const txStatus = r.conn?.txStatus ?? TxStatus.Idle;
    if (this.socket instanceof RawSocket) writeLoginReply(this.socket, greetingBytes(r), this.pid, this.secret, txStatus);
    else this.socket.write(loginReply(greetingBytes(r), this.pid, this.secret, txStatus));
    if (this.ctx.logFlags.connections) {
      logLine(this.ctx.log, { event: LogEvent.ConnectionAuthorized, pid: this.pid, user: this.user, database: this.database, node_id: r.node },
        `connection authorized: user=${this.user} database=${this.database}`);
    }
    if (this.ctx.routing.router.loadBalanceMode) core.pickReadNode();
    // Frames that arrived during the handshake after the login exchange: relay them now.
    const early = this.hsQueue;
    this.hsQueue = null;
    this.hsBytes = 0;
    this.socket.resume(); // paused while login frames waited (the core pauses it again if it must)
    if (early !== null) for (const f of early) this.onFrame(f.code, f.frame, 0, f.frame.length);
    core.endOfInput();
    this.armIdleLimit(this.ctx.config.client_idle_limit);
  }

  /** client_idle_limit: closes the session after `seconds` without traffic while nothing runs. */
  private armIdleLimit(seconds: number): void {
    if (this.socket instanceof RawSocket) {
      this.socket.setIdleTimeout(seconds * 1000, () => {
        if (this.core?.busy !== true) this.fatal(clientErrors.idleLimit(seconds));
      });
      return;
    }
    this.socket.setTimeout(0);
    this.socket.removeAllListeners('timeout');
    if (seconds <= 0) return;
    this.socket.setTimeout(seconds * 1000, () => {
      if (this.core?.busy !== true) this.fatal(clientErrors.idleLimit(seconds));
    });
  }

  // ---- CoreHost ---------------------------------------------------------------------------

  get cluster(): FrontendContext['cluster'] {
    return this.ctx.cluster;
  }

  get routing(): FrontendContext['routing'] {
    return this.ctx.routing;
  }

  get config(): FrontendContext['config'] {
    return this.ctx.config;
  }

  get lsn(): FrontendContext['lsn'] {
    return this.ctx.lsn;
  }

  get adminEnabled(): boolean {
    return this.ctx.admin !== null;
  }

  lbCandidates(primaryId: number, excluded: (id: number) => boolean): LbCandidate[] {
    return lbCandidates(this.ctx, primaryId, excluded);
  }

  /** Transaction pooling: an idle connection of this session's key on `nodeId`, at once. */
  leaseNow(nodeId: number): BackendPort | null {
    const conn = this.ctx.pools.get(nodeId)?.tryLease(this.leaseKey) ?? null;
    if (conn !== null) {
      conn.attach(this);
      if (this.pinCounted) this.pinOutside(conn);
    }
    return conn;
  }

  /**
   * A connection to another node (a standby for reads) from that node's pool: session pooling
   * keeps it; transaction pooling leases it, waiting in line up to query_wait_timeout.
   */
  async openLink(nodeId: number): Promise<BackendPort | null> {
    const node = this.ctx.cluster.node(nodeId);
    const pool = this.ctx.pools.get(nodeId);
    if (node === undefined || pool === undefined) return null;
    const pooled = this.pooling !== 'session';
    const key = pooled ? this.leaseKey : poolKey(this.user, this.database, this.startupParams);
    const create = (): Promise<ServerConnection> => ServerConnection.connect({
      nodeId, host: node.host, port: node.port, user: this.user, database: this.database, params: pooled ? {} : this.startupParams,
      connectTimeoutMs: this.ctx.config.connect_timeout, authenticator: credentialAuthenticator(this.user, this.credential), key,
      ...(this.ctx.backendTls !== undefined ? { tls: this.ctx.backendTls } : {}),
    });
    try {
      const waitMs = this.ctx.config.query_wait_timeout * 1000;
      const conn = pooled ? await pool.lease(key, create, leaseLimit(this.ctx.config), waitMs) : await pool.acquire(key, create);
      if (this.phase === 'closed') {
        if (pooled) pool.giveBack(conn, conn.clean);
        else pool.release(conn, conn.clean);
        return null;
      }
      conn.attach(this);
      if (pooled && this.pinCounted) this.pinOutside(conn);
      return conn;
    } catch (e) {
      const refused = this.leaseFailed(nodeId, e as Error);
      if (refused !== null) throw refused;
      return null;
    }
  }

  /** Why a lease or login to `nodeId` failed, logged: the LinkRefused the request gets, or null (no connection). */
  private leaseFailed(nodeId: number, e: Error): LinkRefused | null {
    if (e instanceof LeaseTimeout) {
      this.log.warn({ event: 'query_wait_timeout', node_id: nodeId, pid: this.pid, user: this.user, database: this.database },
        `query_wait_timeout: no connection to node ${nodeId} for ${this.user}/${this.database} became free within ${this.ctx.config.query_wait_timeout} s`);
      return new LinkRefused('53300', `query_wait_timeout: no backend connection became free within ${this.ctx.config.query_wait_timeout} s`,
        'default_pool_size connections are all busy; raise default_pool_size (or reserve_pool_size), or query_wait_timeout');
    }
    const said = (e as { backend?: { code?: string; message?: string } }).backend;
    if (said?.code === '57P01') {
      // Its backends were terminated while logging in, again and again (NodePool.createLive):
      // the node is up; this request fails as a direct one would, the session goes on.
      this.log.warn({ event: LogEvent.BackendConnect, node_id: nodeId, pid: this.pid, err: e.message }, `new connections to node ${nodeId} were terminated during their login`);
      return new LinkRefused('57P01', said.message ?? 'terminating connection due to administrator command',
        'the backend connection opened for this request was terminated while it logged in; retry');
    }
    this.log.warn({ event: LogEvent.BackendConnect, node_id: nodeId, pid: this.pid, err: e.message },
      `cannot log in to node ${nodeId}; reads go to another node, writes fail until it (or another primary) is reachable`);
    return null;
  }

  /**
   * Transaction pooling: openLink() for a request that waits in line for a connection, through
   * the pool's callback (NodePool.waitInLine: a connection another session gives back is handed
   * to this one from inside that give-back). Once clients outnumber default_pool_size nearly
   * every transaction waits, and the async openLink() and lease() cost about six promises, their
   * reactions and two closures per transaction (issue 17, item 9); here the callbacks are made
   * once per session and node, and a wait allocates the pool's waiter only.
   */
  leaseLater(nodeId: number, done: (conn: BackendPort | null, refused: LinkRefused | null) => void): void {
    const pool = this.ctx.pools.get(nodeId);
    if (this.ctx.cluster.node(nodeId) === undefined || pool === undefined) {
      noLease(done);
      return;
    }
    this.leaseDone[nodeId] = done;
    // (No closure in this method: one over nodeId/done/this made it allocate its context on every
    // call, i.e. per waited transaction; the callbacks are made by methods of their own, once.)
    pool.waitInLine(this.leaseKey, this.creators[nodeId] ??= this.creator(nodeId), leaseLimit(this.ctx.config),
      this.ctx.config.query_wait_timeout * 1000, this.leaseCallbacks[nodeId] ??= this.leaseCallback(nodeId));
  }

  private leaseCallback(nodeId: number): LeaseCallback<ServerConnection> {
    return (conn, err) => this.leaseCame(nodeId, conn, err);
  }

  /** leaseLater()'s callbacks, per node: who waits, and the pool's callback (made once). */
  private readonly leaseDone: (((conn: BackendPort | null, refused: LinkRefused | null) => void) | null)[] = [];
  private readonly leaseCallbacks: (LeaseCallback<ServerConnection> | undefined)[] = [];
  /** Transaction pooling: how a new connection to a node is opened for this session's key (made once per node). */
  private readonly creators: ((() => Promise<ServerConnection>) | undefined)[] = [];

  private creator(nodeId: number): () => Promise<ServerConnection> {
    return () => {
      // (read when a connection is opened: a reload may have moved the node)
      const node = this.ctx.cluster.node(nodeId);
      if (node === undefined) return Promise.reject(new Error(`node ${nodeId} is no longer configured`));
      const opts = {
        nodeId, host: node.host, port: node.port, user: this.user, database: this.database, params: {},
        connectTimeoutMs: this.ctx.config.connect_timeout, authenticator: credentialAuthenticator(this.user, this.credential), key: this.leaseKey,
        ...(this.ctx.backendTls !== undefined ? { tls: this.ctx.backendTls } : {}),
      };
      // A backend terminated while it logged in (FATAL 57P01: pg_terminate_backend() of every
      // backend catches starting ones too; or closed without a word) is not a failed node:
      // another attempt, bounded; a refused connection or login is not retried. (Safe here:
      // pgmaitre's own credentials, nothing of the login was relayed to a client.)
      const attempt = (left: number): Promise<ServerConnection> => ServerConnection.connect(opts).catch((e: unknown) => {
        const x = e as ProxyError;
        if (left > 1 && (x.backend?.code === '57P01' || (x.code === ProxyErrorCode.BackendClosed && x.backend === undefined))) return attempt(left - 1);
        throw e;
      });
      return attempt(LOGIN_TERMINATED_TRIES);
    };
  }

  /** The pool's answer to leaseLater(), as openLink() would have made it. */
  private leaseCame(nodeId: number, conn: ServerConnection | null, err: Error | null): void {
    const done = this.leaseDone[nodeId]!;
    this.leaseDone[nodeId] = null;
    // The boundary where a lease enters the session (the pool's microtask, or the give-back of
    // another session that handed its connection over): a throw ends this session only, as a
    // rejection of openLink() did, never the giver.
    try {
      if (conn === null) {
        done(null, this.leaseFailed(nodeId, err ?? new Error('no connection')));
        return;
      }
      if (this.phase === 'closed') {
        this.ctx.pools.get(nodeId)?.giveBack(conn, conn.clean);
        done(null, null);
        return;
      }
      conn.attach(this);
      if (this.pinCounted) this.pinOutside(conn);
      done(conn, null);
    } catch (e) {
      this.crashed(e);
    }
  }

  /** Gives a connection back to its node's pool (reset and reused when `reusable`). */
  closeLink(port: BackendPort, reusable: boolean, why: string, reset = false): void {
    const conn = port as unknown as ServerConnection;
    conn.detach();
    const pool = this.ctx.pools.get(conn.nodeId);
    if (pool === undefined) conn.destroy(why);
    else if (this.pooling !== 'session') pool.giveBack(conn, reusable && conn.usable, why, leaseLimit(this.ctx.config), reset);
    else pool.release(conn, reusable && conn.usable, why); // session pooling always runs reset_query_list
  }

  pinned(reason: string): void {
    if (reason === '') {
      if (this.pinCounted) this.ctx.poolStats.pinnedNow--;
      this.pinCounted = false;
      for (const p of this.core?.backends() ?? []) {
        const conn = p as unknown as ServerConnection;
        this.ctx.pools.get(conn.nodeId)?.unpin(conn);
      }
      return;
    }
    this.ctx.poolStats.pinnedNow++;
    this.ctx.poolStats.pinnedTotal++;
    this.pinCounted = true;
    for (const p of this.core?.backends() ?? []) this.pinOutside(p as unknown as ServerConnection);
    this.log.info({ event: 'session_pinned', pid: this.pid, user: this.user, database: this.database, reason },
      `session ${this.pid} keeps its backend connection from now on (${reason}): transaction pooling does not apply to it until that state is released`);
  }

  private pinCounted = false;

  /** A pinned session's connection stops counting toward default_pool_size (up to pinned_pool_size). */
  private pinOutside(conn: ServerConnection): void {
    this.ctx.pools.get(conn.nodeId)?.pin(conn, this.ctx.config.pinned_pool_size);
  }

  knownStatement(context: string, server: string, add = false): boolean {
    const key = `${this.leaseKey}\u0000${context}\u0000${server}`;
    if (add) {
      this.ctx.knownStatements.set(key, true);
      return true;
    }
    return this.ctx.knownStatements.get(key) === true;
  }

  statementCache(hit: boolean): void {
    if (hit) this.ctx.poolStats.cacheHits++;
    else this.ctx.poolStats.cacheMisses++;
  }

  runAdmin(sql: string, txStatus: number): Promise<Buffer> {
    return Promise.resolve()
      .then(() => this.ctx.admin!.run(sql, this.adminSession()))
      .then((res) => adminReply(res, txStatus), (e: unknown) => {
        this.ctx.log.error({ err: e, event: 'admin_failed' }, 'admin command failed');
        return errorReply('XX000', `admin command failed: ${(e as Error)?.message ?? e}`, undefined, 1, txStatus);
      });
  }

  nodeAccepting(nodeId: number): Promise<boolean> {
    const node = this.ctx.cluster.node(nodeId);
    if (node === undefined) return Promise.resolve(false);
    return probeAccepting({ host: node.host, port: node.port, user: this.user, database: this.database, timeoutMs: 2000 });
  }

  backendError(nodeId: number, reason: string): void {
    this.ctx.onBackendError(nodeId, reason);
  }

  /** RegisteredSession: the client's own CancelRequest reaches the backend running its query. */
  cancel(): void {
    this.core?.guard(() => this.core!.cancel());
  }

  /** Sends a CancelRequest to a backend (for the query it runs for this session). */
  cancelBackend(nodeId: number, pid: number, secret: number): Promise<void> {
    const node = this.ctx.cluster.node(nodeId);
    if (node === undefined) return Promise.resolve();
    const s = netConnect(backendAddress(node.host, node.port), () => s.end(encodeCancelRequest(pid, secret)));
    const done = new Promise<void>((resolve) => s.once('close', () => resolve()));
    s.on('error', (e: NodeJS.ErrnoException) => {
      s.destroy();
      this.log.warn({ event: LogEvent.CancelForwarded, pid: this.pid, node_id: nodeId, err: e.code ?? e.message }, `could not forward a cancel request to node ${nodeId}`);
    });
    s.setTimeout(5000, () => s.destroy());
    this.log.info({ event: LogEvent.CancelForwarded, pid: this.pid, node_id: nodeId }, 'cancel request forwarded');
    return done;
  }

  /** ClientPort: bytes for the client, in order. */
  write(buf: Buffer): boolean {
    const s = this.socket;
    if (s instanceof RawSocket) return s.write(buf);
    return s.writable ? fastWrite(s, buf) : true;
  }

  pauseClient(): void {
    this.socket.pause();
  }

  resumeClient(): void {
    if (this.phase === 'ready') this.socket.resume();
  }

  end(reason: string): void {
    this.close(reason);
  }

  observeLatency(nodeId: number, seconds: number, now?: number): void {
    nodeLatency(nodeId).observe(seconds, now);
  }

  // ---- ServerSink -------------------------------------------------------------------------

  // Server bytes and server closes enter the core here: a throw ends this session only.
  onServerData(conn: ServerConnection, chunk: Buffer): void {
    const core = this.core;
    if (core === null) return;
    try {
      core.onBackendData(conn.nodeId, chunk);
    } catch (e) {
      core.crash(e, `backend data from node ${conn.nodeId}`);
    }
  }

  onServerClosed(conn: ServerConnection, reason: string): void {
    const core = this.core;
    if (core === null || this.phase !== 'ready') return;
    try {
      core.onBackendClosed(conn.nodeId, reason);
    } catch (e) {
      core.crash(e, `backend node ${conn.nodeId} closed`);
    }
  }

  // ---- admin ------------------------------------------------------------------------------

  /** The asking session for admin commands. */
  adminSession(): AdminSession {
    return {
      pid: this.pid,
      user: this.user,
      database: this.database,
      loadBalanceNode: this.core?.lbNode ?? -1,
      getParam: (name) => this.overrides.get(name),
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

  private own: OwnSettings = NO_OWN;

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

  /** The query cache's hook for this session (memory_cache_enabled), made at login. */
  cache: SessionCache | null = null;

  /** Classifier for this session (allow_sql_comments may be set per session). */
  get classifier(): Classifier {
    return this.own.classifier ?? this.ctx.routing.classifier;
  }

  /** Rebuilds what the session's PGPOOL SET overrides change. */
  private applyOverrides(): void {
    const o = this.overrides;
    const cfg = this.ctx.config;
    const own: { -readonly [K in keyof OwnSettings]: OwnSettings[K] } = {};
    if (o.has('log_statement') || o.has('log_per_node_statement') || o.has('log_client_messages') || o.has('log_backend_messages')) {
      own.logFlags = {
        ...this.ctx.logFlags,
        statement: (o.get('log_statement') as boolean | undefined) ?? cfg.log_statement,
        perNodeStatement: (o.get('log_per_node_statement') as boolean | undefined) ?? cfg.log_per_node_statement,
        clientMessages: (o.get('log_client_messages') as boolean | undefined) ?? cfg.log_client_messages,
        backendMessages: (o.get('log_backend_messages') as LogFlags['backendMessages'] | undefined) ?? cfg.log_backend_messages,
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
    const core = this.core;
    const busy = core?.busy ?? false;
    const inTx = core?.route.inTransaction ?? false;
    const pooled = this.pooling !== 'session';
    return {
      pid: this.pid,
      // Transaction-pooled sessions are numbered after the num_init_children slots.
      slot: this.slot === null ? -1 : pooled ? this.ctx.config.num_init_children + this.slot.slot : this.slot.slot,
      connectedAt: this.connectedAt,
      user: this.user,
      database: this.database,
      applicationName: this.applicationName,
      address: this.address,
      port: this.port,
      status: this.phase !== 'ready' ? 'Wait for connection' : busy ? 'Execute command' : inTx ? 'Idle in transaction'
        : pooled ? (this.pinCounted ? `Idle (${this.pooling} pooling, pinned)` : `Idle (${this.pooling} pooling)`) : 'Idle',
      loadBalanceNode: core?.lbNode ?? -1,
      backends: (core?.backends() ?? []).map((p) => {
        const c = p as unknown as ServerConnection;
        return { nodeId: c.nodeId, backendPid: c.backendPid, connectedAt: new Date(c.createdAt), useCount: c.useCount, statement: c.lastStatement };
      }),
    };
  }

  // ---- logging, close ---------------------------------------------------------------------

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
    logLine(this.log, { event: LogEvent.Statement, pid: this.pid, user: this.user, database: this.database }, `statement: ${sql}`);
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

  /**
   * The client is gone (its EOF, Terminate, a socket error). What it sent whole still runs, as
   * PostgreSQL runs every complete message it read before the EOF (SessionCore.leave): the
   * session (its slot, its place in the registry: a cancel still finds it) ends once that is
   * answered; until then its answers are written to a socket that drops them.
   */
  private clientLeft(reason: string): void {
    if (this.leaving || this.closing) return;
    const core = this.core;
    if (this.phase === 'ready' && core !== null) {
      let waits = false;
      core.guard(() => { waits = core.leave(() => this.close(reason)); });
      if (waits) {
        this.leaving = true;
        return;
      }
    }
    this.close(reason);
  }

  private leaving = false;

  /**
   * A frame of a type PostgreSQL does not know after login ('?', a 'p' outside authentication):
   * PostgreSQL answers FATAL 08P01 "invalid frontend message type N" at once and closes, dropping
   * the answers still in its output buffer (those of requests read with it). So do we: the
   * session ends now, its leases as for any client that goes mid-request. Sending the frame on
   * would leave the session waiting for a sync point that never comes.
   */
  private unknownFrame(code: number): void {
    this.fatal(clientErrors.protocolViolation(`invalid frontend message type ${code}`));
  }

  /** For tests that find a slot still held: the session's phase and its core's waits. */
  debugState(): string {
    return `pid ${this.pid}, ${this.phase}${this.leaving ? ', leaving' : ''}${this.closing ? ', closing' : ''}: ${this.core?.debugState() ?? 'no core'}`;
  }

  /** Ends the session: the core gives its backend connections back, the slot is freed. */
  close(reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.closeReason = reason;
    const wasReady = this.phase === 'ready';
    this.phase = 'closed';
    this.framer.reset();
    this.loginFinished();
    this.goneResolve?.();
    if (this.hsWaiter !== null) {
      const w = this.hsWaiter;
      this.hsWaiter = null;
      w(null);
    }
    const logged = wasReady && this.logFlags.disconnections;
    if (logged) this.askPeer(); // while the socket is open
    if (this.socket instanceof RawSocket) this.socket.setIdleTimeout(0, noop);
    else this.socket.setTimeout(0);
    this.core?.close();
    if (this.pinCounted) this.ctx.poolStats.pinnedNow--;
    if (this.slot !== null) {
      this.slot.release();
      this.slot = null;
    }
    this.ctx.registry.delete(this);
    if (!this.socket.destroyed) {
      if (this.socket instanceof RawSocket) this.socket.end(undefined, this.peerDone);
      else this.socket.end();
      // Paused (backpressure, a login waiting, a request blocked) it would never see the client's
      // EOF, and the socket would stay open, holding pgmaitre's stop.
      this.socket.resume();
    }
    if (logged) {
      const secs = (Date.now() - this.connectedMs) / 1000;
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
