/**
 * One connection from pgmaitre to a PostgreSQL backend.
 *
 * Lifecycle: connect → startup/authentication as a client (collecting ParameterStatus and
 * BackendKeyData until ReadyForQuery) → lent to a client session, which writes request bytes and
 * receives the server's chunks untouched (relay mode: only headers are scanned, to track the
 * transaction status from ReadyForQuery, ParameterStatus changes and COPY IN) → returned to its
 * pool, reset with the reset queries (internal mode), or closed.
 *
 * Transaction state comes only from ReadyForQuery; `outstanding` counts sync points sent
 * (Query, Sync, FunctionCall) minus ReadyForQuery received, so the pool can tell whether the
 * protocol state is clean when a session gives the connection back.
 */
import * as net from 'node:net';
import { BackendCode, TxStatus } from '../protocol/codes';
import {
  decodeAuthentication, decodeBackendKeyData, decodeErrorFields, decodeParameterStatus,
} from '../protocol/backend';
import { encodeQuery, encodeTerminate } from '../protocol/frontend';
import { SyncFrame } from '../protocol/writer';
import { encodeStartupMessage } from '../protocol/startup';
import type { PgErrorFields } from '../protocol/error-fields';
import { ProxyError, ProxyErrorCode } from '../errors/proxy-error';
import type { BackendAuthenticator } from './backend-auth';
import { openBackendSocket, type BackendTlsOptions } from './tls-negotiate';

export type { BackendTlsOptions } from './tls-negotiate';
import { MessageScanner, type MessageSink, WANT_ALL, wantTable } from './message-scanner';

/**
 * Relay mode needs only these bodies: ReadyForQuery, ParameterStatus, CopyInResponse,
 * ErrorResponse, and NoticeResponse (an immediate shutdown says goodbye with a WARNING notice).
 */
const WANT_RELAY = wantTable('ZSGEN');

/** Where relayed server bytes go (the client session). */
export interface ServerSink {
  /**
   * A chunk of server bytes, already scanned; forward it untouched. `async` marks whole
   * asynchronous messages (notification, notice, parameter status) from a connection nobody asked.
   */
  onServerData(conn: ServerConnection, chunk: Buffer, async?: boolean): void;
  /** The connection closed or failed while attached. */
  onServerClosed(conn: ServerConnection, reason: string): void;
  /** The server says it is shutting down before answering; true when the session will retry elsewhere. */
  onServerGoodbye?(conn: ServerConnection): boolean;
  /** A ReadyForQuery arrived (status already recorded in conn.txStatus). */
  onReadyForQuery?(conn: ServerConnection): void;
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

let nextConnectionId = 1;

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
  backendPid = 0;
  backendSecret = 0;
  /** Server parameters as last reported (ParameterStatus), in arrival order. */
  readonly params = new Map<string, string>();
  txStatus: number = TxStatus.Idle;
  outstanding = 0;
  copyIn = false;
  /** performance.now() when requests were written to an idle connection (latency metric), or 0. */
  busySince = 0;
  /** ErrorResponses seen while relaying, by severity (for stats). */
  errorCount = 0;
  fatalCount = 0;
  /**
   * Responses to swallow: everything up to and including this many ReadyForQuery messages is
   * not forwarded (side requests: SET broadcast to a standby, a statement re-parsed elsewhere).
   */
  discardZ = 0;
  /** The last request written was extended-protocol (its Sync is ignored if it starts COPY IN). */
  lastWriteExtended = false;
  /** Offset in the chunk being scanned where forwarding resumes after a discard ended. */
  private discardCut = -1;
  /** While idle (nothing asked): asynchronous messages collected from the chunk being scanned. */
  private idleMessages: Buffer[] | null = null;
  private idlePartial = false;
  /** A request without Sync (Flush) was written: answers come without ReadyForQuery. */
  private unsynced = false;
  /** SQLSTATE of the FATAL the server sent before going away (57P01 admin shutdown...), or ''. */
  goodbyeCode = '';
  /** The chunk being scanned (to tell where a message sits in it). */
  private scanning: Buffer | null = null;
  /**
   * In the chunk being scanned: where the bytes that are not yet explained start — past the last
   * forwarded ReadyForQuery and the asynchronous notices after it. Bytes from there on are the
   * beginning of an answer.
   */
  private answerTail = 0;
  /** Offset of a shutdown goodbye (57P01/57P02 notice or FATAL) at answerTail, or -1. */
  private goodbyeCut = -1;
  /**
   * True when the last forwarded chunk carried bytes of an answer not yet completed by a
   * ReadyForQuery: that request has started reaching the client and can no longer be retried.
   */
  forwardedPartialAnswer = false;
  closeReason = '';

  private mode: Mode = 'startup';
  private readonly scanner = new MessageScanner(WANT_ALL);
  private sink: ServerSink | null = null;
  private internalHandler: ((code: number, buf: Buffer, start: number, end: number) => void) | null = null;
  private internalFail: ((e: Error) => void) | null = null;

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

      let authPending: Promise<void> = Promise.resolve();
      conn.internalHandler = (code, buf, start, end) => {
        switch (code) {
          case BackendCode.Authentication: {
            const req = decodeAuthentication(buf, start, end);
            if (req.type === 'AuthenticationOk') {
              opts.authenticator.done?.();
              return;
            }
            const frame = Buffer.from(buf.subarray(start, end));
            authPending = authPending
              .then(() => opts.authenticator.answer(req, frame))
              .then((answer) => { if (answer.length > 0 && !settled) socket.write(answer); })
              .catch((e: unknown) => fail(e instanceof ProxyError ? e
                : new ProxyError(ProxyErrorCode.BackendAuth, String((e as Error)?.message ?? e))));
            return;
          }
          case BackendCode.ParameterStatus: {
            const p = decodeParameterStatus(buf, start, end);
            conn.params.set(p.name, p.value);
            return;
          }
          case BackendCode.BackendKeyData: {
            const k = decodeBackendKeyData(buf, start, end);
            conn.backendPid = k.pid;
            conn.backendSecret = k.secret;
            return;
          }
          case BackendCode.ErrorResponse: {
            const f = decodeErrorFields(buf, start, end);
            opts.authenticator.failed?.(Buffer.from(buf.subarray(start, end)));
            const code = f.code === '28P01' || f.code === '28000' ? ProxyErrorCode.BackendAuth : ProxyErrorCode.BackendRejected;
            fail(new ProxyError(code, `node ${opts.nodeId}: ${f.message}`, f));
            return;
          }
          case BackendCode.ReadyForQuery:
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            conn.txStatus = buf[start + 5]!;
            conn.mode = 'idle';
            conn.internalHandler = null;
            conn.scanner.want = WANT_ALL;
            resolve(conn);
            return;
          default:
            return; // NoticeResponse, NegotiateProtocolVersion: nothing to do
        }
      };
    });
  }

  /** True when the connection can be given to a client or put back in the pool. */
  get usable(): boolean {
    return this.mode !== 'closed' && !this.scanner.broken && !this.socket.destroyed;
  }

  /** True when the protocol state is clean: idle, nothing outstanding, not copying. */
  get clean(): boolean {
    if (this.unsynced) return false;
    return this.resettable && this.txStatus === TxStatus.Idle;
  }

  /**
   * True when nothing is in flight (no request outstanding, not copying, at a message boundary):
   * the reset queries can run, and will end a transaction the client left open (ABORT).
   */
  get resettable(): boolean {
    return this.usable && this.outstanding === 0 && !this.copyIn && this.scanner.atBoundary;
  }

  /** Lends the connection to a session: relayed data goes to `sink`. */
  attach(sink: ServerSink): void {
    this.sink = sink;
    this.mode = 'relay';
    this.scanner.want = WANT_RELAY;
    this.lastUsedAt = Date.now();
    this.useCount++;
  }

  /** Takes the connection back from its session (before reset or close). */
  detach(): void {
    this.sink = null;
    if (this.mode === 'relay') this.mode = 'idle';
    this.scanner.want = WANT_ALL;
    this.lastUsedAt = Date.now();
    if (this.socket.isPaused()) this.socket.resume();
  }

  /** Writes request bytes to the server; `syncs` is how many ReadyForQuery they will produce. */
  write(buf: Buffer, syncs: number, extended = false): boolean {
    this.outstanding += syncs;
    this.lastWriteExtended = extended;
    this.unsynced = syncs === 0;
    return this.socket.write(buf);
  }

  /** Writes a side request whose responses (through `syncs` ReadyForQuery) are swallowed. */
  writeDiscarded(buf: Buffer, syncs: number): boolean {
    this.outstanding += syncs;
    this.discardZ += syncs;
    return this.socket.write(buf);
  }

  /** True when nothing sent to this connection is still unanswered. */
  get quiet(): boolean {
    return this.outstanding <= 0 && this.discardZ === 0 && this.scanner.atBoundary;
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
      const errors: PgErrorFields[] = [];
      let waiting = sqls.length + (opts.sync ? 1 : 0);
      const timer = setTimeout(() => finish(new ProxyError(ProxyErrorCode.ResetFailed, `internal query timed out after ${timeoutMs} ms`)), timeoutMs);
      timer.unref();
      const finish = (e: Error | null): void => {
        clearTimeout(timer);
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
          this.outstanding--;
          if (--waiting === 0) finish(null);
        }
      };
      const frames = sqls.map((s) => encodeQuery(s));
      if (opts.sync) frames.unshift(SyncFrame);
      this.outstanding += frames.length;
      this.socket.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
    });
  }

  /** MessageSink: one wanted message from the scanner. */
  onMessage(code: number, buf: Buffer, start: number, end: number): void {
    if (this.idleMessages !== null) {
      // Nothing was asked of this server: only asynchronous messages may reach the client.
      if (code === BackendCode.NotificationResponse || code === BackendCode.NoticeResponse || code === BackendCode.ParameterStatus) {
        this.idleMessages.push(Buffer.from(buf.subarray(start, end)));
        if (code === BackendCode.ParameterStatus) {
          const p = decodeParameterStatus(buf, start, end);
          this.params.set(p.name, p.value);
        }
      } else if (code === BackendCode.ErrorResponse) {
        const f = decodeErrorFields(buf, start, end);
        this.closeReason = `server sent an unsolicited error: ${f.message}`;
        if (f.severity === 'FATAL' || f.severity === 'PANIC') this.goodbyeCode = f.code;
      }
      return;
    }
    if (this.mode === 'relay') {
      if (code === BackendCode.ReadyForQuery) {
        this.txStatus = buf[start + 5]!;
        this.outstanding--;
        this.copyIn = false;
        this.unsynced = false;
        if (this.discardZ > 0) {
          this.discardZ--;
          this.discardCut = this.answerTail = this.scanner.chunkOffset;
          return;
        }
        this.answerTail = this.scanner.chunkOffset;
        this.goodbyeCut = -1;
        this.sink?.onReadyForQuery?.(this);
      } else if (code === BackendCode.ParameterStatus) {
        const p = decodeParameterStatus(buf, start, end);
        this.params.set(p.name, p.value);
      } else if (code === BackendCode.CopyInResponse) {
        this.copyIn = true;
        // PostgreSQL ignores Sync during COPY IN: the Sync sent with the Execute that started it
        // will never be answered.
        if (this.lastWriteExtended && this.outstanding > 0) this.outstanding--;
      } else if (code === BackendCode.NoticeResponse || code === BackendCode.ErrorResponse) {
        // The first field is the severity ('S'): FATAL/PANIC start with 'F'/'P'.
        const fatal = code === BackendCode.ErrorResponse && buf[start + 5] === 0x53 && (buf[start + 6] === 0x46 || buf[start + 6] === 0x50);
        if (code === BackendCode.ErrorResponse) {
          if (fatal) this.fatalCount++;
          else this.errorCount++;
        }
        const atTail = buf === this.scanning && start === this.answerTail;
        if (!fatal && !atTail) return;
        const f = decodeErrorFields(buf, start, end);
        if (fatal) this.goodbyeCode = f.code;
        if (!atTail) return;
        if (f.code === '57P01' || f.code === '57P02') {
          // A server shutting down says so (FATAL, or a WARNING notice for an immediate shutdown).
          this.goodbyeCode = f.code;
          if (this.goodbyeCut < 0) this.goodbyeCut = start;
          this.answerTail = end;
        } else if (code === BackendCode.NoticeResponse) {
          this.answerTail = end; // an asynchronous notice is not the start of an answer
        }
      }
      return;
    }
    if (this.internalHandler !== null) {
      this.internalHandler(code, buf, start, end);
      return;
    }
    // Idle in the pool: an ErrorResponse here is the server telling us it is going away.
    if (code === BackendCode.ErrorResponse) this.destroy('server sent an error while idle');
  }

  private onData(chunk: Buffer): void {
    const discarding = this.discardZ > 0;
    // (idlePartial: an asynchronous message split across reads is finished on the idle path too.)
    const idle = this.mode === 'relay' && ((this.outstanding <= 0 && !this.copyIn && !this.unsynced) || this.idlePartial);
    this.discardCut = -1;
    if (idle) {
      // Rare (notifications, a server shutting down): look at every message, forward the async ones.
      this.idleMessages = [];
      this.scanner.want = WANT_ALL;
      this.scanner.scan(chunk, this);
      this.scanner.want = WANT_RELAY;
      const msgs = this.idleMessages;
      this.idleMessages = null;
      this.idlePartial = !this.scanner.atBoundary;
      if (this.scanner.broken) this.destroy('protocol violation from server (bad message length)');
      else if (msgs.length > 0 && this.sink !== null) this.sink.onServerData(this, msgs.length === 1 ? msgs[0]! : Buffer.concat(msgs), true);
      return;
    }
    this.scanning = chunk;
    this.answerTail = 0;
    this.goodbyeCut = -1;
    this.scanner.scan(chunk, this);
    this.scanning = null;
    if (this.scanner.broken) {
      this.destroy('protocol violation from server (bad message length)');
      return;
    }
    if (this.mode !== 'relay' || this.sink === null) return;
    if (!discarding) {
      if (this.goodbyeCut >= 0 && this.sink.onServerGoodbye?.(this) === true) {
        // The server is going away and the session can carry on without it (reads re-run
        // elsewhere): the client sees what came before the goodbye, not the goodbye itself.
        this.forwardedPartialAnswer = false;
        if (this.goodbyeCut > 0) this.sink.onServerData(this, chunk.subarray(0, this.goodbyeCut));
        return;
      }
      this.forwardedPartialAnswer = this.answerTail < chunk.length;
      this.sink.onServerData(this, chunk);
    } else if (this.discardZ === 0 && this.discardCut >= 0 && this.discardCut < chunk.length) {
      // The swallowed responses ended inside this chunk: forward what follows them.
      this.forwardedPartialAnswer = this.answerTail < chunk.length;
      this.sink.onServerData(this, chunk.subarray(this.discardCut));
    }
  }

  private handleClose(reason: string, graceful = false): void {
    if (this.mode === 'closed') return;
    const sink = this.sink;
    const fail = this.internalFail;
    const wasStartup = this.mode === 'startup';
    this.mode = 'closed';
    this.closeReason ||= reason;
    this.sink = null;
    if (graceful && !wasStartup && this.socket.writable) {
      this.socket.end(encodeTerminate());
      setTimeout(() => this.socket.destroy(), 1000).unref();
    } else {
      this.socket.destroy();
    }
    if (fail) fail(new ProxyError(ProxyErrorCode.BackendClosed, reason));
    if (sink) sink.onServerClosed(this, reason);
  }

  /** Closes the connection (with a Terminate when the server is still there). Idempotent. */
  destroy(reason: string): void {
    this.handleClose(reason, true);
  }

  /** Pauses/resumes reading from the server (backpressure from a slow client). */
  pause(): void { this.socket.pause(); }
  resume(): void { this.socket.resume(); }
}
