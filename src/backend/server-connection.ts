/**
 * One connection from pgmaitre to a PostgreSQL backend.
 *
 * Lifecycle: connect → startup/authentication as a client (collecting ParameterStatus and
 * BackendKeyData until ReadyForQuery) → lent to a client session (relay mode: every chunk goes to
 * the session untouched; the session core's Link scans it and keeps the account of answers) →
 * returned to its pool, reset with the reset queries (internal mode), or closed.
 *
 * Outside relay mode the connection scans what the server says itself: during startup and
 * internal queries every message, while idle in the pool only to notice a server saying goodbye.
 * It also carries what the session core applied on it (session state, see core/session-state.ts),
 * so that a connection lent to another session, or the same one later, is brought up to date by
 * differences only.
 */
import { Buffer } from 'node:buffer';
import { ServerStatements } from '../protocol/server-statements';
import * as net from 'node:net';
import { BackendCode, TxStatus } from '../protocol/codes';
import {
  decodeErrorFields, decodeParameterStatus,
} from '../protocol/backend';
import { encodeQuery, encodeTerminate } from '../protocol/frontend';
import { SyncFrame } from '../protocol/writer';
import { encodeStartupMessage } from '../protocol/startup';
import type { PgErrorFields } from '../protocol/error-fields';
import { ProxyError, ProxyErrorCode } from '../errors/proxy-error';
import type { BackendAuthenticator } from './backend-auth';
import { BackendLogin } from './backend-login';
import { openBackendSocket, type BackendTlsOptions } from './tls-negotiate';

export type { BackendTlsOptions } from './tls-negotiate';
import { MessageScanner, type MessageSink, WANT_ALL } from './message-scanner';
import { copyRead, switchToReadBuffer } from '../util/fast-read';
import { fastWrite } from '../util/fast-write';
import { TimeoutLists } from '../util/timeout-lists';

/** Where relayed server bytes go (the client session). */
export interface ServerSink {
  /** A chunk of server bytes, untouched. */
  onServerData(conn: ServerConnection, chunk: Buffer): void;
  /** The connection closed or failed while attached. */
  onServerClosed(conn: ServerConnection, reason: string): void;
}

/** What a connection needs to log in. */
export interface ServerConnectOptions {
  readonly nodeId: number;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  /** Extra startup parameters (application_name, client_encoding, options, ...). */
  readonly params: Readonly<Record<string, string>>;
  readonly connectTimeoutMs: number;
  readonly authenticator: BackendAuthenticator;
  /** Pool key (node, user, database, parameters). */
  readonly key: string;
  /** TLS to the backend when it offers it (ssl = on); undefined = plain TCP, no SSLRequest. */
  readonly tls?: BackendTlsOptions;
}

type Mode = 'startup' | 'relay' | 'internal' | 'idle' | 'closed';

/** How long a connection whose write failed is still read for the server's last words (writeBroken). */
const WRITE_FAILED_LINGER_MS = 2000;

let nextConnectionId = 1;

/** Timeouts of internal queries (reset_query_list at every session-pooled disconnect): no Node timer each. */
const internalTimeouts = new TimeoutLists();

/**
 * The bytes of an internal exchange, encoded once per frozen list of statements: the reset lists
 * are made (and frozen) once per configuration (app.ts), and session pooling sends one at every
 * disconnect. Other lists are encoded each time.
 */
const encodedInternal = new WeakMap<readonly string[], { plain?: Buffer; sync?: Buffer }>();

function internalFrames(sqls: readonly string[], sync: boolean): Buffer {
  let known = encodedInternal.get(sqls);
  if (known === undefined) {
    known = {};
    // (Object.isFrozen is a call into V8's runtime: asked once per list, not per exchange.)
    if (Object.isFrozen(sqls)) encodedInternal.set(sqls, known);
  }
  const had = sync ? known.sync : known.plain;
  if (had !== undefined) return had;
  const frames = sqls.map((s) => encodeQuery(s));
  if (sync) frames.unshift(SyncFrame);
  const bytes = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
  if (sync) known.sync = bytes;
  else known.plain = bytes;
  return bytes;
}

/** A connection's ParameterStatus values; `version` changes with every value that changes. */
export class ServerParams extends Map<string, string> {
  version = 0;

  override set(name: string, value: string): this {
    if (super.get(name) !== value) this.version++;
    return super.set(name, value);
  }
}

/** A logged-in backend connection; see the file header. */
export class ServerConnection implements MessageSink {
  readonly id = nextConnectionId++;
  readonly nodeId: number;
  readonly key: string;
  readonly user: string;
  readonly database: string;
  readonly createdAt = Date.now();
  lastUsedAt = Date.now();
  useCount = 0;
  /** The pool's record of this connection (pool/node-pool.ts Poolable.poolSlot). */
  poolSlot: unknown = undefined;
  /** Last statement sent here (core/ports.ts BackendPort.lastStatement); '' before the first. */
  lastStatement = '';
  backendPid = 0;
  backendSecret = 0;
  /** Server parameters as last reported (ParameterStatus), in arrival order. */
  readonly params = new ServerParams();
  /** Transaction status from the last ReadyForQuery (kept up to date by the session core while lent). */
  txStatus: number = TxStatus.Idle;
  /** Session state applied here (core/session-state.ts): null = unknown. */
  applied: Map<string, string> | null = new Map();
  appliedVersion = -1;
  appliedOwner: unknown = null;
  /** Transaction pooling: server-side prepared statements created here (protocol/server-statements.ts). */
  readonly statements = new ServerStatements();
  /** SQLSTATE of the FATAL the server sent while idle or busy internally, or ''. */
  goodbyeCode = '';
  /** That FATAL's fields (closedError). */
  private goodbyeFields: PgErrorFields | null = null;
  closeReason = '';

  private mode: Mode = 'startup';
  private readonly scanner = new MessageScanner(WANT_ALL);
  private sink: ServerSink | null = null;
  /** Sync points sent by runInternal and not yet answered. */
  private internalOwed = 0;
  private internalHandler: ((code: number, buf: Buffer, start: number, end: number) => void) | null = null;
  private internalFail: ((e: Error) => void) | null = null;
  /** Why writing failed ('' while it works): see writeBroken(). */
  private writeFailed = '';
  private lingerTimer: NodeJS.Timeout | null = null;

  private constructor(readonly socket: net.Socket, opts: ServerConnectOptions) {
    this.nodeId = opts.nodeId;
    this.key = opts.key;
    this.user = opts.user;
    this.database = opts.database;
  }

  /** Connects, authenticates and waits for the first ReadyForQuery. Rejects with a ProxyError. */
  static connect(opts: ServerConnectOptions): Promise<ServerConnection> {
    const started = Date.now();
    const timeoutMs = opts.connectTimeoutMs > 0 ? opts.connectTimeoutMs : 2 ** 31 - 1;
    const opening = openBackendSocket(opts);
    const openTimer = setTimeout(() => opening.abort(), timeoutMs);
    openTimer.unref();
    const timedOut = (): ProxyError => new ProxyError(ProxyErrorCode.BackendConnectTimeout,
      `timed out after ${opts.connectTimeoutMs} ms connecting to ${opts.host}:${opts.port}`);
    return opening.socket.then((socket) => {
      clearTimeout(openTimer);
      return ServerConnection.login(socket, opts, Math.max(1, timeoutMs - (Date.now() - started)), timedOut);
    }, (e: unknown) => {
      clearTimeout(openTimer);
      opts.authenticator.failed?.(null);
      throw Date.now() - started >= timeoutMs ? timedOut() : e;
    });
  }

  /** Startup and authentication on a connected (maybe TLS) socket, until the first ReadyForQuery. */
  private static login(socket: net.Socket, opts: ServerConnectOptions, timeoutMs: number, timedOut: () => ProxyError): Promise<ServerConnection> {
    return new Promise((resolve, reject) => {
      const conn = new ServerConnection(socket, opts);
      let settled = false;
      const fail = (e: ProxyError): void => {
        if (settled) return;
        settled = true;
        steps.abandon();
        clearTimeout(timer);
        opts.authenticator.failed?.(null);
        conn.destroy(e.message);
        reject(e);
      };
      const timer = setTimeout(() => fail(timedOut()), timeoutMs);
      timer.unref();
      {
        const params: Record<string, string> = { user: opts.user, database: opts.database, ...opts.params };
        socket.write(encodeStartupMessage(params));
      }
      socket.on('error', (e: NodeJS.ErrnoException) => {
        if (conn.mode === 'startup') {
          fail(new ProxyError(ProxyErrorCode.BackendConnect, `${opts.host}:${opts.port}: ${e.code ?? e.message}`, undefined, { cause: e }));
        } else {
          conn.handleClose(`socket error: ${e.code ?? e.message}`);
        }
      });
      socket.on('close', () => {
        if (conn.mode === 'startup') {
          fail(new ProxyError(ProxyErrorCode.BackendClosed, `${opts.host}:${opts.port} closed the connection during startup`));
        } else {
          conn.handleClose('closed by server');
        }
      });
      socket.on('data', (chunk: Buffer) => conn.onData(chunk));

      const steps = new BackendLogin(opts.nodeId, opts.authenticator, {
        send: (answer) => socket.write(answer),
        fail,
        param: (buf, start, end) => {
          const p = decodeParameterStatus(buf, start, end);
          conn.params.set(p.name, p.value);
        },
        key: (pid, secret) => {
          conn.backendPid = pid;
          conn.backendSecret = secret;
        },
        ready: (txStatus) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          conn.txStatus = txStatus;
          conn.mode = 'idle';
          conn.internalHandler = null;
          // Logged in: from now on reads go into the shared read buffer (util/fast-read.ts),
          // copied once into a chunk of their own (a relayed chunk is kept until it is written).
          switchToReadBuffer(socket, (view) => conn.onData(copyRead(view)));
          resolve(conn);
        },
      });
      conn.internalHandler = (code, buf, start, end) => steps.onMessage(code, buf, start, end);
    });
  }

  /** True when the connection can be given to a client or put back in the pool. */
  get usable(): boolean {
    return this.mode !== 'closed' && !this.scanner.broken && !this.socket.destroyed;
  }

  /** True when the protocol state is clean (not lent, nothing owed, idle transaction status). */
  get clean(): boolean {
    return this.usable && this.mode !== 'relay' && this.internalOwed === 0 && this.scanner.atBoundary && this.txStatus === TxStatus.Idle;
  }

  /** Lends the connection to a session: every chunk goes to `sink` untouched. */
  attach(sink: ServerSink): void {
    if (this.mode === 'closed') {
      // Closed before it was lent (its backend terminated right after the login: the FATAL came
      // in the login's last read). The pool does not lend such a connection (NodePool.createLive);
      // should one come here anyway, it is not revived: the session hears of its loss at once.
      queueMicrotask(() => sink.onServerClosed(this, this.closeReason || 'closed before it was lent'));
      return;
    }
    this.sink = sink;
    this.mode = 'relay';
    // (No lastUsedAt here nor in detach(): the pool, its only reader, stamps it when the
    // connection comes back (giveBack/release). With transaction pooling both run per
    // transaction, and Date.now() is a call into V8's runtime.)
    this.useCount++;
  }

  /**
   * Takes the connection back from its session (before reset or close). `atBoundary`: the
   * session's account says the stream is between messages with nothing owed.
   */
  detach(): void {
    this.sink = null;
    if (this.mode === 'relay') this.mode = 'idle';
    if (this.socket.isPaused()) this.socket.resume();
  }

  /**
   * Writes request bytes to the server; false when its output buffer is above the high-water
   * mark. Once a write failed (or the server's end came), later writes are dropped: the close
   * follows (see writeBroken).
   */
  write(buf: Buffer): boolean {
    if (this.writeFailed !== '') return true;
    if (!this.socket.writable) {
      this.writeBroken('the server closed the connection');
      return true;
    }
    return fastWrite(this.socket, buf, this.onWriteError);
  }

  private readonly onWriteError = (e: NodeJS.ErrnoException): void => this.writeBroken(`write failed: ${e.code ?? e.message}`);

  /**
   * Writing failed (EPIPE, ECONNRESET) or the server's end came: the server is gone, but what it
   * said before going may still be unread in the kernel's buffer — the FATAL 57P01 of a backend
   * killed by pg_terminate_backend(), or a shutdown's. Destroying the socket now would lose it:
   * the session would see a connection lost without a word (and failover_on_backend_error
   * would suspect the node). So reading goes on: the server's words reach the session, then
   * its EOF or read error closes the connection; after WRITE_FAILED_LINGER_MS it is closed anyway.
   */
  private writeBroken(reason: string): void {
    if (this.writeFailed !== '' || this.mode === 'closed') return;
    this.writeFailed = reason;
    this.lingerTimer = setTimeout(() => this.handleClose(reason), WRITE_FAILED_LINGER_MS);
    this.lingerTimer.unref();
  }

  /** Calls `cb` once the socket's output has drained (or it closed). */
  onceDrained(cb: () => void): void {
    let done = false;
    const once = (): void => {
      if (done) return;
      done = true;
      this.socket.off('drain', once);
      this.socket.off('close', once);
      cb();
    };
    this.socket.on('drain', once);
    this.socket.on('close', once);
  }

  /**
   * Runs queries internally (reset, probes): each as its own Query message, pipelined.
   * With `sync`, a Sync goes first: it ends any skip-until-Sync state an extended-protocol error
   * left behind (queries would be ignored until then) and otherwise costs one ReadyForQuery.
   * Resolves with the errors the server sent (empty when all succeeded).
   */
  runInternal(sqls: readonly string[], timeoutMs: number, opts: { sync?: boolean } = {}): Promise<PgErrorFields[]> {
    return new Promise((resolve, reject) => {
      if (!this.usable || this.mode === 'relay') {
        reject(new ProxyError(ProxyErrorCode.ResetFailed, 'connection not available for an internal query'));
        return;
      }
      if (this.writeFailed !== '') {
        reject(new ProxyError(ProxyErrorCode.ResetFailed, `connection not available for an internal query: ${this.writeFailed}`));
        return;
      }
      const errors: PgErrorFields[] = [];
      const sync = opts.sync === true;
      let waiting = sqls.length + (sync ? 1 : 0);
      // (one list entry, not a Node timer: session pooling resets a connection at every disconnect)
      const timer = internalTimeouts.schedule(timeoutMs, () => finish(new ProxyError(ProxyErrorCode.ResetFailed, `internal query timed out after ${timeoutMs} ms`)));
      const finish = (e: Error | null): void => {
        internalTimeouts.cancel(timer);
        this.internalHandler = null;
        this.internalFail = null;
        if (this.mode === 'internal') this.mode = 'idle';
        if (e) reject(e);
        else resolve(errors);
      };
      this.mode = 'internal';
      this.internalFail = finish;
      this.internalHandler = (code, buf, start, end) => {
        if (code === BackendCode.ErrorResponse) errors.push(decodeErrorFields(buf, start, end));
        else if (code === BackendCode.ParameterStatus) {
          const p = decodeParameterStatus(buf, start, end);
          this.params.set(p.name, p.value);
        } else if (code === BackendCode.ReadyForQuery) {
          this.txStatus = buf[start + 5]!;
          this.internalOwed--;
          if (--waiting === 0) finish(null);
        }
      };
      this.internalOwed += sqls.length + (sync ? 1 : 0);
      // Through the handle (util/fast-write.ts), not the Writable stream: a failed write is
      // writeBroken()'s, and the close it leads to fails this exchange (internalFail).
      fastWrite(this.socket, internalFrames(sqls, sync), this.onWriteError);
    });
  }

  /** MessageSink: one message from the scanner (startup, internal queries, idle in the pool). */
  onMessage(code: number, buf: Buffer, start: number, end: number): void {
    if (this.internalHandler !== null) {
      this.internalHandler(code, buf, start, end);
      return;
    }
    if (code === BackendCode.ParameterStatus) {
      const p = decodeParameterStatus(buf, start, end);
      this.params.set(p.name, p.value);
      return;
    }
    // Idle in the pool: an ErrorResponse here is the server telling us it is going away.
    if (code === BackendCode.ErrorResponse) {
      try {
        const f = decodeErrorFields(buf, start, end);
        this.goodbyeCode = f.code;
        this.goodbyeFields = f;
        this.closeReason = `server sent an error while idle: ${f.message}`;
      } catch {
        this.closeReason = 'server sent a malformed error while idle';
      }
      this.destroy(this.closeReason);
    }
  }

  private onData(chunk: Buffer): void {
    if (this.mode === 'relay') {
      this.sink?.onServerData(this, chunk);
      return;
    }
    this.scanner.scan(chunk, this);
    if (this.scanner.broken) this.destroy('protocol violation from server (bad message length)');
  }

  private handleClose(reason: string, graceful = false): void {
    if (this.mode === 'closed') return;
    const sink = this.sink;
    const fail = this.internalFail;
    const wasStartup = this.mode === 'startup';
    this.mode = 'closed';
    this.closeReason ||= reason;
    this.sink = null;
    if (this.lingerTimer !== null) clearTimeout(this.lingerTimer);
    if (this.writeFailed !== '') graceful = false;
    if (graceful && !wasStartup && this.socket.writable) {
      this.socket.end(encodeTerminate());
      setTimeout(() => this.socket.destroy(), 1000).unref();
    } else {
      this.socket.destroy();
    }
    if (fail) fail(new ProxyError(ProxyErrorCode.BackendClosed, reason));
    if (sink) sink.onServerClosed(this, reason);
  }

  /**
   * Why the connection closed, as an error for whoever expected to use it (NodePool.createLive),
   * with the server's words when it said some. (No `backend` fields: those mean a login refused
   * by the server, whose FATAL a relayed login has already passed on to its client.)
   */
  closedError(): ProxyError {
    const f = this.goodbyeFields;
    const e = new ProxyError(ProxyErrorCode.BackendClosed,
      `node ${this.nodeId}: the connection closed right after its login${f !== null ? ` (${f.code}: ${f.message})` : this.closeReason ? ` (${this.closeReason})` : ''}`);
    e.goodbye = f;
    return e;
  }

  /** Closes the connection (with a Terminate when the server is still there). Idempotent. */
  destroy(reason: string): void {
    this.handleClose(reason, true);
  }

  /** Pauses/resumes reading from the server (backpressure from a slow client). */
  pause(): void { this.socket.pause(); }
  resume(): void { this.socket.resume(); }
}
