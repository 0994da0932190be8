/**
 * The backend side of a dedicated-port connection: log in to one node as the client's user,
 * then relay bytes with no parsing at all.
 *
 * Login: StartupMessage → the node's authentication requests, answered by a
 * BackendAuthenticator (credentials pgmaitre holds after pool_hba, or the client's own exchange
 * relayed when enable_pool_hba = off) → ParameterStatus frames and BackendKeyData kept for the
 * client's greeting → the first ReadyForQuery. A login is never pooled: each dedicated-port
 * client gets its own backend connection, closed with it (HAProxy's model).
 *
 * A pass-through client (a replication connection, replication-relay.ts) is not logged in by
 * pgmaitre: the client's own startup packet is forwarded unchanged, and the relay starts either
 * as soon as the socket is connected (the node authenticates the client through the relay) or
 * at the node's AuthenticationOk (pgmaitre answered the node's requests from a credential after
 * pool_hba; that AuthenticationOk and every byte after it are the client's, untouched).
 *
 * Relay, written by hand because every byte of the dedicated ports passes here and the fastest
 * Node.js pipe is the goal: without backend TLS the socket is opened with `onread`, so libuv
 * reads into one buffer per connection (no Buffer, no 'data' event per chunk); a plain client
 * socket is switched to the shared read buffer too (util/fast-read.ts). Each read is copied once
 * and written through the other socket's handle (util/fast-write.ts), bypassing the Writable
 * state machine; a side whose peer's output is above the high-water mark is not read until the
 * peer drains. With TLS on either side that side keeps ordinary 'data' events and write().
 */
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { encodeStartupMessage } from '../protocol/startup';
import { ProxyError, ProxyErrorCode } from '../errors/proxy-error';
import type { BackendAuthenticator } from '../backend/backend-auth';
import { BackendLogin } from '../backend/backend-login';
import { backendAddress, openBackendSocket, type BackendTlsOptions } from '../backend/tls-negotiate';
import { MessageScanner, WANT_ALL, type MessageSink } from '../backend/message-scanner';
import { copyRead, switchToReadBuffer } from '../util/fast-read';
import { fastWrite } from '../util/fast-write';

/** Bytes libuv reads at most per backend read (PostgreSQL sends in 8 KB pieces). */
const READ_BUFFER_SIZE = 32 * 1024;

/** Where and as whom to log in. */
export interface LinkOptions {
  readonly nodeId: number;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  readonly params: Readonly<Record<string, string>>;
  readonly connectTimeoutMs: number;
  /** Answers the node's authentication requests (not needed when `relayFrom` is 'connect'). */
  readonly authenticator?: BackendAuthenticator;
  readonly tls?: BackendTlsOptions;
  /** The client's own startup packet, forwarded unchanged instead of one built from user/database/params. */
  readonly startupPacket?: Buffer;
  /**
   * Where the login ends and the relay may start: at the first ReadyForQuery ('ready', the
   * default: pgmaitre greets the client itself), at AuthenticationOk ('auth-ok': that message and
   * all after it go to the client as they are), or once connected ('connect': nothing is read).
   */
  readonly relayFrom?: 'ready' | 'auth-ok' | 'connect';
}

/** The relay's view of the client socket and what to do when either side ends. */
export interface RelayEnds {
  readonly client: net.Socket;
  /** The client socket is a TLSSocket: copy chunks (its writes are not known to be done at once). */
  readonly copy: boolean;
  /** Called once when the relay ended (either side closed or failed). */
  readonly onEnd: (why: string) => void;
  /** Called with the request → first answer byte time in seconds (least_latency), when set. */
  readonly onLatency?: (seconds: number) => void;
}

/** A logged-in backend connection of a dedicated port; see the file header. */
export class BackendLink implements MessageSink {
  backendPid = 0;
  backendSecret = 0;
  /** ReadyForQuery status of the login ('I'). */
  txStatus = 0x49;
  /** The node's ParameterStatus frames, verbatim, for the client's greeting. */
  readonly paramFrames: Buffer[] = [];
  readonly connectedAt = new Date();
  private socket!: net.Socket;
  private phase: 'login' | 'ready' | 'relay' | 'closed' = 'login';
  private readonly scanner = new MessageScanner(WANT_ALL);
  /** Bytes that followed the login's ReadyForQuery (normally none), or its AuthenticationOk. */
  private early: Buffer[] = [];
  /** After the login ('auth-ok', 'connect'): node bytes are kept raw for the client, not scanned. */
  private raw = false;
  /** 'auth-ok': offset in the current chunk just past AuthenticationOk (the rest is the client's). */
  private rawFrom = -1;
  private loginMessage: ((code: number, buf: Buffer, start: number, end: number) => void) | null = null;
  private ends: RelayEnds | null = null;
  private waitingForClient = false;
  private requestAt = 0;
  private readonly resumeAfterWrite = (): void => {
    if (this.waitingForClient) {
      this.waitingForClient = false;
      if (this.phase === 'relay') this.socket.resume();
    }
  };

  private constructor(readonly nodeId: number, readonly host: string, readonly port: number) {}

  /** Connects and logs in; resolves at the node's first ReadyForQuery, rejects with a ProxyError. */
  static connect(opts: LinkOptions): Promise<BackendLink> {
    const link = new BackendLink(opts.nodeId, opts.host, opts.port);
    return link.login(opts);
  }

  private login(opts: LinkOptions): Promise<BackendLink> {
    const where = `${opts.host}:${opts.port}`;
    return new Promise<BackendLink>((resolve, reject) => {
      let settled = false;
      const fail = (e: ProxyError): void => {
        if (settled) return;
        settled = true;
        steps.abandon();
        clearTimeout(timer);
        opts.authenticator?.failed?.(null);
        this.phase = 'closed';
        this.socket?.destroy();
        reject(e);
      };
      const timeoutMs = opts.connectTimeoutMs > 0 ? opts.connectTimeoutMs : 2 ** 31 - 1;
      const timer = setTimeout(() => fail(new ProxyError(ProxyErrorCode.BackendConnectTimeout, `timed out after ${opts.connectTimeoutMs} ms connecting to ${where}`)), timeoutMs);
      timer.unref();
      const startup = opts.startupPacket ?? encodeStartupMessage({ user: opts.user, database: opts.database, ...opts.params });
      const relayFrom = opts.relayFrom ?? 'ready';
      // 'connect': the login is the client's business; the link is ready once the socket is.
      const connected = (): void => {
        if (relayFrom !== 'connect' || settled) return;
        settled = true;
        clearTimeout(timer);
        this.phase = 'ready';
        this.raw = true;
        this.loginMessage = null;
        this.resolved = true;
        resolve(this);
      };
      const onSocket = (socket: net.Socket): void => {
        this.socket = socket;
        socket.on('error', (e: NodeJS.ErrnoException) => {
          if (this.phase === 'login') fail(new ProxyError(ProxyErrorCode.BackendConnect, `${where}: ${e.code ?? e.message}`, undefined, { cause: e }));
          else this.end(`backend socket error: ${e.code ?? e.message}`);
        });
        socket.on('close', () => {
          if (this.phase === 'login') fail(new ProxyError(ProxyErrorCode.BackendClosed, `${where} closed the connection during login`));
          else this.end('backend closed the connection');
        });
        socket.write(startup);
      };

      const steps = new BackendLogin(opts.nodeId, opts.authenticator, {
        send: (answer) => { if (!settled) this.socket.write(answer); },
        fail,
        authOk: (buf, start, end) => {
          if (relayFrom !== 'auth-ok' || settled) return;
          settled = true;
          clearTimeout(timer);
          this.phase = 'ready';
          this.loginMessage = null;
          this.early.push(Buffer.from(buf.subarray(start, end)));
          this.raw = true;
          this.rawFrom = this.scanner.chunkOffset;
        },
        param: (buf, start, end) => { this.paramFrames.push(Buffer.from(buf.subarray(start, end))); },
        key: (pid, secret) => {
          this.backendPid = pid;
          this.backendSecret = secret;
        },
        ready: (txStatus) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          this.txStatus = txStatus;
          this.phase = 'ready';
          this.loginMessage = null;
        },
      });
      this.loginMessage = (code, buf, start, end) => steps.onMessage(code, buf, start, end);
      // Resolve after the scan of the chunk that held ReadyForQuery (its tail is kept in `early`).
      const afterScan = (): void => {
        if (this.phase === 'ready' && settled && !this.resolved) {
          this.resolved = true;
          resolve(this);
        }
      };
      this.afterLoginScan = afterScan;

      if (opts.tls === undefined || opts.host.startsWith('/')) {
        const readBuffer = Buffer.allocUnsafe(READ_BUFFER_SIZE);
        const socket = net.connect({
          ...backendAddress(opts.host, opts.port), noDelay: !opts.host.startsWith('/'),
          onread: { buffer: readBuffer, callback: (n: number, b: Buffer) => this.onRead(b, n, false) },
        });
        onSocket(socket);
        socket.once('connect', connected);
      } else {
        const opening = openBackendSocket({ host: opts.host, port: opts.port, tls: opts.tls });
        opening.socket.then((socket) => {
          if (settled) {
            socket.destroy();
            return;
          }
          socket.setNoDelay(true);
          socket.on('data', (chunk: Buffer) => { this.onRead(chunk, chunk.length, true); });
          onSocket(socket);
          connected();
        }, (e: unknown) => fail(e instanceof ProxyError ? e : new ProxyError(ProxyErrorCode.BackendConnect, String(e))));
      }
    });
  }

  private resolved = false;
  private afterLoginScan: (() => void) | null = null;

  /** MessageSink (login only): one message from the node. */
  onMessage(code: number, buf: Buffer, start: number, end: number): void {
    if (this.raw) return; // the rest of the chunk is kept raw (onRead)
    if (this.phase === 'ready') {
      // Anything after ReadyForQuery belongs to the client (it is relayed once the relay starts).
      this.early.push(Buffer.from(buf.subarray(start, end)));
      return;
    }
    this.loginMessage?.(code, buf, start, end);
  }

  /**
   * Bytes from the node. `owned`: the chunk is a fresh Buffer ('data' event) rather than a view
   * of the reused read buffer. Returns false to stop reading until the client took the bytes.
   */
  private onRead(buf: Buffer, n: number, owned: boolean): boolean {
    if (this.phase === 'relay') {
      const ends = this.ends!;
      if (this.requestAt !== 0) {
        ends.onLatency!((performance.now() - this.requestAt) / 1000);
        this.requestAt = 0;
      }
      const client = ends.client;
      // A plain client socket is written through its handle (fast-write.ts) with a copy of the
      // chunk: measured cheaper than a zero-copy write through the Writable machinery.
      const out = owned ? buf : copyRead(buf.subarray(0, n));
      if (!(ends.copy ? client.write(out) : fastWrite(client, out))) {
        this.socket.pause();
        this.waitingForClient = true;
        client.once('drain', this.resumeAfterWrite);
      }
      return true;
    }
    if (this.phase === 'login' || this.phase === 'ready') {
      const chunk = owned ? buf : buf.subarray(0, n);
      if (this.raw) {
        this.early.push(owned ? chunk : Buffer.from(chunk));
        return true;
      }
      this.scanner.scan(chunk, this);
      if (this.rawFrom >= 0) {
        // AuthenticationOk ended the login mid-chunk: what follows it is the client's, as it came.
        if (this.rawFrom < chunk.length) this.early.push(Buffer.from(chunk.subarray(this.rawFrom)));
        this.rawFrom = -1;
      }
      if (this.scanner.broken && this.phase === 'login') this.socket.destroy();
      this.afterLoginScan?.();
    }
    return true;
  }

  /** Starts relaying: client bytes go to the node untouched, node bytes to the client. */
  startRelay(ends: RelayEnds, firstBytes: Buffer | null): void {
    if (this.phase !== 'ready') return;
    this.phase = 'relay';
    this.ends = ends;
    const client = ends.client;
    const socket = this.socket;
    const timing = ends.onLatency !== undefined;
    const toNode = (chunk: Buffer): void => {
      if (timing && this.requestAt === 0) this.requestAt = performance.now();
      // Paused only while relaying: a client read stopped after the end would never see its EOF.
      if (!fastWrite(socket, chunk) && this.phase === 'relay') client.pause();
    };
    // A plain client socket is read into the shared buffer (fast-read.ts), each read copied once.
    // (Only with nothing buffered in the stream yet: those bytes would not be emitted again.)
    if (ends.copy || client.readableLength > 0 || !switchToReadBuffer(client, (view) => toNode(copyRead(view)))) client.on('data', toNode);
    socket.on('drain', () => client.resume());
    client.on('end', () => this.end('client closed the connection'));
    client.on('close', () => this.end('client disconnected'));
    client.on('error', () => this.end('client socket error'));
    if (this.early.length > 0) {
      client.write(Buffer.concat(this.early));
      this.early = [];
    }
    if (firstBytes !== null && firstBytes.length > 0) socket.write(firstBytes);
    if (client.isPaused()) client.resume();
  }

  /** Ends both sides (pending output to the client is flushed first). Idempotent. */
  end(why: string): void {
    if (this.phase === 'closed') return;
    const wasRelay = this.phase === 'relay';
    this.phase = 'closed';
    this.socket?.end();
    setTimeout(() => this.socket?.destroy(), 2000).unref();
    const ends = this.ends;
    if (ends !== null) {
      ends.client.end();
      // Read on, so that the client's own end (EOF) is seen and its socket closes.
      if (wasRelay && !ends.client.destroyed) ends.client.resume();
      setTimeout(() => ends.client.destroy(), 2000).unref();
    }
    if (wasRelay) ends?.onEnd(why);
  }

  /** Closes the node side of a link that never started relaying. */
  destroy(): void {
    this.phase = 'closed';
    this.socket?.destroy();
  }

  /** True once the relay ended. */
  get closed(): boolean {
    return this.phase === 'closed';
  }
}
